"""`tidewaiter watch` as a user runs it: a real process on a file a writer is appending to."""

from __future__ import annotations

import http.client
import random
import signal
import time
from pathlib import Path

import pytest

from tests.watch.harness import (
    Appender,
    Receiver,
    Watch,
    by_uid,
    detect_alerts,
    free_port,
    jsonl_alerts,
    poll,
)
from tests.watch.scenario import stream
from tidewaiter.store import Store

KILLS = 5
SEEDS = ((1, 0.05), (2, 0.1), (3, 0.5), (4, 1.0))  # (seed, checkpoint interval)


def test_a_growing_file_fires_the_alerts_detect_finds_in_the_finished_file(tmp_path: Path) -> None:
    lines = stream(chains=5, noise_per_chain=15, seed=7)
    watched = tmp_path / "falco.jsonl"
    watched.write_bytes(b"".join(lines[:10]))  # watch starts on a file that already has lines
    out = tmp_path / "alerts.jsonl"
    args = [str(watched), "--db", "tw.duckdb", "--out", str(out), "--checkpoint-interval", "0.2"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        Appender(watched, lines[10:], seed=7).start().join()
        expected = detect_alerts(watched)
        assert len(expected) == 5
        poll(lambda: len(jsonl_alerts(out)) >= len(expected), 30, "every alert")
        assert watch.stop() == 0
    assert sorted(jsonl_alerts(out), key=_uid) == sorted(expected, key=_uid)


@pytest.mark.parametrize(("seed", "interval"), SEEDS)
def test_kill_9_at_random_points_loses_no_alert_and_repeats_none(
    tmp_path: Path, seed: int, interval: float
) -> None:
    """A writer appends a scenario while watch is SIGKILLed at random points and restarted; the
    alerts delivered to the file, the store and a live webhook are those of an uninterrupted run.
    Long checkpoint intervals make restarts decide many alerts again; short ones kill around
    checkpoints and deliveries."""
    rng = random.Random(seed)
    lines = stream(chains=8, noise_per_chain=25, seed=seed)
    cuts = sorted(rng.sample(range(1, len(lines)), KILLS))
    parts = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    watched, out = tmp_path / "falco.jsonl", tmp_path / "alerts.jsonl"
    watched.touch()
    with Receiver(free_port()) as receiver:
        args = [
            str(watched),
            *("--db", "tw.duckdb", "--out", str(out), "--webhook", receiver.url),
            *("--webhook-header-env", "X-Life=LIFE"),  # which process sent each POST
            *("--checkpoint-interval", str(interval), "--idle-flush", "600"),
        ]
        for life, part in enumerate(parts):
            with Watch(args, tmp_path, env={"LIFE": str(life)}).start() as watch:
                watch.wait_for("watching 1 input(s)")
                writer = Appender(watched, part, seed=seed * 100 + life).start()
                if life < KILLS:
                    time.sleep(rng.uniform(0.0, 0.5))  # the kill point: a random moment
                    watch.kill()
                    writer.join()
                    continue
                writer.join()
                expected = by_uid(detect_alerts(watched))
                assert len(expected) == 8
                poll(lambda: len(set(receiver.uids())) >= 8, 30, "the webhook to get everything")
                poll(lambda: len(jsonl_alerts(out)) >= 8, 30, "the file to have everything")
                assert watch.stop() == 0

    written = jsonl_alerts(out)
    assert len(written) == len(by_uid(written)) == 8, "an alert was written twice"
    assert by_uid(written) == expected  # the same alerts, image and all, as without the kills
    with Store(tmp_path / "tw.duckdb") as store:
        assert by_uid(store.alerts()) == expected
    posted = [
        (int(h["X-Life"]), a) for h, (_, a) in zip(receiver.headers, receiver.posts, strict=True)
    ]
    assert by_uid([alert for _, alert in posted]) == expected
    assert all(key == alert["finding_info"]["uid"] for key, alert in receiver.posts)
    # A POST is repeated only if it was the last one of a killed process: in flight at the
    # kill, delivered but not yet acknowledged. Its Idempotency-Key lets the receiver drop it.
    in_flight = {
        life: [a for n, a in posted if n == life][-1]["finding_info"]["uid"]
        for life in range(KILLS)
        if any(n == life for n, _ in posted)
    }
    seen: set[str] = set()
    for life, alert in posted:
        uid = alert["finding_info"]["uid"]
        if uid in seen:
            assert uid in in_flight.values(), f"{uid[:8]} was sent again in life {life}"
        seen.add(uid)
    assert len(posted) - len(expected) <= len(in_flight)


def test_alerts_wait_for_a_webhook_that_is_down_and_arrive_in_order(tmp_path: Path) -> None:
    lines = stream(chains=6, noise_per_chain=5, seed=3)
    half = len(lines) // 2
    watched, out = tmp_path / "falco.jsonl", tmp_path / "alerts.jsonl"
    watched.touch()
    receiver = Receiver(free_port()).start()
    args = [
        str(watched),
        "--db",
        "tw.duckdb",
        "--out",
        str(out),
        "--webhook",
        receiver.url,
        "--retry-max",
        "0.5",
        "--status-interval",
        "0.2",
    ]
    try:
        with Watch(args, tmp_path).start() as watch:
            watch.wait_for("watching 1 input(s)")
            Appender(watched, lines[:half], seed=1).start().join()
            poll(receiver.uids, 30, "a first delivery")
            receiver.stop()
            delivered_before = len(receiver.uids())
            Appender(watched, lines[half:], seed=2).start().join()
            poll(lambda: len(jsonl_alerts(out)) >= 6, 30, "detection to go on without the webhook")
            watch.wait_for("webhook is failing")
            poll(lambda: watch.said("webhook failing,"), 30, "the status line to show the queue")
            assert len(receiver.uids()) == delivered_before
            receiver.start()
            poll(lambda: len(receiver.uids()) >= 6, 30, "the spooled alerts")
            watch.wait_for("webhook is delivering again")
            assert watch.stop() == 0
    finally:
        receiver.stop()
    assert receiver.uids() == [a["finding_info"]["uid"] for a in jsonl_alerts(out)]


def test_sighup_reloads_suppressions_and_keeps_what_was_seen(tmp_path: Path) -> None:
    lines = stream(chains=2, noise_per_chain=0, seed=0)
    # chain 0: tar, archive write, connect, curl, then chain 1, then the closing record
    watched, out = tmp_path / "falco.jsonl", tmp_path / "alerts.jsonl"
    watched.write_bytes(b"".join(lines[:2]))  # chain 0 staged its archive
    config = tmp_path / "watch.yaml"
    config.write_text(
        f"paths: [{watched}]\ndb: tw.duckdb\nout: {out}\ncheckpoint-interval: 0.1\n"
        "status-interval: 0.1\n"
    )
    rules = tmp_path / "suppress.yaml"
    rules.write_text(
        "suppressions:\n  - id: dump-1\n    match: {command: 'tar -czf /tmp/dump-1.tar.gz*'}\n"
        "    reason: the nightly dump of api-1\n    author: tests\n"
    )
    with Watch(["--config", str(config)], tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        watch.wait_for("open, 2 events")
        with config.open("a") as more:
            more.write(f"suppressions: [{rules}]\ncontainer-ttl: 7200\n")
        watch.signal(signal.SIGHUP)
        watch.wait_for("configuration reloaded")
        assert watch.said("take effect at restart: container-ttl")
        Appender(watched, lines[2:], seed=0).start().join()
        poll(lambda: jsonl_alerts(out), 30, "chain 0's alert")
        watch.wait_for("open, 9 events")
        assert watch.stop() == 0
    [alert] = jsonl_alerts(out)
    assert alert["device"]["container"]["name"] == "api-0"  # its archive was seen before the reload
    with Store(tmp_path / "tw.duckdb") as store:
        [held] = store.alerts(suppressed=True)
    assert held["device"]["container"]["name"] == "api-1"


def test_sigint_and_sigterm_checkpoint_and_a_restart_carries_on(tmp_path: Path) -> None:
    lines = stream(chains=3, noise_per_chain=4, seed=5)
    watched, out = tmp_path / "falco.jsonl", tmp_path / "alerts.jsonl"
    watched.write_bytes(b"".join(lines[:6]))  # chain 0 is half way: tar and write, no upload
    args = [str(watched), "--db", "tw.duckdb", "--out", str(out), "--status-interval", "0.1"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("open, 6 events")
        watch.signal(signal.SIGINT)  # Ctrl-C: the same clean stop as SIGTERM
        assert watch.stop() == 0
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("resuming from the checkpoint")
        Appender(watched, lines[6:], seed=5).start().join()
        poll(lambda: len(jsonl_alerts(out)) >= 3, 30, "every alert")
        assert watch.stop() == 0
    assert by_uid(jsonl_alerts(out)) == by_uid(detect_alerts(watched))


def test_standard_input_is_read_to_its_end_and_decided_as_detect_does(tmp_path: Path) -> None:
    source = tmp_path / "falco.jsonl"
    source.write_bytes(b"".join(stream(chains=2, noise_per_chain=3, seed=2)))
    out = tmp_path / "alerts.jsonl"
    args = ["-", "--db", "tw.duckdb", "--out", str(out), "--idle-flush", "600"]
    with source.open("rb") as stdin, Watch(args, tmp_path) as watch:
        watch.start(stdin=stdin.fileno())
        assert watch.proc is not None
        assert watch.proc.wait(timeout=30) == 0  # the end of its only input ends the run
    got = jsonl_alerts(out)
    assert len(got) == 2
    assert set(by_uid(got)) == set(by_uid(detect_alerts(source)))
    assert all(e["data"]["raw_ref"]["path"] == "-" for a in got for e in a["evidences"])


def _uid(alert: dict[str, object]) -> str:
    info = alert["finding_info"]
    assert isinstance(info, dict)
    return str(info["uid"])


def test_falco_http_output_acknowledged_before_a_kill_is_detected_after_it(
    tmp_path: Path,
) -> None:
    """Falco POSTs one alert per request; what got a 200 survives kill -9 (journaled first)."""
    lines = stream(chains=3, noise_per_chain=4, seed=11)
    half = len(lines) // 2
    port = free_port()
    out = tmp_path / "alerts.jsonl"
    args = ["--listen", str(port), "--db", "tw.duckdb", "--out", str(out)]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        for line in lines[:half]:
            assert post(port, line) == 200
        watch.kill()
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        for line in lines[half:]:
            assert post(port, line) == 200
        poll(lambda: len(jsonl_alerts(out)) >= 3, 30, "every alert")
        assert watch.stop() == 0
    reference = tmp_path / "reference.jsonl"
    reference.write_bytes(b"".join(lines))
    expected = by_uid(detect_alerts(reference))
    got = by_uid(jsonl_alerts(out))
    assert len(jsonl_alerts(out)) == len(got) == len(expected) == 3
    for uid, alert in got.items():
        assert alert["device"]["container"] == expected[uid]["device"]["container"]
        assert {e["data"]["raw_ref"]["path"] for e in alert["evidences"]} == {
            f"http://127.0.0.1:{port}"
        }


def post(port: int, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/", body, {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()
