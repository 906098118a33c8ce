"""`tidewaiter emulate run` as a user runs it: what it writes, prints, stores and returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidewaiter.cli.main import main
from tidewaiter.emulate import results


def test_write_one_format_keeps_the_file_and_records_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "results.json"
    code = main(
        ["emulate", "run", "upload-tcp-nc-pipe", "--write", "falco", "--out-dir", str(tmp_path),
         "--results", str(stored)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "pass  upload-tcp-nc-pipe  falco (linux)" in out
    written = tmp_path / "upload-tcp-nc-pipe.linux.falco.jsonl"
    assert written.is_file()
    assert main(["detect", "--json", str(written)]) == 0  # the file is plain Falco telemetry
    last = results.load(stored).last("upload-tcp-nc-pipe", "replay:falco", "linux")
    assert last is not None
    assert last.passed
    assert "tw-archive-exfil" in last.fired


def test_write_all_formats_of_all_scenarios_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "results.json"
    assert main(["emulate", "run", "all", "--write", "all", "--results", str(stored)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert len(results.load(stored).runs) > 100


def test_no_record_leaves_the_results_alone(tmp_path: Path) -> None:
    stored = tmp_path / "results.json"
    assert main(
        ["emulate", "run", "ads-linux-tar", "--write", "tetragon", "--results", str(stored),
         "--no-record"]
    ) == 0  # fmt: skip
    assert not stored.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["emulate", "run", "no-such", "--write", "all"], "no scenario 'no-such'"),
        (["emulate", "run", "ads-linux-tar", "--write", "pcap"], "no writer for 'pcap'"),
        (["emulate", "run", "ads-windows-compress-archive", "--write", "eslogger"],
         "eslogger cannot express ads-windows-compress-archive (windows)"),
        (["emulate", "run", "ads-windows-compress-archive", "--live"],
         "is a windows scenario: replay it with --write instead"),
    ],
)  # fmt: skip
def test_usage_errors_say_what_is_wrong(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = 4 if "no scenario" in message else 2  # not found, or a usage error
    assert main([*argv, "--results", str(tmp_path / "r.json")]) == code
    assert message in capsys.readouterr().err


def test_a_failing_replay_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    from tidewaiter.cli import emulate
    from tidewaiter.emulate.scenario import Expect, get

    wrong = msgspec.structs.replace(
        get("benign-extraction"), expect=(Expect(analytic="tw-archive-exfil"),)
    )
    monkeypatch.setattr(emulate, "get", lambda _: wrong)
    stored = tmp_path / "r.json"
    assert main(["emulate", "run", "x", "--write", "tetragon", "--results", str(stored)]) == 1
    assert "FAIL" in capsys.readouterr().out
    last = results.load(stored).last("benign-extraction", "replay:tetragon", "linux")
    assert last is not None
    assert not last.passed
    assert "not fired" in last.detail
