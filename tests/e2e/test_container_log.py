"""A sensor that writes to stdout, read from the node's container log files: Tetragon's
export-stdout and Falco's JSON output wrapped by containerd (CRI) or Docker's json-file driver
give the alerts of the plain files, in detect, --jobs and watch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.watch.harness import Watch, jsonl_alerts, poll
from tidewaiter.alerts import evidence_ref
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sources import get, sniff
from tidewaiter.sources.container_log import MAX_PARTS_BYTES

ROOT = Path(__file__).resolve().parents[2]
TETRAGON = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
FALCO = ROOT / "scenarios" / "attack" / "atomic-t1560-001-linux-gzip" / "falco.jsonl"
STAMP = b"2026-12-07T05:00:00.123456789Z"


def cri(lines: list[bytes], part: int = 0) -> list[bytes]:
    """Each line as containerd writes it; with ``part``, split into P pieces of that size."""
    out: list[bytes] = []
    for line in lines:
        content = line.rstrip(b"\n")
        while part and len(content) > part:
            out.append(STAMP + b" stdout P " + content[:part] + b"\n")
            content = content[part:]
        out.append(STAMP + b" stdout F " + content + b"\n")
    return out


def docker(lines: list[bytes], part: int = 0) -> list[bytes]:
    """Each line as Docker's json-file driver writes it, split the same way."""
    out: list[bytes] = []
    for line in lines:
        text = line.decode()
        pieces = [text[i : i + part] for i in range(0, len(text), part)] if part else [text]
        for piece in pieces:
            entry = {"log": piece, "stream": "stdout", "time": "2026-12-07T05:00:00.1Z"}
            out.append(json.dumps(entry).encode() + b"\n")
    return out


def findings(*paths: Path, jobs: int = 1) -> list[tuple[str, int, tuple[str, ...]]]:
    outcome = detect_files([str(p) for p in paths], EngineConfig(), [], jobs=jobs)
    assert not outcome.unreadable
    return sorted(
        (
            a["finding_info"]["uid"],
            a["severity_id"],
            tuple(json.dumps(e.get("process"), sort_keys=True) for e in a["evidences"]),
        )
        for a in outcome.alerts
    )


@pytest.mark.parametrize("wrap", [cri, docker])
@pytest.mark.parametrize("plain", [TETRAGON, FALCO], ids=["tetragon", "falco"])
def test_wrapped_lines_give_the_alerts_of_the_plain_file(
    tmp_path: Path, wrap: object, plain: Path
) -> None:
    lines = plain.read_bytes().splitlines(keepends=True)
    wrapped = tmp_path / "node.log"
    wrapped.write_bytes(b"".join(wrap(lines, part=300)))  # type: ignore[operator]
    expected = findings(plain)
    assert expected
    assert findings(wrapped) == expected


def test_a_split_record_points_at_its_last_part_and_stderr_is_passed_over(
    tmp_path: Path,
) -> None:
    lines = TETRAGON.read_bytes().splitlines(keepends=True)
    wrapped = [*cri(lines[:1], part=200), STAMP + b" stderr F level=info msg=starting\n"]
    wrapped += cri(lines[1:])
    path = tmp_path / "tetragon-export-stdout.log"
    path.write_bytes(b"".join(wrapped))
    outcome = detect_files([str(path)], EngineConfig(), [])
    report = outcome.report
    assert report.files == {str(path): "tetragon"}
    assert (report.records, report.events, report.skipped_total) == (len(lines) + 1, len(lines), 0)
    assert report.foreign == {"container log line on stderr": 1}
    [alert] = outcome.alerts
    first_parts = len(cri(lines[:1], part=200))
    refs = {evidence_ref(e)["line"] for e in alert["evidences"]}
    assert first_parts in refs  # the split exec record, at its F line
    assert not refs & set(range(1, first_parts))


def test_a_runaway_split_record_is_counted_and_what_follows_is_read(tmp_path: Path) -> None:
    lines = TETRAGON.read_bytes().splitlines(keepends=True)
    piece = b"x" * (1 << 20)
    runaway = [STAMP + b" stdout P " + piece + b"\n"] * (MAX_PARTS_BYTES // len(piece) + 2)
    path = tmp_path / "node.log"
    end = STAMP + b" stdout F }\n"
    path.write_bytes(b"".join([*cri(lines[:1]), *runaway, end, *cri(lines[1:])]))
    outcome = detect_files([str(path)], EngineConfig(), [])
    assert outcome.report.skipped_total == 1
    assert "longer than" in next(iter(outcome.report.skipped))
    assert outcome.report.events == len(lines)
    assert len(outcome.alerts) == 1


def test_what_is_inside_is_named_when_it_is_in_no_format(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b"".join(cri([b"GET /healthz 200\n", b"GET / 200\n"])))
    outcome = detect_files([str(path)], EngineConfig(), [])
    [why] = outcome.unreadable
    assert why.startswith(f"{path}: container log lines (CRI: containerd, CRI-O); inside them, ")


def test_jobs_route_wrapped_lines_like_plain_ones(tmp_path: Path) -> None:
    line = TETRAGON.read_bytes().splitlines(keepends=True)[0]
    source = sniff(b"".join(cri([line])), "node.log")
    assert source.name == "tetragon"
    assert source.routable
    assert source.route_hint(cri([line])[0]) == get("tetragon").route_hint(line) is not None
    assert source.route_hint(cri([line], part=100)[0]) is None  # a part alone cannot be routed
    wrapped = tmp_path / "node.log"
    wrapped.write_bytes(b"".join(cri(TETRAGON.read_bytes().splitlines(keepends=True))))
    assert findings(wrapped, jobs=2) == findings(TETRAGON)


def test_watch_follows_a_container_log_as_its_parts_arrive(tmp_path: Path) -> None:
    lines = cri(TETRAGON.read_bytes().splitlines(keepends=True), part=250)
    path = tmp_path / "tetragon_export-stdout.log"
    path.write_bytes(b"".join(lines[:3]))
    out = tmp_path / "alerts.jsonl"
    args = [str(path), "--db", str(tmp_path / "tw.duckdb"), "--out", str(out)]
    args += ["--idle-flush", "0.5"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        with path.open("ab") as stream:
            for line in lines[3:]:  # a record's parts one write at a time
                stream.write(line)
                stream.flush()
        [alert] = poll(lambda: jsonl_alerts(out), 60, "the alert")
        assert watch.stop() == 0
    assert alert["finding_info"]["uid"] == findings(TETRAGON)[0][0]


_LINE = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda tag, body: STAMP + b" stdout " + tag + b" " + body,
        st.sampled_from([b"F", b"P", b"F:x", b"Q"]),
        st.binary(max_size=80),
    ),
    st.builds(
        lambda body: json.dumps({"log": body, "stream": "stdout"}).encode(), st.text(max_size=60)
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=12))
def test_any_lines_after_a_container_log_head_are_counted_never_raised(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    # The first record is real, so the file is recognised; everything after it is hostile.
    head = cri(TETRAGON.read_bytes().splitlines(keepends=True)[:1])
    path = tmp_path_factory.mktemp("cri") / "node.log"
    path.write_bytes(b"".join([*head, *(line.replace(b"\n", b" ") + b"\n" for line in lines)]))
    outcome = detect_files([str(path)], EngineConfig(), [])
    report = outcome.report
    assert report.files == {str(path): "tetragon"}
    assert report.events >= 1  # the real first record is never lost to what follows
