"""Faults that used to lose accepted data: a full disk under the HTTP journal and the webhook
spool, a write the kernel cuts short, a line torn by a crash, and a syslog datagram too large to
send. What is acknowledged is on disk whole; what cannot be delivered is counted and said; a
large alert reaches syslog cut to fit, never dropped.

Real processes and receivers on loopback; the full disk is a real tmpfs (root), the short write a
real RLIMIT_FSIZE."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.adversarial.faults import post, tiny_filesystem, whole_lines
from tests.watch.harness import LOOPBACK, Receiver, Watch, free_port, jsonl_alerts, poll
from tests.watch.scenario import START, chain, record, stream
from tidewaiter.alerts import alert_container
from tidewaiter.sinks.syslog import CUT_MARK, MAX_DATAGRAM, SMALL_DATAGRAM, fit


def padded(index: int, size: int = 900) -> bytes:
    """A Falco alert of about ``size`` bytes, one line."""
    line = record(START + index, "Container process launched", {"pad": "p" * size, "n": index})
    return line.strip()


# --- short writes, deterministically --------------------------------------------------------

_JOURNAL_UNDER_A_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys, time
    from pathlib import Path
    from tidewaiter.sources.base import ReadReport
    from tidewaiter.watch.http_input import HttpInput

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
    folder, port, limit = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    report = ReadReport()
    receiver = HttpInput("127.0.0.1", port, folder, report, print, 1 << 20, 1 << 30)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    print("ready", flush=True)
    while not (folder / "stop").exists():
        receiver.poll(1 << 20)
        time.sleep(0.02)
    receiver.poll(1 << 20)
    receiver.close()
    print("records read", report.records, flush=True)
    """
)


