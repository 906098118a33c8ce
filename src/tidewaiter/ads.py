"""Each analytic as a Palantir Alerting & Detection Strategy document, in Markdown.

Everything comes from data the project already keeps: the analytic's ADS fields in
analytics.yaml, the ATT&CK names in attack.yaml, the benign profiles, the emulation scenarios
that expect the analytic (Validation names the exact `tidewaiter emulate run` commands) and the
coverage they give per platform and source. With stored emulation results, Validation also says
how each scenario's last runs went; the documents committed under docs/ads/ are rendered without
them, so they do not depend on the machine that rendered them.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidewaiter.detection.analytics import (
    COMMIT_PUSH,
    CREATED,
    EGRESS_SPIKE,
    EXFIL,
    HOST_STAGED,
    INTERNAL,
    SEVERITY_NAMES,
)
from tidewaiter.detection.catalog import AnalyticSpec, Catalog
from tidewaiter.detection.catalog import load as load_catalog
from tidewaiter.detection.correlate import CorrelationConfig
from tidewaiter.detection.suppress import Profile, load_profiles
from tidewaiter.emulate.coverage import LIVE, Matrix, build
from tidewaiter.emulate.results import Results
from tidewaiter.emulate.scenario import PLATFORMS, Scenario, load_all
from tidewaiter.emulate.writers import available

FRAMEWORK = "https://github.com/palantir/alerting-detection-strategy-framework"
PLATFORM_NAMES = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}
# Analytics decided from a staging episode: the correlation window applies, and the benign
# profiles judge their archiving evidence.
EPISODES = frozenset({EXFIL, INTERNAL, CREATED, HOST_STAGED})
PROFILED = EPISODES | {COMMIT_PUSH}
# The exported Sigma rules that carry each analytic's logic (`tidewaiter sigma export`).
SIGMA_RULES = {
    EXFIL: "the tw_archive_exfil_* correlation rules over tw_archive_*, tw_archive_file_*, "
    "tw_upload_* and tw_egress_*",
    INTERNAL: "tw_archive_* and tw_upload_* (the destination's scope is not in Sigma)",
    CREATED: "tw_archive_*, tw_encrypt_* and tw_archive_file_*",
    "tw-container-export": "tw_container_copy_*",
    COMMIT_PUSH: "tw_container_copy_* (the commit and the push, one event each)",
}


def render_all(results: Results | None = None) -> dict[str, str]:
    """Every analytic's document by file name, and an index (README.md)."""
    catalog = load_catalog()
    scenarios = load_all()
    matrix = build(scenarios, results or Results())
    docs = {
        f"{uid}.md": render(spec, catalog, scenarios, matrix, results)
        for uid, spec in catalog.analytics.items()
    }
    docs["README.md"] = _index(catalog.analytics.values())
    return docs


def render(
    spec: AnalyticSpec,
    catalog: Catalog,
    scenarios: tuple[Scenario, ...],
    matrix: Matrix,
    results: Results | None = None,
) -> str:
    sections = [
        f"# ADS: {spec.name}",
        f"Analytic `{spec.uid}`. Rendered by `tidewaiter ads {spec.uid}` from the detection "
        "catalog, the benign profiles and the emulation scenarios; edit those, not this file.",
        _section("Goal", _text(spec.goal)),
        _section("Categorization", _categorization(spec, catalog)),
        _section("Strategy Abstract", _text(spec.strategy)),
        _section("Technical Context", _context(spec, matrix)),
        _section("Blind Spots and Assumptions", _blind_spots(spec)),
        _section("False Positives", _false_positives(spec, load_profiles())),
        _section("Validation", _validation(spec, scenarios, results)),
        _section("Priority", _priority(spec)),
        _section("Response", _text(spec.response)),
        _section("Additional Resources", _resources(spec)),
    ]
    return "\n\n".join(sections) + "\n"


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body}"


def _text(text: str) -> str:
    return " ".join(text.split()) or "Not stated in the catalog."


def _categorization(spec: AnalyticSpec, catalog: Catalog) -> str:
    if not spec.attacks:
        return "MITRE ATT&CK: the matching rule's own `attack.t*` tags."
    rows = ["| Tactic | Technique |", "|---|---|"]
    for uid in spec.attacks:
        technique, tactic = catalog.technique(uid)
        rows.append(f"| {tactic} ({technique.tactic}) | {uid} {technique.name} |")
    return "MITRE ATT&CK:\n\n" + "\n".join(rows)


def _context(spec: AnalyticSpec, matrix: Matrix) -> str:
    lines = []
    sources = _sources(spec.uid, matrix)
    if sources:
        lines.append("Sources whose telemetry the emulation scenarios prove it on:")
        lines.append("")
        lines += [f"- {PLATFORM_NAMES[p]}: {', '.join(s)}" for p, s in sources.items()]
        lines.append("")
        lines.append(
            f"(`{LIVE}` is tidewaiter's own eBPF sensor; the others are the producers' formats "
            "that `tidewaiter emulate run --write` writes and replays.)"
        )
    else:
        lines.append("No emulation scenario proves it yet; the Validation section says how to.")
    if spec.uid in EPISODES:
        config = CorrelationConfig()
        lines.append("")
        lines.append(
            f"Correlation: one staging episode per container (or per host with no container); "
            f"an archive stays staged {config.window:.0f} s (`--window`), a finding is decided "
            f"{config.settle:.0f} s after the last upload, and transfers up to "
            f"{config.skew:.0f} s before the archive still count (clock skew between sources)."
        )
    lines.append("")
    lines.append(
        f"Alerts are OCSF Detection Findings (class 2004) with `finding_info.analytic.uid` "
        f"`{spec.uid}`."
    )
    return "\n".join(lines)


