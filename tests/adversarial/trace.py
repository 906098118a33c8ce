"""Adversarial traces written in producers' own formats and run through the real `detect`.

A test describes what the attacker did (execs, files, connections) once; `Trace.write` renders it
with the emulation's writers (Tetragon, Falco, auditd, Sysmon for Linux), so every class is
played in several formats through the same readers and command a user runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tidewaiter.cli.main import main
from tidewaiter.emulate.plan import Connect, Exec, FileCreate, Plan, Proc, Send, Stage
from tidewaiter.emulate.writers import writer

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PUBLIC = "203.0.113.77"  # documentation range: outside, never contacted (records only)
FORMATS = ("tetragon", "falco")
SHELL = "/bin/sh"


@dataclass
class Trace:
    host: str = "node-a"
    container: str | None = "c0ffee" * 10 + "abcd"
    ip: str = "10.42.0.7"
    actions: list[Exec | FileCreate | Connect | Send] = field(default_factory=list)
    _pid: int = 300
    _session: Proc | None = None

    def _proc(self, argv: tuple[str, ...], time: float, exe: str | None = None) -> Proc:
        self._pid += 1
        if self._session is None:
            self._session = Proc(200, SHELL, (SHELL,), time - 1, "session")
        guid = hashlib.sha256(f"{self.host}{self._pid}{argv}".encode()).hexdigest()[:16]
        path = exe or (argv[0] if argv[0].startswith("/") else f"/usr/bin/{argv[0]}")
        return Proc(self._pid, path, argv, time, guid, parent=self._session)

    def run(self, time: float, *argv: str, exe: str | None = None) -> Proc:
        proc = self._proc(tuple(argv), T0 + time, exe)
        self.actions.append(Exec(T0 + time, proc))
        return proc

    def write_file(self, time: float, proc: Proc, path: str) -> None:
        self.actions.append(FileCreate(T0 + time, proc, path))

    def send(self, time: float, proc: Proc, dst: str, nbytes: int, port: int = 443) -> None:
        sport = 40000 + proc.pid
        self.actions.append(Connect(T0 + time, proc, self.ip, sport, dst, port))
        self.actions.append(Send(T0 + time + 0.5, proc, self.ip, sport, dst, port, nbytes))

    def stage(self) -> Stage:
        name = "workload" if self.container else None
        return Stage("linux", self.host, self.ip, self.container, name, PUBLIC, 443, True)

    def render(self, fmt: str) -> bytes:
        plan = Plan(scenario=None, stage=self.stage(), actions=list(self.actions))  # type: ignore[arg-type]
        return writer(fmt).render(plan)

    def write(self, folder: Path, fmt: str, name: str = "trace") -> Path:
        out = folder / f"{name}{writer(fmt).suffix}"
        out.write_bytes(self.render(fmt))
        return out


def detect(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    """Alerts `tidewaiter detect --json` prints (exit 0 expected: no --fail-on-alert)."""
    return detect_and_report(capsys, *argv)[0]


def detect_and_report(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[list[dict[str, object]], str]:
    """The alerts, and the summary `detect` writes on standard error."""
    code = main(["detect", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


def analytic(alert: dict[str, object]) -> str:
    return alert["finding_info"]["analytic"]["uid"]  # type: ignore[index,no-any-return]


def exfil(alerts: list[dict[str, object]]) -> list[dict[str, object]]:
    return [a for a in alerts if analytic(a) == "tw-archive-exfil"]
