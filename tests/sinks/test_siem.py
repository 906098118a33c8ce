"""Splunk HEC, Elastic _bulk and CSV outputs, each checked by a real receiver on loopback (see
receivers.py) or read back as a spreadsheet and Timesketch would read it."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.sinks.receivers import receiver
from tests.watch.harness import Appender, Watch, jsonl_alerts, poll
from tests.watch.scenario import stream
from tidewaiter import evaluate
from tidewaiter.cli.main import main
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sinks.batch import BatchSink
from tidewaiter.sinks.csv_timeline import FORMULA_START, cell
from tidewaiter.sinks.elastic import ElasticTransport
from tidewaiter.sinks.outputs import Outputs
from tidewaiter.sinks.splunk_hec import HecTransport

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
SCENARIOS = ROOT / "scenarios" / "attack"


@cache
def _scenario_alerts() -> tuple[dict[str, Any], ...]:
    alerts: list[dict[str, Any]] = []
    for folder in evaluate.discover(SCENARIOS):
        scenario = evaluate.load(folder)
        outcome = detect_files([str(folder / t) for t in scenario.telemetry], EngineConfig(), [])
        alerts.extend(outcome.alerts)
        if len(alerts) >= 12:
            break
    return tuple(alerts)


def scenario_alerts() -> list[dict[str, Any]]:
    alerts = json.loads(json.dumps(_scenario_alerts()))  # a fresh copy per test
    assert len(alerts) >= 6
    return alerts


def uid(alert: dict[str, Any]) -> str:
    return str(alert["finding_info"]["uid"])


# --- Splunk HEC ---------------------------------------------------------------------------------


def test_detect_sends_its_alerts_to_hec_with_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TW_HEC_TOKEN", "11111111-2222-3333-4444-555555555555")
    out = tmp_path / "alerts.jsonl"
    with receiver("hec", "11111111-2222-3333-4444-555555555555") as hec:
        code = main(
            [
                "detect",
                str(DEMO),
                "--out",
                str(out),
                "--splunk-hec",
                hec.url,
                "--splunk-token-env",
                "TW_HEC_TOKEN",
                "--splunk-index",
                "security",
            ]
        )
    assert code == 0, capsys.readouterr().err
    assert hec.problems == []
    [alert] = jsonl_alerts(out)
    [event] = hec.events
    assert event["event"] == alert  # the OCSF alert, unchanged
    assert event["time"] == alert["time"] / 1000
    assert event["host"] == "ip-10-0-3-17.ec2.internal"
    assert (event["source"], event["sourcetype"]) == ("tidewaiter", "ocsf:detection_finding")
    assert event["index"] == "security"
    assert "splunk-hec: 1 alert(s) delivered" in capsys.readouterr().err


def test_hec_batches_several_events_in_one_post() -> None:
    alerts = scenario_alerts()
    with receiver("hec", "tok") as hec:
        sink = BatchSink(transport := HecTransport(hec.url, "tok"), transport.size)
        for alert in alerts:
            sink.write(alert)
        sink.close()
    assert len(hec.requests) == 1
    path, headers, body = hec.requests[0]
    assert path == "/services/collector/event"
    assert headers["authorization"] == "Splunk tok"
    assert body.count(b'"sourcetype"') == len(alerts)
    assert [uid(e["event"]) for e in hec.events] == [uid(a) for a in alerts]
    assert (sink.delivered, sink.refused, sink.undelivered) == (len(alerts), 0, 0)


def test_hec_indexer_acknowledgement_is_polled_on_the_request_channel() -> None:
    alerts = scenario_alerts()[:3]
    with receiver("hec", "tok") as hec:
        hec.ack_enabled = True
        transport = HecTransport(hec.url, "tok", ack=True)
        transport.poll = 0.01
        sink = BatchSink(transport, transport.size)
        for alert in alerts:
            sink.write(alert)
        sink.close()
    paths = [path for path, _, _ in hec.requests]
    # the event POST, then the ack query until the ackId is reported indexed
    assert paths == ["/services/collector/event"] + ["/services/collector/ack"] * 2
    channels = {headers["x-splunk-request-channel"] for _, headers, _ in hec.requests}
    assert channels == {transport.channel}
    assert json.loads(hec.requests[1][2]) == {"acks": [0]}
    assert sink.delivered == 3


def test_hec_without_ack_on_the_token_is_not_counted_delivered() -> None:
    with receiver("hec", "tok") as hec:  # HEC answers without an ackId
        transport = HecTransport(hec.url, "tok", ack=True)
        sink = BatchSink(transport, transport.size, attempts=1)
        sink.write(scenario_alerts()[0])
        sink.close()
    assert (sink.delivered, sink.undelivered) == (0, 1)
    assert "ackId" in sink.problems[0]


def test_hec_refusing_one_event_of_a_batch_keeps_those_before_and_resends_those_after() -> None:
    alerts = scenario_alerts()[:4]
    with receiver("hec", "tok") as hec:
        hec.refuse_uid = uid(alerts[1])
        sink = BatchSink(transport := HecTransport(hec.url, "tok"), transport.size, backoff=0.01)
        for alert in alerts:
            sink.write(alert)
        sink.close()
    assert [uid(e["event"]) for e in hec.events] == [uid(a) for a in (alerts[0], *alerts[2:])]
    assert (sink.delivered, sink.refused, sink.undelivered) == (3, 1, 0)
    assert uid(alerts[1]) in sink.problems[0]
    assert "refused" in sink.problems[0]


def test_hec_busy_is_retried() -> None:
    alerts = scenario_alerts()[:2]
    with receiver("hec", "tok") as hec:
        hec.fail_next = [503, 503]
        sink = BatchSink(transport := HecTransport(hec.url, "tok"), transport.size, backoff=0.01)
        for alert in alerts:
            sink.write(alert)
        sink.close()
    assert len(hec.requests) == 3
    assert [uid(e["event"]) for e in hec.events] == [uid(a) for a in alerts]
    assert sink.delivered == 2


def test_detect_reports_every_alert_hec_did_not_take_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "hec-token"
    token.write_text("wrong\n")
    with receiver("hec", "right") as hec:
        code = main(
            [
                "detect",
                str(DEMO),
                "--json",
                "--splunk-hec",
                hec.url,
                "--splunk-token-file",
                str(token),
            ]
        )
    err = capsys.readouterr().err
    assert code == 2
    assert hec.events == []
    assert "splunk-hec: 0 alert(s) delivered, 1 NOT delivered" in err
    assert "HTTP 403" in err
    assert "Invalid token" in err
    assert "wrong" not in err  # the token is never printed


def test_a_token_is_never_a_flag_and_a_missing_one_is_a_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TW_NOT_SET", raising=False)
    code = main(
        [
            "detect",
            str(DEMO),
            "--splunk-hec",
            "http://127.0.0.1:9",
            "--splunk-token-env",
            "TW_NOT_SET",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "the Splunk HEC token: the environment variable TW_NOT_SET is not set" in err


# --- Elastic _bulk ------------------------------------------------------------------------------


def test_detect_indexes_an_ecs_document_per_alert_with_the_api_key_from_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "es-key"
    key.write_text("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==\n")
    out = tmp_path / "alerts.jsonl"
    with receiver("elastic", key.read_text().strip()) as es:
        code = main(
            [
                "detect",
                str(DEMO),
                "--out",
                str(out),
                "--elastic",
                es.url,
                "--elastic-api-key-file",
                str(key),
            ]
        )
    assert code == 0, capsys.readouterr().err
    assert es.problems == []
    [alert] = jsonl_alerts(out)
    [(_path, _headers, body)] = es.requests
    action = json.loads(body.split(b"\n")[0])
    assert action == {"create": {"_index": "tidewaiter-alerts", "_id": uid(alert)}}
    doc = es.docs[uid(alert)]
    assert doc["event"]["kind"] == "alert"
    assert {"intrusion_detection", "process", "network"} <= set(doc["event"]["category"])
    assert doc["event"]["severity"] == 5
    assert doc["@timestamp"].endswith("Z")
    assert doc["rule"]["id"] == "tw-archive-exfil"
    assert doc["threat"]["framework"] == "MITRE ATT&CK"
    assert "T1560.001" in doc["threat"]["technique"]["id"]
    assert "Exfiltration" in doc["threat"]["tactic"]["name"]
    assert doc["container"]["id"].startswith("4f1c2b9e7d6a")
    assert doc["container"]["image"]["name"] == "registry.example.com/payments/api:1.42.0"
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "namespace": "payments",
        "resource": {"type": "pod", "name": "api-7d9f8b6c5-x2kqz"},
    }
    assert doc["host"]["name"] == "ip-10-0-3-17.ec2.internal"
    assert "tar -czf /tmp/archive.tar.gz" in doc["process"]["command_line"]
    assert doc["destination"]["ip"]
    assert json.loads(doc["event"]["original"]) == alert  # the OCSF alert kept whole


def test_bulk_items_that_fail_are_retried_or_reported_one_by_one() -> None:
    alerts = scenario_alerts()[:5]
    with receiver("elastic", "key") as es:
        es.item_failures = {uid(alerts[1]): [429], uid(alerts[3]): [400]}
        transport = ElasticTransport(es.url, "key")
        sink = BatchSink(transport, transport.size, backoff=0.01)
        for alert in alerts:
            sink.write(alert)
        sink.close()
    assert es.problems == []
    assert set(es.docs) == {uid(a) for a in alerts} - {uid(alerts[3])}
    # the second request holds only the item that was worth retrying
    assert [body.count(b"\n") // 2 for _, _, body in es.requests] == [5, 1]
    assert (sink.delivered, sink.refused, sink.undelivered) == (4, 1, 0)
    assert "mapper_parsing_exception" in sink.problems[0]


def test_bulk_sent_again_is_idempotent_and_an_update_overwrites() -> None:
    alerts = scenario_alerts()[:3]
    with receiver("elastic", "key") as es:
        transport = ElasticTransport(es.url, "key")
        assert transport.send_batch(alerts) == []
        assert transport.send_batch(alerts) == []  # a retry after a lost answer: 409s, delivered
        update = {**alerts[0], "activity_id": 2, "activity_name": "Update", "message": "updated"}
        assert transport.send_batch([update]) == []
    assert len(es.docs) == 3
    assert json.loads(es.requests[2][2].split(b"\n")[0]) == {
        "index": {"_index": "tidewaiter-alerts", "_id": uid(alerts[0])}
    }
    assert es.docs[uid(alerts[0])]["message"] == "updated"


def test_a_wrong_api_key_is_retried_not_refused() -> None:
    with receiver("elastic", "key") as es:
        transport = ElasticTransport(es.url, "nope")
        sink = BatchSink(transport, transport.size, attempts=2, backoff=0.01)
        sink.write(scenario_alerts()[0])
        sink.close()
    assert (sink.delivered, sink.refused, sink.undelivered) == (0, 0, 1)
    assert len(es.requests) == 2


# --- watch: through the spool -------------------------------------------------------------------


def test_watch_spools_hec_and_elastic_while_they_are_down_and_delivers_everything(
    tmp_path: Path,
) -> None:
    lines = stream(chains=4, noise_per_chain=3, seed=5)
    watched, out = tmp_path / "falco.jsonl", tmp_path / "alerts.jsonl"
    watched.touch()
    (tmp_path / "key").write_text("es-key\n")
    with receiver("hec", "hec-tok") as hec, receiver("elastic", "es-key") as es:
        hec.fail_next = [503] * 3  # down for the first alerts
        es.fail_next = [503] * 3
        args = [
            str(watched),
            *("--db", "tw.duckdb", "--out", str(out), "--retry-max", "0.3"),
            *("--splunk-hec", hec.url, "--splunk-token-env", "TW_HEC"),
            *("--elastic", es.url, "--elastic-api-key-file", str(tmp_path / "key")),
        ]
        with Watch(args, tmp_path, env={"TW_HEC": "hec-tok"}).start() as watch:
            watch.wait_for("watching 1 input(s)")
            Appender(watched, lines, seed=1).start().join()
            poll(lambda: len(jsonl_alerts(out)) >= 4, 60, "the alerts")
            watch.wait_for("splunk-hec is failing")
            poll(lambda: len(hec.events) >= 4 and len(es.docs) >= 4, 60, "the spooled alerts")
            assert watch.stop() == 0
    expected = [uid(a) for a in jsonl_alerts(out)]
    assert [uid(e["event"]) for e in hec.events] == expected  # in order, once each
    assert set(es.docs) == set(expected)
    assert hec.problems == es.problems == []


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_cells_never_start_a_formula() -> None:
    for start in FORMULA_START:
        assert cell(f"{start}cmd|' /C calc'!A0") == f"'{start}cmd|' /C calc'!A0"
    assert cell("/bin/tar -czf x") == "/bin/tar -czf x"
    assert cell(-3) == -3  # a number tidewaiter wrote is a number
    assert cell(None) == ""


def test_detect_writes_finding_and_timeline_csv_that_timesketch_imports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = tmp_path / "planted.tetragon.jsonl"
    text = DEMO.read_text().replace('"name":"api"', '"name":"=HYPERLINK(\\"http://x\\")"')
    text = text.replace("/sensitive/data", "@SUM(1+1)")
    planted.write_text(text)
    findings, timeline = tmp_path / "findings.csv", tmp_path / "timeline.csv"
    to_csv = ["--csv", str(findings)]
    assert main(["detect", str(planted), "--json", *to_csv, "--timeline-csv", str(timeline)]) == 0
    [alert] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with findings.open(newline="") as stream:
        [row] = list(csv.DictReader(stream))
    assert {"message", "datetime", "timestamp_desc"} <= set(row)
    assert datetime.fromisoformat(row["datetime"]).timestamp() == alert["time"] / 1000
    assert int(row["timestamp"]) == alert["time"] * 1000
    assert row["finding_uid"] == uid(alert)
    assert row["container_name"] == '\'=HYPERLINK("http://x")'
    with timeline.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(alert["evidences"])
    times = [datetime.fromisoformat(r["datetime"]) for r in rows]
    assert times == sorted(times)
    assert all(r["timestamp_desc"] and r["message"] for r in rows)
    assert all(r["finding_uid"] == uid(alert) for r in rows)
    tar = next(r for r in rows if "tar -czf" in r["command_line"])
    assert "@SUM(1+1)" in tar["command_line"]
    for r in rows:
        assert not any(str(v).startswith(FORMULA_START) for v in r.values())
    # a second run appends rows under the one header
    assert main(["detect", str(planted), "--json", *to_csv]) == 0
    assert findings.read_text().count("datetime,timestamp") == 1
    assert len(list(csv.DictReader(findings.open(newline="")))) == 2


def test_watch_reload_reads_the_token_file_again(tmp_path: Path) -> None:
    token = tmp_path / "hec-token"
    token.write_text("old\n")
    outputs = Outputs(splunk_hec="http://127.0.0.1:9", splunk_token_file=str(token))
    [transport] = outputs.transports()
    assert isinstance(transport, HecTransport)
    assert transport.token == token.read_text().strip()
    token.write_text("rotated\n")
    outputs.refresh(transport)
    assert transport.token == "rotated"  # noqa: S105 - a test value


def test_watch_check_config_checks_the_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TW_UNSET", raising=False)
    watched = tmp_path / "f.jsonl"
    watched.touch()
    base = ["watch", str(watched), "--db", str(tmp_path / "tw.duckdb"), "--check-config"]
    base += ["--elastic", "http://127.0.0.1:9"]
    assert main([*base, "--elastic-api-key-env", "TW_UNSET"]) == 2
    assert "the Elastic API key: the environment variable TW_UNSET is not set" in (
        capsys.readouterr().err
    )
    monkeypatch.setenv("TW_SET", "k")
    assert main([*base, "--elastic-api-key-env", "TW_SET"]) == 0
    assert "sinks: store, elastic" in capsys.readouterr().err
