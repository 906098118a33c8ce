"""What the sensor and live emulation say when the host lacks something: one sentence."""

from __future__ import annotations

import pytest

from tidewaiter.cli.main import main
from tidewaiter.emulate import live
from tidewaiter.emulate.scenario import get
from tidewaiter.sensor import prereqs


def test_a_plain_user_without_bpftrace_is_told_both_in_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name: None)
    message = prereqs.sensor_missing()
    assert message == (
        "The sensor cannot run: it must run as root (loading eBPF programs and creating "
        "namespaces need it); bpftrace is not installed (apt-get install bpftrace)."
    )


def test_tracefs_is_mounted_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    mounted: list[list[str]] = []

    class Done:
        returncode = 0
        stderr = ""

    state = {"mounted": False}
    monkeypatch.setattr(
        prereqs, "tracefs", lambda: prereqs.TRACEFS[0] if state["mounted"] else None
    )
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 0)

    def mount(argv: list[str], **kwargs: object) -> Done:
        mounted.append(argv)
        state["mounted"] = True
        return Done()

    monkeypatch.setattr(prereqs.subprocess, "run", mount)
    assert prereqs.ensure_tracefs() is None
    assert mounted == [["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"]]


def test_live_emulation_names_every_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name: None)
    monkeypatch.setattr(live.rootfs, "static_busybox", lambda: None)
    message = live.live_missing(get("upload-tcp-nc-pipe"))
    assert message is not None
    assert message.startswith("Live emulation cannot run here: runc is not installed")
    assert "ip is not installed (apt-get install iproute2)" in message
    assert "busybox-static" in message
    assert message.count(".") == 1  # one sentence, ending with its full stop


def test_sensor_check_answers_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    assert main(["sensor", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("The sensor cannot run: it must run as root")
    assert len(err.strip().splitlines()) == 1
