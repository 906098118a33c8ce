"""Emulation scenarios: Atomic-style YAML, typed and checked when loaded.

A scenario says what an adversary (or a benign job) does, step by step, on which platforms, and
what tidewaiter must conclude: which analytics fire and for which entity, or that nothing above
low severity does. The same steps drive the live run (commands in a real container, data sent to
a sink) and the synthetic telemetry written for platforms that cannot run here.

Scenario files are project data, but they are still checked: a typo in an analytic uid or a
technique must fail loudly at load time, not turn a test into one that cannot fail.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

import msgspec

from tidewaiter.detection.analytics import SEVERITY_NAMES
from tidewaiter.detection.catalog import load as load_catalog

Platform = Literal["linux", "windows", "macos"]
Shell = Literal["sh", "bash", "powershell", "cmd", "none"]
Rootfs = Literal["busybox", "debian"]
Severity = Literal["informational", "low", "medium", "high", "critical"]
Entity = Literal["container", "host"]
SEVERITY_LEVEL = {name.lower(): level for level, name in SEVERITY_NAMES.items()}
PLATFORMS: tuple[Platform, ...] = ("linux", "windows", "macos")

# Placeholders the runner fills in: the sink's address and port, and its URL for uploads.
SINK = "{{sink}}"
PORT = "{{port}}"
URL = "{{url}}"
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_KNOWN_PLACEHOLDERS = frozenset({"sink", "port", "url"})
_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


class Existing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A process already running when the step happens (it is not launched): on a Windows host,
    Docker Desktop's backend carrying a container's traffic out."""

    exe: str
    argv: tuple[str, ...]