def test_a_write_the_kernel_cuts_short_is_answered_500_and_leaves_whole_lines(
    tmp_path: Path,
) -> None:
    """The file size limit lets the third record in only in part: the kernel writes what fits
    and says so. Before, that record was answered 200 and left a torn line that swallowed the
    next one."""
    port = free_port()
    line = padded(0)
    limit = 2 * (len(line) + 1) + len(line) // 2
    proc = subprocess.Popen(
        [sys.executable, "-c", _JOURNAL_UNDER_A_SIZE_LIMIT, str(tmp_path), str(port), str(limit)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        statuses = []
        for index in range(4):
            statuses.append(_post_when_up(port, padded(index)))
        statuses.append(_post_when_up(port, b'{"rule":"r","output_fields":{}}'))  # fits the rest
        (tmp_path / "stop").touch()
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert statuses == [200, 200, 500, 500, 200]
    journal = next(tmp_path.glob("http-*.journal"))
    lines = whole_lines(journal)
    assert len(lines) == statuses.count(200)
    assert [json.loads(x).get("output_fields", {}).get("n") for x in lines] == [0, 1, None]
    assert "cannot write the journal" in output
    assert f"records read {statuses.count(200)}" in output  # each acknowledged record, once


def _post_when_up(port: int, body: bytes) -> int:
    return poll(lambda: _try_post(port, body), 30, "the receiver")


def _try_post(port: int, body: bytes) -> int:
    try:
        return post(port, body)
    except ConnectionRefusedError:
        return 0


_SPOOL_UNDER_A_SIZE_LIMIT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from tidewaiter.sinks.spool import Spool, SpooledSink
    from tidewaiter.sinks.webhook import WebhookTransport

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    folder, url, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    spool = Spool(folder, 1 << 30)
    # The receiver is down: every alert waits in the spool.
    say = lambda message: print(message, file=sys.stderr, flush=True)
    sink = SpooledSink("webhook", spool, WebhookTransport(url, {}, 1.0), say, (60.0, 60.0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    for n in range(30):
        sink.write({"finding_info": {"uid": f"u{n:02d}"}, "time": 1, "pad": "x" * 500})
    sink.commit()
    print("lost", sink.lost, "pending", spool.pending, flush=True)
    """
)


def test_a_spool_write_cut_short_counts_the_alert_lost_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    down = f"http://{LOOPBACK}:{free_port()}/alerts"
    limit = 10_000  # room for 18 of the 30 alerts, the 19th cut short
    done = subprocess.run(
        [sys.executable, "-c", _SPOOL_UNDER_A_SIZE_LIMIT, str(folder), down, str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    queued = whole_lines(folder / "queue-0.jsonl")
    assert f"lost {30 - len(queued)} pending {len(queued)}" in done.stdout
    assert 0 < len(queued) < 30
    assert "is NOT queued" in done.stderr
    assert [json.loads(x)["finding_info"]["uid"] for x in queued] == [
        f"u{n:02d}" for n in range(len(queued))
    ]


def test_a_journal_line_torn_by_a_crash_is_cut_on_restart(tmp_path: Path) -> None:
    """A crash mid-append leaves part of a line that was never acknowledged; the next record
    must not be glued to it."""
    port = free_port()
    lines = stream(chains=2, noise_per_chain=2, seed=3)
    state = tmp_path / "tw.duckdb.watch"
    state.mkdir()
    journal = state / f"http-{LOOPBACK}-{port}.journal"
    journal.write_bytes(lines[0] + lines[1][:40])  # one whole record, one torn
    out = tmp_path / "alerts.jsonl"
    args = ["--listen", f"{LOOPBACK}:{port}", "--db", "tw.duckdb", "--out", str(out)]
    with Watch([*args, "--status-interval", "0"], tmp_path).start() as watch:
        watch.wait_for("journal line torn by a crash")
        for line in lines[1:]:
            assert _post_when_up(port, line) == 200
        poll(lambda: len(jsonl_alerts(out)) >= 2, 30, "both chains' alerts")
        assert watch.stop() == 0
    assert len(whole_lines(journal)) == len(lines)
    assert not watch.said("records skipped") or watch.said(" 0 records skipped")


# --- a full disk, for real ------------------------------------------------------------------


def test_a_full_disk_under_the_journal_answers_500_and_keeps_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    port = free_port()
    out = tmp_path / "alerts.jsonl"
    args = ["--listen", f"{LOOPBACK}:{port}", "--db", "tw.duckdb", "--out", str(out)]
    with tiny_filesystem(tmp_path / "tw.duckdb.watch", "16k") as state:
        with Watch([*args, "--status-interval", "0"], tmp_path).start() as watch:
            watch.wait_for("watching 1 input(s)")
            statuses = [_post_when_up(port, padded(n, 700)) for n in range(40)]
            assert watch.stop() == 0
        journal = next(state.glob("http-*.journal"))
        lines = whole_lines(journal)
    assert 200 in statuses
    assert 500 in statuses
    assert set(statuses) == {200, 500}
    assert len(lines) == statuses.count(200)  # each 200 is on disk, whole; no 200 is not
    assert watch.said(f"http {statuses.count(500)} requests failed (journal not writable)")


def test_a_full_disk_under_the_webhook_spool_counts_and_reports_every_lost_alert(
    tmp_path: Path,
) -> None:
    chains = 30
    source = tmp_path / "falco.jsonl"
    source.write_bytes(b"".join(stream(chains=chains, noise_per_chain=0)))
    out = tmp_path / "alerts.jsonl"
    port = free_port()
    receiver = Receiver(port)  # down while the disk fills
    args = [str(source), "--db", "tw.duckdb", "--out", str(out), "--status-interval", "0"]
    args += ["--webhook", receiver.url, "--retry-max", "0.5"]
    small = tiny_filesystem(tmp_path / "tw.duckdb.watch", "32k")
    with small as state, Watch(args, tmp_path).start() as watch:
        poll(lambda: len(jsonl_alerts(out)) >= chains, 60, "every alert in the file sink")
        watch.wait_for("is NOT queued")
        queue = next((state / "webhook").glob("queue-*.jsonl"))

        seen: list[bytes] = []

        def settled() -> tuple[int] | None:
            """The spool's count once it has stopped changing: the spool writes each alert
            right after the file sink, so the last ones may still be going in."""
            data = queue.read_bytes()
            seen.append(data)
            if data and not data.endswith(b"\n"):
                return None  # a write in progress (a failed one is cut back to a whole line)
            steady = len(seen) > 10 and all(d == data for d in seen[-10:])  # 10 reads, 0.3 s
            return (len(data.splitlines()),) if steady else None

        (queued,) = poll(settled, 60, "the spool to settle", every=0.03)
        with receiver:
            poll(lambda: len(receiver.uids()) >= queued, 60, "the queued alerts")
            assert watch.stop() == 0
        delivered = receiver.uids()
    lost = _lost(watch)
    assert lost > 0
    assert len(delivered) == len(set(delivered)) == queued
    fired = {alert["finding_info"]["uid"] for alert in jsonl_alerts(out)}
    assert len(fired) == chains
    assert set(delivered) <= fired
    assert len(delivered) + lost == chains  # every alert delivered, or counted as lost


def _lost(watch: Watch) -> int:
    """The lost count on the last status line."""
    for line in reversed(watch.lines):
        for part in line.split("; "):
            if part.startswith("webhook ") and "alerts LOST" in part:
                return int(part.split()[1])
    return 0


# --- syslog: an alert too large for a datagram ----------------------------------------------


def _big_tar_chain(files: int) -> list[bytes]:
    """One archive-and-upload chain whose tar names ``files`` files on its command line."""
    names = " ".join(f"/srv/data/customers/part-{n:05d}.csv" for n in range(files))
    lines = chain(0, START)
    first = orjson.loads(lines[0])
    first["output_fields"]["proc.cmdline"] = f"tar -czf /tmp/dump-0.tar.gz {names}"
    lines[0] = orjson.dumps(first) + b"\n"
    return [*lines, stream(chains=1, noise_per_chain=0)[-1]]


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_an_alert_too_large_for_a_datagram_reaches_syslog_cut_to_fit(
    tmp_path: Path, kind: str
) -> None:
    """A tar of 6,000 files: before, the Critical was refused as too large and never sent."""
    source = tmp_path / "falco.jsonl"
    source.write_bytes(b"".join(_big_tar_chain(6000)))
    out = tmp_path / "alerts.jsonl"
    if kind == "udp":
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((LOOPBACK, 0))
        url = f"udp://{LOOPBACK}:{receiver.getsockname()[1]}"
    else:
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(tmp_path / "log.sock"))
        url = f"unix://{tmp_path / 'log.sock'}"
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    receiver.settimeout(60)
    args = [str(source), "--db", "tw.duckdb", "--out", str(out), "--syslog", url]
    with receiver, Watch([*args, "--status-interval", "0"], tmp_path).start() as watch:
        datagram = receiver.recv(1 << 17)
        assert watch.stop() == 0
    [fired] = [
        a for a in jsonl_alerts(out) if a["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    ]
    assert len(orjson.dumps(fired)) > MAX_DATAGRAM  # it did not fit as it was
    assert len(datagram) <= MAX_DATAGRAM
    sent = orjson.loads(datagram.split(b" - finding - ", 1)[1])
    for field in ("finding_info", "severity_id", "severity", "time"):
        assert sent[field] == fired[field]  # what, how bad and when are never cut
    assert alert_container(sent) == alert_container(fired)  # nor where
    cuts = sent["unmapped"]["cut"]
    assert any("cmd_line" in cut for cut in cuts)
    commands = [e["process"]["cmd_line"] for e in sent["evidences"] if "process" in e]
    assert any(
        c.startswith("tar -czf /tmp/dump-0.tar.gz") and c.endswith(CUT_MARK) for c in commands
    )
    assert watch.said("0 records skipped") or not watch.said("syslog refused")


@pytest.mark.parametrize("limit", [MAX_DATAGRAM, SMALL_DATAGRAM])
@pytest.mark.parametrize(
    "shape",
    ["long description", "many evidences", "long strings everywhere", "deep parents"],
)
def test_any_alert_is_cut_to_fit_with_its_identity_whole(shape: str, limit: int) -> None:
    """Whatever the attacker made long, the cut alert fits and still says who, what, how bad."""
    container = {"uid": "c0ffee000000", "name": "api-0"}
    evidence = {
        "data": {"signal": "archive"},
        "process": {"cmd_line": "tar -cf a.tar /srv"},
        "container": container,
    }
    alert: dict[str, Any] = {
        "time": 1714644000123,
        "severity_id": 5,
        "severity": "Critical",
        "finding_info": {"uid": "f" * 32, "title": "Archive staged and exfiltrated", "desc": "d"},
        "evidences": [evidence],
        "unmapped": {"k8s": {"namespace": "shop", "pod": "api-0"}},
    }
    if shape == "long description":
        alert["finding_info"]["desc"] = "reason; " * 50_000
    elif shape == "many evidences":
        alert["evidences"] = [evidence] * 5_000
    elif shape == "long strings everywhere":
        alert["evidences"] = [
            {"process": {"cmd_line": "x" * 20_000, "cwd": "y" * 20_000}, "container": container}
            for _ in range(64)
        ]
    else:
        process: dict[str, Any] = {"cmd_line": "sh"}
        for _ in range(100):  # as deep as JSON encoders go (orjson stops at 254 levels)
            process = {"cmd_line": "z" * 1_000, "parent_process": process}
        alert["evidences"] = [{"process": process, "container": container}]
    cut = fit(alert, limit)
    assert len(orjson.dumps(cut)) <= limit
    for field in ("time", "severity_id", "severity"):
        assert cut[field] == alert[field]
    assert cut["finding_info"]["uid"] == alert["finding_info"]["uid"]
    assert cut["finding_info"]["title"] == alert["finding_info"]["title"]
    assert cut["unmapped"]["k8s"] == alert["unmapped"]["k8s"]
    assert alert_container(cut) == container
    assert cut["unmapped"]["cut"]  # every cut is named
