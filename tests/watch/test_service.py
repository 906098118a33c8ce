"""watch as a service: /metrics, /readyz and /healthz answered during a real run with the figures
of what was fed; JSON log lines; and the analyst's commands working against the store a running
watch holds (two real processes), a suppression applying to the very next finding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
from prometheus_client.parser import text_string_to_metric_families

from tests.watch.harness import LOOPBACK, Watch, free_port, jsonl_alerts, poll
from tests.watch.scenario import tetragon_attack
from tidewaiter.store import Store
from tidewaiter.store_socket import RemoteStore

MALFORMED = b'{"process_exec": {"process": \n'


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as out:
        out.write(data)


def tidewaiter(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidewaiter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # rich tables unwrapped
    )


def test_metrics_and_probes_answer_during_a_run_with_the_counts_fed(tmp_path: Path) -> None:
    feed = tmp_path / "tetragon.jsonl"
    feed.touch()
    port = free_port()
    args = [str(feed), "--db", "tw.duckdb", "--out", "alerts.jsonl", "--metrics", str(port)]
    args += ["--checkpoint-interval", "0.5", "--idle-flush", "1", "--log-format", "json"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("serving /metrics")
        assert get(port, "/healthz") == (200, "ok\n")
        append(feed, tetragon_attack(1) + MALFORMED)
        alerts = poll(lambda: jsonl_alerts(tmp_path / "alerts.jsonl"), 60, "the alert")
        assert len(alerts) == 1
        alert = alerts[0]

        def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            samples = scrape(port)
            saved = any(name == "tidewaiter_checkpoint_age_seconds" for name, _ in samples)
            delivered = samples.get(("tidewaiter_alerts_delivered_total", (("sink", "out"),)))
            return samples if saved and delivered == 1 else None

        samples = poll(settled, 30, "the alert and a checkpoint in the metrics")
        where = (("format", "tetragon"), ("input", str(feed)))
        assert samples[("tidewaiter_records_read_total", where)] == 10  # 9 and the bad one
        assert samples[("tidewaiter_events_read_total", where)] == 9
        skipped = {k: v for k, v in samples.items() if k[0] == "tidewaiter_records_skipped_total"}
        assert sum(skipped.values()) == 1
        severity = alert["severity"].lower()
        analytic = alert["finding_info"]["analytic"]["uid"]
        found = (("analytic", analytic), ("severity", severity))
        assert samples[("tidewaiter_findings_total", found)] == 1
        assert samples[("tidewaiter_alerts_delivered_total", (("sink", "store"),))] == 1
        assert samples[("tidewaiter_alerts_failed_total", (("sink", "out"),))] == 0
        assert samples[("tidewaiter_input_lag_bytes", (("input", str(feed)),))] == 0
        assert samples[("tidewaiter_input_lag_seconds", (("input", str(feed)),))] > 0
        assert samples[("tidewaiter_containers_tracked", ())] == 1
        assert samples[("tidewaiter_episodes_open", ())] == 0
        assert samples[("tidewaiter_checkpoint_age_seconds", ())] >= 0
        assert get(port, "/readyz") == (200, "ready\n")
        assert get(port, "/nothing")[0] == 404
        watch.stop()
    events = [json.loads(line) for line in watch.lines]  # every line is one JSON object
    [skip] = [e for e in events if e["event"] == "skipped"]
    assert skip["file"] == str(feed)
    assert skip["where"] == "line 10"
    assert skip["reason"]
    assert any(e["event"] == "status" and e["alerts"] == 1 for e in events)
    [said] = [e for e in events if e["event"] == "alert"]
    assert (said["uid"], said["analytic"], said["severity"]) == (
        alert["finding_info"]["uid"],
        analytic,
        severity,
    )


def test_readyz_fails_while_a_sink_fails_beyond_the_threshold(tmp_path: Path) -> None:
    feed = tmp_path / "tetragon.jsonl"
    feed.touch()
    port = free_port()
    dead = free_port()  # nothing listens here: the webhook fails
    args = [str(feed), "--db", "tw.duckdb", "--metrics", f"{LOOPBACK}:{port}"]
    args += ["--webhook", f"http://{LOOPBACK}:{dead}/in", "--ready-sink-failing", "1"]
    args += ["--idle-flush", "1", "--retry-max", "0.5"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("serving /metrics")
        assert get(port, "/readyz")[0] == 200
        append(feed, tetragon_attack(1))
        _, body = poll(
            lambda: (answer := get(port, "/readyz"))[0] == 503 and answer, 60, "not ready"
        )
        assert "sink webhook has been failing for" in body
        samples = scrape(port)
        assert samples[("tidewaiter_spool_depth", (("sink", "webhook"),))] == 1
        assert samples[("tidewaiter_alerts_delivered_total", (("sink", "webhook"),))] == 0


def test_the_analysts_commands_work_while_watch_holds_the_store(tmp_path: Path) -> None:
    feed = tmp_path / "tetragon.jsonl"
    feed.touch()
    args = [str(feed), "--db", "tw.duckdb", "--out", "alerts.jsonl", "--idle-flush", "1"]
    db = ["--db", "tw.duckdb"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("serving the store")
        append(feed, tetragon_attack(1))
        [first] = poll(lambda: jsonl_alerts(tmp_path / "alerts.jsonl"), 60, "the first alert")
        uid = first["finding_info"]["uid"]

        listed = tidewaiter("alerts", *db, "--json", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert [json.loads(line)["finding_info"]["uid"] for line in listed.stdout.splitlines()] == [
            uid
        ]
        investigated = tidewaiter("investigate", uid[:10], *db, "--json", cwd=tmp_path)
        assert investigated.returncode == 0, investigated.stderr
        investigation = json.loads(investigated.stdout)
        assert investigation["alert"]["finding_info"]["uid"] == uid
        assert investigation["context"]["timeline"]  # the telemetry, re-read from the feed
        plan = tidewaiter("respond", uid[:10], *db, "--json", cwd=tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert json.loads(plan.stdout)["actions"]
        shown = tidewaiter("baseline", "show", *db, cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr

        added = tidewaiter(
            "suppress", "add", "payments-export", *db, "--image", "registry.example.com/payments/*",
            "--reason", "the partner export", "--author", "sec@example.com", cwd=tmp_path,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        listed = tidewaiter("suppress", "list", *db, cwd=tmp_path)
        assert "payments-export" in listed.stdout
        copied = tidewaiter("backup", "copy.duckdb", *db, cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        with duckdb.connect(str(tmp_path / "copy.duckdb"), read_only=True) as copy:
            assert copy.execute("SELECT uid FROM alerts").fetchall() == [(uid,)]
            assert copy.execute("SELECT id FROM suppressions").fetchall() == [("payments-export",)]
            assert copy.execute("SELECT count(*) FROM checkpoints").fetchone() == (1,)
        again = tidewaiter("backup", "copy.duckdb", *db, cwd=tmp_path)
        assert again.returncode == 2
        assert "exists; name a new file" in again.stderr

        append(feed, tetragon_attack(2))  # the next finding: held back, without a restart

        def held_back() -> list[dict[str, Any]]:
            out = tidewaiter("alerts", *db, "--suppressed", "--json", cwd=tmp_path).stdout
            return [json.loads(line) for line in out.splitlines()]

        [second] = poll(held_back, 60, "the second finding, suppressed")
        assert second["finding_info"]["uid"] != uid

        removed = tidewaiter("suppress", "remove", "payments-export", *db, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        append(feed, tetragon_attack(3))  # and once removed, the next one alerts again
        poll(lambda: len(jsonl_alerts(tmp_path / "alerts.jsonl")) == 2, 60, "the third alert")
        assert watch.stop() == 0

    delivered = [a["finding_info"]["uid"] for a in jsonl_alerts(tmp_path / "alerts.jsonl")]
    assert second["finding_info"]["uid"] not in delivered
    with duckdb.connect(str(tmp_path / "tw.duckdb")) as con:  # nothing lost, nothing doubled
        rows = con.execute("SELECT uid, suppressed_by FROM alerts ORDER BY time_ms, uid").fetchall()
        assert sorted(uid for uid, _ in rows) == sorted([*delivered, second["finding_info"]["uid"]])
        [(by,)] = [(by,) for _, by in rows if by is not None]
        assert by.startswith("suppression payments-export")
        assert con.execute("SELECT count(*) FROM suppressions").fetchone() == (0,)


def test_without_a_watch_the_commands_still_open_the_file(tmp_path: Path) -> None:
    added = tidewaiter(
        "suppress", "add", "x", "--db", "tw.duckdb", "--analytic", "tw-archive-created",
        "--reason", "r", "--author", "a",
        cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert not (tmp_path / "tw.duckdb.watch" / "store.sock").exists()


def test_every_method_of_the_store_is_answered_or_refused_through_watch() -> None:
    """A method added to Store later must say what it does while watch holds the file, instead
    of failing on a connection the remote store does not have."""
    public = {name for name in dir(Store) if not name.startswith("_")}
    assert {name for name in public if getattr(RemoteStore, name) is getattr(Store, name)} == set()
