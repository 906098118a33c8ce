"""The scenario library: what ships, and what a malformed scenario is told."""

from __future__ import annotations

import pytest

from tidewaiter.cli.main import main
from tidewaiter.emulate.scenario import ScenarioError, get, load_all, parse

ATOMIC_LINUX = {
    "atomic-t1560.001-zip",
    "atomic-t1560.001-gzip",
    "atomic-t1560.001-tar",
    "atomic-t1560.001-zip-gpg",
    "atomic-t1560.001-openssl-base64",
    "atomic-t1560.002-python-gzip",
    "atomic-t1560.002-python-bz2",
    "atomic-t1560.002-python-zipfile",
    "atomic-t1560.002-python-tarfile",
}


def test_the_library_holds_what_the_issue_asks_for() -> None:
    ids = {s.id for s in load_all()}
    assert {"ads-linux-tar", "ads-windows-compress-archive"} <= ids
    assert ids >= ATOMIC_LINUX
    assert "t1030-split-tcp" in ids
    benign = {s.id for s in load_all() if s.benign}
    assert benign == {
        "benign-package-install",
        "benign-extraction",
        "benign-log-rotation",
        "benign-backup",
    }
    protocols = {s.sink.protocol for s in load_all() if s.sink is not None}
    assert protocols == {"http", "tcp"}


def test_every_atomic_linux_scenario_runs_live_and_names_its_atomic_test() -> None:
    for scenario_id in ATOMIC_LINUX:
        scenario = get(scenario_id)
        assert scenario.live_capable
        assert scenario.origin.startswith("Atomic Red Team T1560")
        assert scenario.technique.startswith("T1560")


def test_benign_scenarios_are_quiet_and_attack_scenarios_expect_an_analytic() -> None:
    for scenario in load_all():
        if scenario.benign:
            assert scenario.quiet
        else:
            assert any(e.gap is None for e in scenario.expect), scenario.id


def test_unknown_scenario_is_named_with_the_known_ones() -> None:
    with pytest.raises(KeyError, match="ads-linux-tar"):
        get("no-such-scenario")


GOOD = """
scenarios:
  - id: demo-tar
    name: tar
    description: tar
    technique: T1560.001
    platforms: [linux]
    commands:
      - run: tar -czf /tmp/a.tgz /etc
    expect:
      - {analytic: tw-archive-created}
"""


def test_a_well_formed_scenario_loads() -> None:
    [scenario] = parse(GOOD.encode(), "good.yaml")
    assert scenario.commands[0].run == "tar -czf /tmp/a.tgz /etc"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("tw-archive-created", "tw-archive-made"), "analytic 'tw-archive-made' does not exist"),
        (("T1560.001", "T9999"), "technique T9999 is not in the ATT&CK catalog"),
        (("/etc", "/etc {{host}}"), "unknown placeholders ['host']"),
        (("/etc", "/etc {{sink}}"), "there is no sink"),
        (("    expect:\n      - {analytic: tw-archive-created}\n", ""), "it expects nothing"),
        (("platforms: [linux]", "platforms: [linux]\n    rootfs: alpine"), "rootfs"),
        (("platforms: [linux]", "platforms: [linux]\n    packages: [zip]"), "rootfs: debian"),
        (("    name: tar\n", "    name: tar\n    colour: red\n"), "colour"),
    ],
)
def test_a_malformed_scenario_is_refused_with_its_reason(
    edit: tuple[str, str], message: str
) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    with pytest.raises(ScenarioError) as raised:
        parse(text.encode(), "bad.yaml")
    assert "bad.yaml" in str(raised.value)
    assert message in str(raised.value)


def test_emulate_list_shows_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "list"]) == 0
    out = capsys.readouterr().out
    for scenario in load_all():
        assert scenario.id in out


def test_emulate_list_filters_by_platform(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "list", "--platform", "windows"]) == 0
    out = capsys.readouterr().out
    assert "ads-windows-compress-archive" in out
    assert "ads-linux-tar" not in out
