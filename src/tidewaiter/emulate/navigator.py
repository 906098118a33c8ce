"""The coverage matrix as an ATT&CK Navigator layer (layer format 4.5).

Each technique tidewaiter reports is coloured by what is known about it: proven (an emulation
that expects it passed in its last run), covered but not proven (analytics and sources cover it,
no passing run is stored), failing (its last runs failed), or a known gap only. The comment and
metadata name the analytics, the sources per platform and the runs, so the layer explains itself
when it is opened in the Navigator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidewaiter import __version__
from tidewaiter.detection.catalog import Catalog
from tidewaiter.emulate.coverage import Matrix

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"
ATTACK_VERSION = "16"  # the ATT&CK release the catalog's technique names follow (alerts say v16)
PLATFORMS = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}


@dataclass(frozen=True)
class Status:
    label: str
    color: str
    score: int


PROVEN = Status("covered, proven by emulation", "#31a354", 100)
COVERED = Status("covered, not proven by a stored emulation run", "#fdd835", 60)
FAILING = Status("covered, last emulation failed", "#e6550d", 30)
GAP = Status("known detection gap", "#bdbdbd", 0)


@dataclass
class _Technique:
    analytics: set[str] = field(default_factory=set)
    sources: dict[str, list[str]] = field(default_factory=dict)  # platform -> sources
    scenarios: set[str] = field(default_factory=set)
    passed: int = 0
    failed: int = 0
    runs: int = 0

    @property
    def status(self) -> Status:
        if not self.analytics:
            return GAP
        if self.failed:
            return FAILING
        return PROVEN if self.passed else COVERED


def layer(matrix: Matrix, catalog: Catalog) -> dict[str, Any]:
    techniques = _collect(matrix, catalog)
    entries = []
    for uid, known in sorted(techniques.items()):
        _, tactic = catalog.technique(uid)
        status = known.status
        entries.append(
            {
                "techniqueID": uid,
                "tactic": _shortname(tactic),
                "score": status.score,
                "color": status.color,
                "comment": _comment(known, status),
                "enabled": True,
                "metadata": _metadata(known, status),
                "showSubtechniques": "." not in uid
                and any(t.startswith(uid + ".") for t in techniques),
            }
        )
    return {
        "name": "tidewaiter coverage",
        "versions": {
            "attack": ATTACK_VERSION,
            "navigator": NAVIGATOR_VERSION,
            "layer": LAYER_VERSION,
        },
        "domain": "enterprise-attack",
        "description": (
            f"Techniques tidewaiter {__version__} reports: covered by its analytics and sources, "
            "and proven when the last emulation run that expects them passed "
            "(`tidewaiter emulate run`)."
        ),
        "filters": {"platforms": list(PLATFORMS.values())},
        "sorting": 3,
        "layout": {
            "layout": "side",
            "showID": True,
            "showName": True,
            "expandedSubtechniques": "annotated",
        },
        "hideDisabled": False,
        "techniques": entries,
        "gradient": {
            "colors": [GAP.color, FAILING.color, COVERED.color, PROVEN.color],
            "minValue": 0,
            "maxValue": 100,
        },
        "legendItems": [
            {"label": s.label, "color": s.color} for s in (PROVEN, COVERED, FAILING, GAP)
        ],
        "showTacticRowBackground": False,
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
        "selectVisibleTechniques": False,
    }


def _collect(matrix: Matrix, catalog: Catalog) -> dict[str, _Technique]:
    found: dict[str, _Technique] = {}
    for table in matrix.tables:
        for uid, cells in table.rows.items():
            known = found.setdefault(uid, _Technique())
            for source in table.sources:
                cell = cells.get(source)
                if cell is None:
                    continue
                known.scenarios.update(cell.scenarios)
                if not cell.analytics:
                    continue  # a known gap here: its runs prove nothing about coverage
                known.analytics |= cell.analytics
                known.passed += cell.passed
                known.failed += cell.failed
                known.runs += cell.run
                known.sources.setdefault(table.platform, []).append(source)
    # Techniques an analytic names that no scenario emulates: covered by logic, never proven.
    for analytic in catalog.analytics.values():
        for uid in analytic.attacks:
            found.setdefault(uid, _Technique()).analytics.add(analytic.uid)
    return found


def _comment(known: _Technique, status: Status) -> str:
    analytics = ", ".join(sorted(known.analytics)) or "none (known gap)"
    sources = "; ".join(f"{PLATFORMS[p]}: {', '.join(s)}" for p, s in sorted(known.sources.items()))
    runs = (
        f"{known.passed} of {known.runs} stored runs passed"
        if known.runs
        else "no stored emulation run"
    )
    return f"{status.label}. Analytics: {analytics}. Sources: {sources or 'none emulated'}. {runs}."


def _metadata(known: _Technique, status: Status) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [
        {"name": "status", "value": status.label},
        {"name": "analytics", "value": ", ".join(sorted(known.analytics)) or "none"},
    ]
    for platform, sources in sorted(known.sources.items()):
        items.append({"name": f"sources ({PLATFORMS[platform]})", "value": ", ".join(sources)})
    if known.scenarios:
        items.append({"divider": True})
        items.append({"name": "scenarios", "value": ", ".join(sorted(known.scenarios))})
        items.append({"name": "runs passed", "value": f"{known.passed} of {known.runs}"})
    return items


def _shortname(tactic: str) -> str:
    """A tactic's name as the Navigator spells its id: "Privilege Escalation" →
    "privilege-escalation"."""
    return tactic.lower().replace(" ", "-")
