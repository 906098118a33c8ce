"""Every alert tidewaiter writes is a valid OCSF Detection Finding.

Checked against the published OCSF schema (the version and profiles the alert's metadata names),
as JSON Schema from the ocsf-json-schema package, over the alerts and the held-back findings of
the whole labelled scenario set: attacks and benign runs in every format the set holds.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from tidewaiter import evaluate
from tidewaiter.alerts import OCSF_VERSION, PROFILES
from tidewaiter.run import detect_files

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@cache
def validator(version: str, profiles: tuple[str, ...]) -> jsonschema.Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
    class_schema = schema.get_class_schema(
        class_name=schema.lookup_class_name_from_uid(class_uid=2004), profiles=list(profiles)
    )
    return jsonschema.Draft202012Validator(class_schema)


def problems(alert: dict[str, Any]) -> list[str]:
    metadata = alert["metadata"]
    check = validator(metadata["version"], tuple(metadata.get("profiles", ())))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in check.iter_errors(alert)
    ]


def test_the_checker_catches_what_ocsf_forbids() -> None:
    alert: dict[str, Any] = {
        "class_uid": 2004,
        "category_uid": 2,
        "activity_id": 1,
        "type_uid": 200401,
        "time": 1,
        "severity_id": 3,
        "finding_info": {"uid": "u", "title": "t"},
        "metadata": {"version": OCSF_VERSION, "profiles": list(PROFILES), "product": {"name": "x"}},
    }
    assert problems(alert) == []
    alert["container"] = {"uid": "c"}  # no such attribute in the class: it is device.container
    alert["evidences"] = [{"raw_ref": {"line": 1}, "data": {}}]  # nor in an evidence
    found = problems(alert)
    assert any("'container' was unexpected" in p for p in found)
    assert any(p.startswith("evidences/0") and "raw_ref" in p for p in found)


def _scenario_alerts() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for folder in evaluate.discover(SCENARIOS):
        scenario = evaluate.load(folder)
        config = evaluate.engine_config(scenario)
        outcome = detect_files([str(folder / t) for t in scenario.telemetry], config, [])
        out += [(folder.name, a) for a in outcome.alerts + outcome.suppressed]
    return out


def test_every_alert_of_the_scenario_set_is_a_valid_detection_finding() -> None:
    alerts = _scenario_alerts()
    assert len(alerts) >= 40
    assert {a["metadata"]["version"] for _, a in alerts} == {OCSF_VERSION}
    invalid = {f"{name} {a['finding_info']['uid'][:8]}": problems(a) for name, a in alerts}
    assert {k: v for k, v in invalid.items() if v} == {}


@pytest.mark.parametrize("version", ["1.3.0", "1.5.0", "1.8.0"])
def test_the_alerts_also_hold_under_neighbouring_ocsf_versions(version: str) -> None:
    # Consumers pin their own OCSF version; the attributes used exist in the ones around ours,
    # except process.working_directory, which 1.4.0 added.
    name, alert = _scenario_alerts()[0]
    check = validator(version, PROFILES)
    found = [e.message for e in check.iter_errors(alert)]
    if version == "1.3.0":
        assert all("working_directory" in f for f in found), found
    else:
        assert found == [], name
