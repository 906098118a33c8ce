"""The last result of every emulation run (live or replayed), in one small JSON file.

Keyed by scenario, mode ("live" or "replay:<format>") and platform, so a newer run of the same
thing replaces the older one. Written atomically (a temporary file renamed into place) under a
lock, so parallel runs do not lose each other's results.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

VERSION = 1


class RunRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    scenario: str
    mode: str  # "live" or "replay:<format>"
    platform: str
    passed: bool
    time: float  # when it ran, epoch seconds
    fired: tuple[str, ...] = ()  # analytics that fired for the scenario's entity
    gaps: tuple[str, ...] = ()  # known detection gaps still open in this run
    detail: str = ""

    @property
    def key(self) -> str:
        return f"{self.scenario}|{self.mode}|{self.platform}"


class Results(msgspec.Struct):
    version: int = VERSION
    runs: dict[str, RunRecord] = msgspec.field(default_factory=dict)

    def last(self, scenario: str, mode: str, platform: str) -> RunRecord | None:
        return self.runs.get(f"{scenario}|{mode}|{platform}")


def default_path() -> Path:
    override = os.environ.get("TIDEWAITER_RESULTS")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tidewaiter" / "emulation-results.json"


def load(path: Path) -> Results:
    """The stored results; none when the file does not exist yet. A damaged file raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Results()
    try:
        return msgspec.json.decode(data, type=Results)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"{path}: not an emulation results file ({exc})") from None


def store(path: Path, records: Iterable[RunRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load(path)
        for record in records:
            results.runs[record.key] = record
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(handle, "wb") as stream:
            stream.write(msgspec.json.format(msgspec.json.encode(results), indent=1))
        os.replace(temporary, path)


def now() -> float:
    return round(time.time(), 3)
