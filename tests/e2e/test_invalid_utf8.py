"""One invalid UTF-8 byte in an attacker-chosen argument must not hide an attack.

Every attack scenario whose telemetry is text is replayed with a byte 0xFF put in front of an
argument its alert names (the archive's name where the alert has one), in every file of the
scenario. The same analytics must still fire at the same severity, and the evidence must show
the byte as U+FFFD: the corrupted record itself was read, not a clean neighbour. This held on
msgspec 0.22, which raised UnicodeDecodeError for such a byte, and must hold on 0.23+, which
raises DecodeError, and on whatever the lock or pyproject's ranges allow next.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import orjson
import pytest

from tidewaiter import evaluate
from tidewaiter.alerts import alert_container
from tidewaiter.run import detect_files

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
BAD = b"\xff"
# Telemetry that is not text: EVTX strings are UTF-16 and decoded by the evtx library.
BINARY = {".evtx"}


def _text_attacks() -> list[Path]:
    folders = []
    for folder in evaluate.discover(SCENARIOS / "attack"):
        scenario = evaluate.load(folder)
        if not any(Path(t).suffix in BINARY for t in scenario.telemetry):
            folders.append(folder)
    return folders


def _run(folder: Path) -> list[dict[str, Any]]:
    scenario = evaluate.load(folder)
    config = evaluate.engine_config(scenario)
    outcome = detect_files([str((folder / t).resolve()) for t in scenario.telemetry], config, [])
    assert outcome.report.skipped_total == 0, outcome.report
    return [a for a in outcome.alerts if a["severity_id"] > evaluate.LOW]


def _names(alert: dict[str, Any], evidence: dict[str, Any]) -> list[str]:
    """Names the attacker chose, most telling first: the file, the arguments (and their last
    path component, which survives URL encoding), the container's name."""
    path = (evidence.get("file") or {}).get("path") or ""
    names = [PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name]
    cmd_line = (evidence.get("process") or {}).get("cmd_line") or ""
    for word in reversed(cmd_line.split()):
        names += [word, PurePosixPath(word).name]
    names.append(alert_container(alert).get("name") or "")
    return [n for n in names if len(n.encode()) >= 4]


def _needle(alerts: list[dict[str, Any]]) -> bytes:
    """A name from an evidence that stands as it is in the raw record the evidence came from."""
    for alert in alerts:
        for evidence in alert["evidences"]:
            ref = evidence["data"].get("raw_ref") or {}
            if not ref.get("line"):
                continue
            raw = Path(ref["path"]).read_bytes().splitlines()[ref["line"] - 1]
            for name in _names(alert, evidence):
                if name.encode() in raw:
                    return name.encode()
    raise AssertionError("no name from the evidence stands in its raw record")


def _summary(alerts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return sorted((a["finding_info"]["analytic"]["uid"], a["severity_id"]) for a in alerts)


@pytest.mark.parametrize("folder", _text_attacks(), ids=lambda f: f.name)
def test_an_invalid_byte_in_an_argument_does_not_hide_the_attack(
    folder: Path, tmp_path: Path
) -> None:
    clean = _run(folder)
    assert clean, "the scenario alerts when its telemetry is clean"

    scenario = evaluate.load(folder)
    copy = tmp_path / folder.name
    copy.mkdir()
    telemetry = [(folder / t).resolve() for t in scenario.telemetry]
    needle = _needle(clean)
    names = []
    for index, source in enumerate(telemetry):
        name = f"{index}-{source.name}"
        (copy / name).write_bytes(source.read_bytes().replace(needle, BAD + needle))
        names.append(name)
    shutil.copy(folder / "scenario.yaml", copy / "scenario.yaml")
    text = (copy / "scenario.yaml").read_text()
    listed = "[" + ", ".join(scenario.telemetry) + "]"
    assert listed in text
    (copy / "scenario.yaml").write_text(text.replace(listed, "[" + ", ".join(names) + "]"))

    corrupted = _run(copy)
    assert _summary(corrupted) == _summary(clean)
    assert "\ufffd" + needle.decode() in orjson.dumps(corrupted).decode()