class Send(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The step sends data to the sink. ``by`` names the program that sends (default: the last
    command of the step's pipeline); ``bytes`` is what synthetic telemetry reports."""

    by: str | None = None
    bytes: int = 65_536


class Created(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A file the step creates, and the program that creates it (default: the step's first)."""

    path: str
    by: str | None = None


class Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    run: str = ""  # the command line, run by ``shell``
    shell: Shell = "sh"
    # Files the step creates, as a path or {path, by}; $VARIABLES are expanded.
    creates: tuple[str | Created, ...] = ()
    sends: Send | None = None
    # The programs the shell starts, for synthetic telemetry, when they cannot be read from
    # ``run`` without a shell (a program named by a variable, a subshell). Each is an argv.
    spawns: tuple[tuple[str, ...], ...] = ()
    existing: Existing | None = None


def created(item: str | Created) -> Created:
    return Created(item) if isinstance(item, str) else item


class FileSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A file put into the container's root filesystem before it starts (never observed)."""

    path: str
    text: str | None = None
    random_bytes: int | None = None
    archive: Literal["tar.gz", "zip", "gz", "deb"] | None = None
    members: dict[str, str] = msgspec.field(default_factory=dict)  # archive member -> text


class Sink(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    protocol: Literal["http", "tcp"]
    port: int = 8080
    # Whether detection treats the sink's address as the outside (through external_cidrs): an
    # exfiltration scenario's sink is public, a backup's is internal.
    public: bool = True


class Expect(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    analytic: str
    entity: Entity = "container"
    min_severity: Severity = "low"
    max_severity: Severity = "critical"
    techniques: tuple[str, ...] = ()  # ATT&CK techniques the alert must name
    # A known detection gap: the expectation is what detection should do, and does not yet.
    # Runs report it as a known gap; tests expect it to fail until detection is fixed. ``gap``
    # holds everywhere; ``gap_in`` only for the named formats ("live" for the live sensor).
    gap: str | None = None
    gap_in: dict[str, str] = msgspec.field(default_factory=dict)

    def gap_for(self, mode: str) -> str | None:
        return self.gap or self.gap_in.get(mode)


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    description: str
    technique: str  # the ATT&CK technique the scenario emulates
    platforms: tuple[Platform, ...]
    commands: tuple[Step, ...]
    origin: str = "tidewaiter"  # where the procedure comes from (ADS, Atomic Red Team test)
    techniques: tuple[str, ...] = ()  # further techniques it exercises (exfiltration, T1030)
    benign: bool = False
    rootfs: Rootfs = "busybox"
    packages: tuple[str, ...] = ()  # Debian packages the debian rootfs needs for it
    env: dict[str, str] = msgspec.field(default_factory=dict)
    files: tuple[FileSpec, ...] = ()
    setup: tuple[Step, ...] = ()  # preparation inside the container, before the procedure
    cleanup: tuple[Step, ...] = ()
    sink: Sink | None = None
    expect: tuple[Expect, ...] = ()
    quiet: bool = False  # nothing above low severity may fire for the entity

    @property
    def all_techniques(self) -> tuple[str, ...]:
        return (self.technique, *(t for t in self.techniques if t != self.technique))

    @property
    def live_capable(self) -> bool:
        return "linux" in self.platforms


class ScenarioFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scenarios: tuple[Scenario, ...]


class ScenarioError(Exception):
    """A scenario file is malformed; the message names the file, the scenario and the field."""


def severity_level(name: Severity) -> int:
    return SEVERITY_LEVEL[name]


def check(scenario: Scenario) -> list[str]:
    """What is wrong with a scenario beyond its types, one phrase each."""
    problems: list[str] = []
    catalog = load_catalog()
    if not _ID.match(scenario.id):
        problems.append("id must be lower case letters, digits, '.' and '-'")
    for technique in scenario.all_techniques:
        if technique not in catalog.attack.techniques:
            problems.append(f"technique {technique} is not in the ATT&CK catalog")
    for expect in scenario.expect:
        if expect.analytic not in catalog.analytics:
            problems.append(f"analytic {expect.analytic!r} does not exist")
        if severity_level(expect.min_severity) > severity_level(expect.max_severity):
            problems.append(f"{expect.analytic}: min_severity is above max_severity")
        for technique in expect.techniques:
            if technique not in catalog.attack.techniques:
                problems.append(f"expected technique {technique} is not in the ATT&CK catalog")
    if not scenario.expect and not scenario.quiet:
        problems.append("it expects nothing: give expect, or quiet: true for a benign scenario")
    if scenario.benign and not scenario.quiet:
        problems.append("a benign scenario must be quiet")
    if scenario.packages and scenario.rootfs != "debian":
        problems.append("packages need rootfs: debian")
    steps = (*scenario.setup, *scenario.commands, *scenario.cleanup)
    used = {name for step in steps for name in _PLACEHOLDER.findall(step.run)}
    if used - _KNOWN_PLACEHOLDERS:
        problems.append(f"unknown placeholders {sorted(used - _KNOWN_PLACEHOLDERS)}")
    if (used or any(s.sends for s in steps)) and scenario.sink is None:
        problems.append("a step sends or names the sink, but there is no sink")
    windows_only = scenario.platforms == ("windows",)
    for step in steps:
        if windows_only and step.shell in ("sh", "bash"):
            problems.append("a Windows scenario's steps run in powershell, cmd or none")
        if not windows_only and step.shell in ("powershell", "cmd"):
            problems.append(f"shell {step.shell} on a non-Windows scenario")
        if step.shell == "none" and step.existing is None and not step.spawns:
            problems.append("shell: none needs existing or spawns (what runs)")
        if step.existing is None and not step.run and step.shell != "none":
            problems.append("a step without run")
    return problems


@cache
def load_all() -> tuple[Scenario, ...]:
    """Every bundled scenario, in file order; raises ScenarioError on the first bad file."""
    found: list[Scenario] = []
    folder = resources.files("tidewaiter.emulate").joinpath("scenarios")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            found.extend(parse(entry.read_bytes(), entry.name))
    seen: set[str] = set()
    for scenario in found:
        if scenario.id in seen:
            raise ScenarioError(f"scenario id {scenario.id!r} is used twice")
        seen.add(scenario.id)
    return tuple(found)


def parse(data: bytes, name: str) -> tuple[Scenario, ...]:
    try:
        scenarios = msgspec.yaml.decode(data, type=ScenarioFile).scenarios
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ScenarioError(f"{name}: {exc}") from exc
    for scenario in scenarios:
        problems = check(scenario)
        if problems:
            raise ScenarioError(f"{name}: scenario {scenario.id}: {'; '.join(problems)}")
    return scenarios


def get(scenario_id: str) -> Scenario:
    for scenario in load_all():
        if scenario.id == scenario_id:
            return scenario
    known = ", ".join(s.id for s in load_all())
    raise KeyError(f"no scenario {scenario_id!r}; known: {known}")


def fill(text: str, values: dict[str, str]) -> str:
    """The placeholders of a command line replaced with the run's own values."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)
