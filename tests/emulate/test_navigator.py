"""`tidewaiter coverage --navigator`: an ATT&CK Navigator layer that follows format 4.5 and
colours each technique by covered and proven by emulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.emulate.navigator_schema import problems
from tidewaiter.cli.main import main
from tidewaiter.emulate import results
from tidewaiter.emulate.coverage import LIVE
from tidewaiter.emulate.navigator import COVERED, FAILING, PROVEN
from tidewaiter.emulate.results import RunRecord


def write_layer(tmp_path: Path, records: list[RunRecord]) -> dict[str, object]:
    stored = tmp_path / "results.json"
    results.store(stored, records)
    out = tmp_path / "layer.json"
    assert main(["coverage", "--results", str(stored), "--navigator", str(out)]) == 0
    layer: dict[str, object] = json.loads(out.read_text())
    return layer


def by_id(layer: dict[str, object]) -> dict[str, dict[str, object]]:
    techniques = layer["techniques"]
    assert isinstance(techniques, list)
    return {t["techniqueID"]: t for t in techniques}


def test_the_layer_follows_the_navigator_layer_format(tmp_path: Path) -> None:
    layer = write_layer(tmp_path, [RunRecord("ads-linux-tar", LIVE, "linux", True, time=1.0)])
    assert problems(layer) == []
    assert layer["versions"] == {"attack": "16", "navigator": "5.1.0", "layer": "4.5"}


def test_the_schema_checks_catch_what_the_format_forbids() -> None:
    """The checks are real: each of these departures from format 4.5 is named."""
    bad = {
        "name": "x",
        "domain": "enterprise",
        "versions": {"layer": "4.4", "navigator": "4.8.0"},
        "techniques": [
            {"techniqueID": "1560", "tactic": "Collection", "color": "green", "colour": "#fff"},
            {"techniqueID": "T1560.001", "showSubtechniques": True, "score": True},
        ],
        "gradient": {"colors": ["#ffffff"], "minValue": 5, "maxValue": 1},
        "legendItems": [{"label": "x"}],
        "filters": {"platforms": ["Containers"]},
    }
    found = "\n".join(problems(bad))
    for expected in (
        "domain 'enterprise'",
        "versions.layer must be '4.5'",
        "at least 4.9.0",
        "techniqueID must be",
        "tactic 'Collection'",
        "color must be a hex colour",
        "'colour' is not a property",
        "showSubtechniques is only valid",
        "score: must not be a boolean",
        "at least two hex colours",
        "maxValue must be greater",
        "label and color are required",
        "'Containers' is not a platform",
    ):
        assert expected in found


def test_techniques_are_coloured_by_covered_and_proven(tmp_path: Path) -> None:
    layer = write_layer(
        tmp_path,
        [
            RunRecord("ads-linux-tar", LIVE, "linux", True, time=1.0),
            RunRecord(
                "ads-windows-compress-archive", "replay:sysmon-xml", "windows", False, time=1.0
            ),
        ],
    )
    techniques = by_id(layer)
    exfil = techniques["T1048"]  # ads-linux-tar emulates T1048 and passed
    assert exfil["color"] == PROVEN.color
    assert "tw-archive-exfil" in str(exfil["comment"])
    assert "Linux: live" in str(exfil["comment"])
    assert techniques["T1610"]["color"] == FAILING.color  # only the failed Windows run has it
    assert techniques["T1611"]["color"] == COVERED.color  # an analytic names it; no run proves it
    assert techniques["T1560.001"]["tactic"] == "collection"
    assert techniques["T1611"]["tactic"] == "privilege-escalation"
    assert techniques["T1560"]["showSubtechniques"] is True
    legend = {item["label"] for item in layer["legendItems"]}  # type: ignore[attr-defined]
    assert PROVEN.label in legend


def test_an_unwritable_layer_path_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "layer.json"
    stored = tmp_path / "results.json"
    assert main(["coverage", "--results", str(stored), "--navigator", str(target)]) == 2
    assert f"cannot write {target}" in capsys.readouterr().err
