"""The disk spool behind the webhook and syslog sinks: order, durability, deduplication, bounds."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.watch.harness import poll
from tidewaiter.sinks.spool import DeliveryError, Put, Spool, SpooledSink


def alert(uid: str, size: int = 0) -> dict[str, Any]:
    return {"finding_info": {"uid": uid}, "time": 1000, "pad": "x" * size}


def drain(spool: Spool) -> list[str]:
    uids = []
    while (item := spool.peek()) is not None:
        found, end = item
        assert found is not None
        uids.append(found["finding_info"]["uid"])
        spool.ack(end)
    return uids


def test_undelivered_alerts_survive_a_restart_in_order_and_delivered_ones_do_not(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, 1 << 20)
    for uid in ("a", "b", "c"):
        assert spool.put(alert(uid)) is Put.QUEUED
    assert spool.peek() is None  # nothing is sent before it is committed
    spool.commit()
    item = spool.peek()
    assert item is not None
    spool.ack(item[1])
    spool.close()
    again = Spool(tmp_path, 1 << 20)
    assert drain(again) == ["b", "c"]
    assert again.put(alert("a")) is Put.KNOWN  # decided again after a crash: not queued twice
    assert again.put(alert("d")) is Put.QUEUED


def test_a_line_torn_by_a_crash_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.put(alert("a"))
    spool.commit()
    spool.close()
    [queue] = tmp_path.glob("queue-*.jsonl")
    with queue.open("ab") as out:
        out.write(b'{"finding_info": {"uid": "b"')  # killed in the middle of a write
    again = Spool(tmp_path, 1 << 20)
    assert drain(again) == ["a"]
    assert again.put(alert("b")) is Put.QUEUED  # never committed: it is queued when decided again


def test_a_full_spool_refuses_and_takes_again_once_delivered(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 3000)
    assert spool.put(alert("a", 1000)) is Put.QUEUED
    assert spool.put(alert("b", 1000)) is Put.QUEUED
    assert spool.put(alert("c", 1000)) is Put.FULL
    spool.commit()
    assert drain(spool) == ["a", "b"]
    assert spool.put(alert("c", 1000)) is Put.QUEUED


def test_compaction_keeps_what_is_undelivered_and_remembers_what_was(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20, compact_bytes=2000)
    for n in range(10):
        spool.put(alert(f"u{n}", 500))
    spool.commit()
    for _ in range(6):
        item = spool.peek()
        assert item is not None
        spool.ack(item[1])
    assert len(list(tmp_path.glob("queue-*.jsonl"))) == 1
    assert (tmp_path / "queue-0.jsonl").exists() is False  # compacted into a new generation
    spool.close()
    again = Spool(tmp_path, 1 << 20)
    assert drain(again) == ["u6", "u7", "u8", "u9"]
    assert again.put(alert("u0")) is Put.KNOWN


class Flaky:
    """A receiver that fails the first ``failures`` attempts, then refuses "bad" for good."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.got: list[str] = []
        self.lock = threading.Lock()

    def send(self, alert: dict[str, Any]) -> None:
        with self.lock:
            self.attempts += 1
            if self.attempts <= self.failures:
                raise DeliveryError("connection refused")
            uid = alert["finding_info"]["uid"]
            if uid == "bad":
                raise DeliveryError("HTTP 400 Bad Request", permanent=True)
            self.got.append(uid)

    def close(self) -> None:
        pass


def test_the_sender_retries_in_order_and_passes_over_a_refused_alert(tmp_path: Path) -> None:
    said: list[str] = []
    receiver = Flaky(failures=3)
    sink = SpooledSink("webhook", Spool(tmp_path, 1 << 20), receiver, said.append, (0.01, 0.02))
    try:
        for uid in ("a", "bad", "b", "c"):
            sink.write(alert(uid))
        sink.commit()
        poll(lambda: receiver.got == ["a", "b", "c"], 10, "delivery after the retries")
    finally:
        sink.close()
    assert receiver.attempts == 3 + 4
    assert sink.refused == 1
    assert any("webhook is failing (connection refused)" in m for m in said)
    assert any("refused alert bad" in m for m in said)
    assert any("delivering again" in m for m in said)


def test_a_full_spool_is_reported_every_time_an_alert_cannot_be_queued(tmp_path: Path) -> None:
    said: list[str] = []
    receiver = Flaky(failures=10**9)  # down for the whole test
    sink = SpooledSink("webhook", Spool(tmp_path, 1500), receiver, said.append, (1.0, 1.0))
    try:
        sink.write(alert("a", 1000))
        sink.write(alert("b", 1000))
        sink.commit()
    finally:
        sink.close(drain=0)
    assert sink.lost == 1
    assert any("spool is full" in m and "alert b is NOT queued" in m for m in said)
