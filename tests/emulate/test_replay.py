"""Every scenario replayed through every format that can express it, read back by that format's
own source, must conclude what the scenario expects; a known gap must still be a gap."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from tidewaiter.emulate.replay import combinations, replay
from tidewaiter.emulate.scenario import Expect, Scenario, get, load_all
from tidewaiter.emulate.verdict import Verdict
from tidewaiter.emulate.writers import Writer, available, writer
from tidewaiter.sources import ReadReport, open_events

CASES = [
    pytest.param(s, w, p, id=f"{s.id}-{w.name}-{p}") for s in load_all() for w, p in combinations(s)
]


def _explain(verdict: Verdict) -> str:
    return "\n".join(f"{c.label}: {c.what}: {c.detail}" for c in verdict.checks)


@pytest.mark.parametrize(("scenario", "fmt", "platform"), CASES)
def test_replayed_scenario_concludes_what_it_expects(
    scenario: Scenario, fmt: Writer, platform: str, tmp_path: Path
) -> None:
    result = replay(scenario, fmt, platform, tmp_path)  # type: ignore[arg-type]
    assert not result.problems, result.problems
    assert result.passed, _explain(result.verdict)
    for check in result.verdict.checks:
        if check.gap is not None:
            # Strict: once detection closes the gap, the scenario's gap mark must go.
            assert not check.passed, f"gap closed, remove its mark: {check.gap}"


def test_the_issue_s_formats_have_writers() -> None:
    names = {w.name for w in available()}
    assert {"tetragon", "falco", "sysmon-xml", "powershell-4104", "eslogger", "auditd"} <= names
    assert {"sensor", "ocsf"} <= names


def test_every_scenario_replays_somewhere_and_every_writer_is_used() -> None:
    used: set[str] = set()
    for scenario in load_all():
        pairs = combinations(scenario)
        assert pairs, f"no format can express {scenario.id}"
        used.update(w.name for w, _ in pairs)
    assert used == {w.name for w in available()}


def test_formats_that_cannot_express_a_scenario_are_not_offered() -> None:
    windows_only = get("ads-windows-compress-archive")
    offered = {w.name for w, _ in combinations(windows_only)}
    assert "tetragon" not in offered
    assert "eslogger" not in offered
    # PowerShell's log shows the script, not the container's traffic that makes the exfiltration.
    assert "powershell-4104" not in offered
    assert "sysmon-xml" in offered
    assert "powershell-4104" in {w.name for w, _ in combinations(get("atomic-t1560-powershell"))}


@pytest.mark.parametrize("fmt", [w.name for w in available()])
def test_writers_are_deterministic_and_read_without_a_skipped_record(
    fmt: str, tmp_path: Path
) -> None:
    chosen = writer(fmt)
    scenario = next(s for s in load_all() if chosen.platforms_for(s))
    platform = chosen.platforms_for(scenario)[0]
    first = replay(scenario, chosen, platform, tmp_path / "one")
    second = replay(scenario, chosen, platform, tmp_path / "two")
    assert first.path is not None
    assert second.path is not None
    assert first.path.read_bytes() == second.path.read_bytes()
    report = ReadReport()
    events = list(open_events(str(first.path), report))  # sniffed, not named
    assert report.files[str(first.path)] == chosen.source
    assert events
    assert report.skipped_total == 0


def test_an_unmet_expectation_fails_the_replay() -> None:
    quiet = get("benign-extraction")
    wrong = msgspec.structs.replace(quiet, expect=(Expect(analytic="tw-archive-exfil"),))
    result = replay(wrong, writer("tetragon"), "linux")
    assert not result.passed
    [check] = [c for c in result.verdict.checks if c.what.startswith("tw-archive-exfil")]
    assert "not fired" in check.detail


def test_a_loud_scenario_fails_the_quiet_check() -> None:
    loud = msgspec.structs.replace(get("ads-linux-tar"), quiet=True)
    result = replay(loud, writer("falco"), "linux")
    assert not result.passed
    assert any(
        c.what.startswith("nothing above low") and not c.passed for c in result.verdict.checks
    )


def test_formats_without_container_ids_are_judged_at_the_host() -> None:
    result = replay(get("ads-linux-tar"), writer("auditd"), "linux")
    assert result.passed
    [alert] = [a for a in result.alerts if a["severity_id"] > 2]
    assert "container" not in alert
    assert alert["device"]["hostname"] == "node-emulation-1"
    contained = replay(get("ads-linux-tar"), writer("tetragon"), "linux")
    [alert] = [a for a in contained.alerts if a["severity_id"] > 2]
    assert alert["device"]["container"]["uid"] == _container_of("ads-linux-tar")


def _container_of(scenario_id: str) -> str:
    from tidewaiter.emulate.plan import stage_for

    stage = stage_for(get(scenario_id), "linux")
    assert stage.container_id is not None
    return stage.container_id
