"""Synthetic telemetry: a scenario's plan written in a producer's own format.

One module a format. A writer declares which platforms it serves, what it can express (process
launches, PowerShell script blocks, file creations, network connections, byte counts,
container ids) and which source reads its output back; `emulate run --write FORMAT` writes, and
replay reads the file through that source, so every reader meets every scenario it can express.
Writers exist only for formats whose reader exists: ``available()`` leaves out a writer whose
source is not registered.
"""

from __future__ import annotations

import importlib
import shlex
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import ClassVar

from tidewaiter.emulate.plan import Kind, Plan
from tidewaiter.emulate.scenario import Platform, Scenario
from tidewaiter.sources import UnknownFormat, get

_MODULES = ("sensor", "tetragon", "falco", "auditd", "sysmon", "powershell", "eslogger", "ocsf")


class Writer(ABC):
    name: ClassVar[str]  # the --write value
    title: ClassVar[str]
    source: ClassVar[str]  # the tidewaiter source that reads what this writes
    suffix: ClassVar[str]
    platforms: ClassVar[frozenset[Platform]]
    kinds: ClassVar[frozenset[Kind]]  # what the format can say
    names_containers: ClassVar[bool]

    def expresses(self, scenario: Scenario, platform: Platform) -> bool:
        from tidewaiter.emulate.plan import plan

        if platform not in self.platforms or platform not in scenario.platforms:
            return False
        return all(need & self.kinds for need in plan(scenario, platform).needs())

    def platforms_for(self, scenario: Scenario) -> list[Platform]:
        return [p for p in scenario.platforms if self.expresses(scenario, p)]

    @abstractmethod
    def render(self, plan: Plan) -> bytes:
        """The plan's telemetry, as the producer would have written it."""


_writers: dict[str, Writer] = {}


def register(cls: type[Writer]) -> type[Writer]:
    if cls.name in _writers:
        raise ValueError(f"writer {cls.name!r} registered twice")
    _writers[cls.name] = cls()
    return cls


_loaded = False


def _load() -> None:
    """Import every writer module once (importing one directly must not hide the others)."""
    global _loaded  # noqa: PLW0603 - a process-wide, import-once registry
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"tidewaiter.emulate.writers.{module}")
        _loaded = True


def all_writers() -> list[Writer]:
    """In _MODULES order, whichever writer module was imported first."""
    _load()
    rank = {module: i for i, module in enumerate(_MODULES)}
    return sorted(
        _writers.values(), key=lambda w: rank.get(type(w).__module__.rsplit(".", 1)[-1], 99)
    )


def available() -> list[Writer]:
    """The writers whose output some registered source reads."""
    found = []
    for writer in all_writers():
        try:
            get(writer.source)
        except UnknownFormat:
            continue
        found.append(writer)
    return found


def writer(name: str) -> Writer:
    for candidate in available():
        if candidate.name == name:
            return candidate
    names = ", ".join(w.name for w in available())
    raise KeyError(f"no writer {name!r}; formats: {names}")


# --- helpers the writers share -----------------------------------------------------------------


def iso(epoch: float, digits: int = 9) -> str:
    """RFC 3339 UTC with a fixed number of fractional digits (``...T00:00:00.123456789Z``)."""
    whole = int(epoch)
    fraction = f"{epoch - whole:.{digits}f}"[2:] if digits else ""
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction}Z" if digits else f"{stamp}Z"


def posix_command_line(argv: tuple[str, ...]) -> str:
    return shlex.join(argv)


def windows_command_line(argv: tuple[str, ...]) -> str:
    """argv as Windows writes a command line: arguments with spaces or quotes in double quotes
    (CommandLineToArgvW's rules)."""
    parts = []
    for arg in argv:
        if arg and not any(c in arg for c in ' \t"'):
            parts.append(arg)
        else:
            parts.append('"' + arg.replace('"', '\\"') + '"')
    return " ".join(parts)
