"""The coverage matrix: technique, platform and source, from the scenarios and their last runs.

A cell is covered when some attack scenario (benign ones prove quiet, not coverage) emulates the
technique on that platform and the source can express it: live (the sensor, Linux only) or a
replay format. It shows the analytics the scenarios expect and how their last runs went:
"✓ 3/3" all passed, "✗ 1/3" some failed, "· 0/3" never run. Nothing is inferred: a cell with no
stored run says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidewaiter.detection.catalog import load as load_catalog
from tidewaiter.emulate.results import Results
from tidewaiter.emulate.scenario import PLATFORMS, Platform, Scenario
from tidewaiter.emulate.writers import Writer, available

LIVE = "live"


@dataclass
class Cell:
    analytics: set[str] = field(default_factory=set)
    scenarios: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    gaps: int = 0  # runs that passed with a known detection gap still open

    @property
    def run(self) -> int:
        return self.passed + self.failed

    def text(self, short: bool = False) -> str:
        if not self.scenarios:
            return "—"
        if not self.analytics:  # every expectation is a known gap here: nothing is covered
            return "not covered (gap)" if short else "not covered (known gap)"
        total = len(self.scenarios)
        mark = "✗" if self.failed else "✓" if self.passed == total else "·"
        if short:  # the console's narrow cells: "*" marks an open gap
            status = f"{mark}{self.passed}/{total}" + ("*" if self.gaps else "")
        else:
            status = f"{mark} {self.passed}/{total}"
            if self.gaps:
                status += f", {self.gaps} gap" + ("s" if self.gaps > 1 else "")
        names = sorted(a.removeprefix("tw-archive-") if short else a for a in self.analytics)
        return f"{', '.join(names)} {status}"


@dataclass
class Table:
    platform: Platform
    sources: list[str]
    rows: dict[str, dict[str, Cell]]  # technique -> source -> cell


@dataclass
class Matrix:
    tables: list[Table]
    benign: list[tuple[str, str]]  # (scenario, status)
    gaps: list[tuple[str, str, str]]  # (scenario, where, gap)


def sources_for(platform: Platform, writers: list[Writer]) -> list[str]:
    names = [LIVE] if platform == "linux" else []
    return names + [w.name for w in writers if platform in w.platforms]


def build(scenarios: tuple[Scenario, ...], results: Results) -> Matrix:
    writers = available()
    by_name = {w.name: w for w in writers}
    tables = []
    for platform in PLATFORMS:
        sources = sources_for(platform, writers)
        rows: dict[str, dict[str, Cell]] = {}
        for scenario in scenarios:
            if scenario.benign or platform not in scenario.platforms:
                continue
            for source in sources:
                if not _expresses(scenario, platform, source, by_name):
                    continue
                for technique in scenario.all_techniques:
                    cell = rows.setdefault(technique, {}).setdefault(source, Cell())
                    _add(cell, scenario, platform, source, results)
        if rows:
            ordered = {t: rows[t] for t in sorted(rows)}
            tables.append(Table(platform, sources, ordered))
    return Matrix(tables, _benign(scenarios, results), _gaps(scenarios))


def _expresses(
    scenario: Scenario, platform: Platform, source: str, writers: dict[str, Writer]
) -> bool:
    if source == LIVE:
        return platform == "linux" and scenario.live_capable
    return writers[source].expresses(scenario, platform)


def _mode(source: str) -> str:
    return LIVE if source == LIVE else f"replay:{source}"


def _add(cell: Cell, scenario: Scenario, platform: Platform, source: str, results: Results) -> None:
    cell.scenarios.append(scenario.id)
    cell.analytics.update(e.analytic for e in scenario.expect if e.gap_for(source) is None)
    last = results.last(scenario.id, _mode(source), platform)
    if last is None:
        return
    if last.passed:
        cell.passed += 1
        cell.gaps += bool(last.gaps)
    else:
        cell.failed += 1


def _benign(scenarios: tuple[Scenario, ...], results: Results) -> list[tuple[str, str]]:
    rows = []
    for scenario in scenarios:
        if not scenario.benign:
            continue
        runs = [r for r in results.runs.values() if r.scenario == scenario.id]
        passed = sum(r.passed for r in runs)
        if not runs:
            status = "· not run"
        elif passed == len(runs):
            status = f"✓ quiet in {passed} run(s)"
        else:
            status = f"✗ raised above low in {len(runs) - passed} of {len(runs)} run(s)"
        rows.append((scenario.id, status))
    return rows


def _gaps(scenarios: tuple[Scenario, ...]) -> list[tuple[str, str, str]]:
    found = []
    for scenario in scenarios:
        for expect in scenario.expect:
            if expect.gap:
                found.append((scenario.id, "everywhere", " ".join(expect.gap.split())))
            for where, gap in expect.gap_in.items():
                found.append((scenario.id, where, " ".join(gap.split())))
    return found


def technique_name(uid: str) -> str:
    technique, _ = load_catalog().technique(uid)
    return technique.name


def markdown(matrix: Matrix) -> str:
    out = [
        "Each cell: the analytics that cover the technique with that source, then how the "
        "scenarios' last runs went (✓ passed / ✗ failed / · not run, out of the scenarios that "
        "apply; a gap is a known detection gap still open in a passing run).",
        "",
    ]
    for table in matrix.tables:
        out.append(f"**{table.platform}**")
        out.append("")
        out.append("| technique | " + " | ".join(table.sources) + " |")
        out.append("|---|" + "---|" * len(table.sources))
        for technique, cells in table.rows.items():
            label = f"{technique} {technique_name(technique)}"
            texts = [cells[s].text() if s in cells else "—" for s in table.sources]
            out.append(f"| {label} | " + " | ".join(texts) + " |")
        out.append("")
    if matrix.benign:
        out.append("**benign scenarios** (nothing above low may fire)")
        out.append("")
        out.append("| scenario | result |")
        out.append("|---|---|")
        out.extend(f"| {name} | {status} |" for name, status in matrix.benign)
        out.append("")
    if matrix.gaps:
        out.append("**known detection gaps**")
        out.append("")
        out.append("| scenario | where | gap |")
        out.append("|---|---|---|")
        out.extend(f"| {name} | {where} | {gap} |" for name, where, gap in matrix.gaps)
        out.append("")
    return "\n".join(out)