def _sources(uid: str, matrix: Matrix) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table in matrix.tables:
        for source in table.sources:
            if any(
                uid in cells[source].analytics for cells in table.rows.values() if source in cells
            ):
                found.setdefault(table.platform, []).append(source)
    return {p: found[p] for p in PLATFORMS if p in found}


def _blind_spots(spec: AnalyticSpec) -> str:
    text = f"Blind spots: {_text(spec.blind_spots)}"
    if spec.assumptions:
        text += f"\n\nAssumptions: {_text(spec.assumptions)}"
    return text


def _false_positives(spec: AnalyticSpec, profiles: Iterable[Profile]) -> str:
    text = _text(spec.false_positives)
    if spec.uid in PROFILED:
        rows = ["| Profile | Known benign activity | When only internal | When sent outside |"]
        rows.append("|---|---|---|---|")
        for profile in profiles:
            inside = _effect(profile.effect, profile.by)
            outside = _outside(profile)
            rows.append(f"| `{profile.id}` | {profile.name}: {profile.reason} | {inside} | "
                        f"{outside} |")  # fmt: skip
        text += (
            "\n\nThe benign profiles (profiles.yaml) judge every archiving signal of a finding; "
            "a suppressed finding is kept and listed (`detect --show-suppressed`), never "
            "dropped:\n\n" + "\n".join(rows)
        )
    text += (
        f"\n\nSite-specific exceptions are suppressions with a reason, an author and an expiry: "
        f"`tidewaiter suppress add NAME --analytic {spec.uid} --reason ... --author ...`."
    )
    if spec.uid == EGRESS_SPIKE:
        text += " Baselines are relearned with `tidewaiter baseline learn`."
    return text


def _outside(profile: Profile) -> str:
    """What a profile does when a transfer left for a destination that is not allowed."""
    if profile.outside == "lower":
        vouch = ", ".join([*profile.owner_kinds, *(["a backup image"] if profile.images else [])])
        return (
            f"lowered to {SEVERITY_NAMES[profile.outside_to].lower()} only when the workload's "
            f"identity vouches ({vouch}); never for command text alone"
        )
    if profile.outside == "suppress_unless_named":
        return "suppressed only for the archiving process's own traffic, never an upload"
    return _effect(profile.outside, 0)


def _effect(effect: str, by: int) -> str:
    return {
        "suppress": "suppressed",
        "lower": f"lowered by {by}",
        "none": "not applied",
        "suppress_unless_named": "suppressed unless an upload tool names the archive",
    }[effect]


def _validation(spec: AnalyticSpec, scenarios: Iterable[Scenario], results: Results | None) -> str:
    lines = [_text(spec.validation)]
    writers = available()
    proving = [s for s in scenarios if any(e.analytic == spec.uid and not e.gap for e in s.expect)]
    if not proving:
        lines.append("")
        lines.append("No emulation scenario expects this analytic yet.")
        return "\n".join(lines)
    lines.append("")
    lines.append("Emulation scenarios that expect it, and the exact commands that run them:")
    for scenario in proving:
        lines.append("")
        lines.append(f"- `{scenario.id}`: {_text(scenario.name)} (from {scenario.origin})")
        commands = []
        if scenario.live_capable:
            commands.append(f"tidewaiter emulate run {scenario.id} --live")
        formats = [w.name for w in writers if w.platforms_for(scenario)]
        commands += [f"tidewaiter emulate run {scenario.id} --write {f}" for f in formats]
        lines.append("")
        lines.append("  ```")
        lines += [f"  {c}" for c in commands]
        lines.append("  ```")
        if results is not None:
            lines.append("")
            lines.append(f"  Last runs: {_runs(scenario.id, results)}")
    return "\n".join(lines)


def _runs(scenario: str, results: Results) -> str:
    runs = sorted((r for r in results.runs.values() if r.scenario == scenario), key=lambda r: r.key)
    if not runs:
        return "none stored."
    return (
        "; ".join(f"{r.mode} on {r.platform} {'passed' if r.passed else 'FAILED'}" for r in runs)
        + "."
    )


def _priority(spec: AnalyticSpec) -> str:
    return (
        f"{spec.priority.capitalize()}. Each finding carries an OCSF severity (1 informational "
        "to 5 critical) and a risk score, with the reasons that raised or lowered them."
    )


def _resources(spec: AnalyticSpec) -> str:
    links = [
        f"- ATT&CK {uid}: https://attack.mitre.org/techniques/{uid.replace('.', '/')}/"
        for uid in spec.attacks
    ]
    if spec.uid in SIGMA_RULES:
        links.append(f"- Sigma (`tidewaiter sigma export`): {SIGMA_RULES[spec.uid]}")
    links.append(f"- The Alerting & Detection Strategy framework: {FRAMEWORK}")
    links.append('- tidewaiter\'s README, section "What it detects"')
    return "\n".join(links)


def _index(specs: Iterable[AnalyticSpec]) -> str:
    rows = ["| Analytic | Name | Priority |", "|---|---|---|"]
    rows += [f"| [`{s.uid}`]({s.uid}.md) | {s.name} | {s.priority} |" for s in specs]
    return (
        "# Alerting & Detection Strategies\n\n"
        "One document per analytic, rendered by `tidewaiter ads --out docs/ads` from the "
        "catalog; `tests/unit/test_ads.py` fails when they are stale.\n\n" + "\n".join(rows) + "\n"
    )
