"""The ATT&CK Navigator layer file format, version 4.5, as checks (from the format's own
definition: layers/spec/v4.5/layerformat.md in the attack-navigator repository). Every property
the format defines is checked for its type and allowed values; a property it does not define is
an error, since the Navigator would ignore it silently."""

from __future__ import annotations

import re
from typing import Any

DOMAINS = {"enterprise-attack", "mobile-attack", "ics-attack"}
PLATFORMS = {
    "enterprise-attack": {
        "PRE", "Windows", "Linux", "macOS", "Network", "AWS", "GCP", "Azure", "Azure AD",
        "Office 365", "SaaS",
    },
}  # fmt: skip
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}  # fmt: skip
TECHNIQUE_ID = re.compile(r"^T\d{4}(\.\d{3})?$")
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

LAYER = {
    "versions": dict, "name": str, "description": str, "domain": str, "customDataURL": str,
    "filters": dict, "sorting": int, "layout": dict, "hideDisabled": bool, "techniques": list,
    "gradient": dict, "legendItems": list, "showTacticRowBackground": bool,
    "tacticRowBackground": str, "selectTechniquesAcrossTactics": bool,
    "selectSubtechniquesWithParent": bool, "selectVisibleTechniques": bool, "metadata": list,
    "links": list,
}  # fmt: skip
TECHNIQUE = {
    "techniqueID": str, "tactic": str, "comment": str, "enabled": bool, "score": (int, float),
    "color": str, "metadata": list, "links": list, "showSubtechniques": bool,
}  # fmt: skip
LAYOUT = {
    "layout": str, "showID": bool, "showName": bool, "showAggregateScores": bool,
    "countUnscored": bool, "aggregateFunction": str, "expandedSubtechniques": str,
}  # fmt: skip


def problems(layer: Any) -> list[str]:
    """Every way the layer departs from format 4.5; empty when it follows it."""
    found: list[str] = []
    if not isinstance(layer, dict):
        return ["a layer is a JSON object"]
    _props(layer, LAYER, "layer", found)
    for required in ("name", "domain"):
        if required not in layer:
            found.append(f"layer: {required} is required")
    if layer.get("domain") not in DOMAINS:
        found.append(f"layer: domain {layer.get('domain')!r} is not one of {sorted(DOMAINS)}")
    versions = layer.get("versions", {})
    _props(versions, {"attack": str, "navigator": str, "layer": str}, "versions", found)
    if versions.get("layer") != "4.5":
        found.append("versions.layer must be '4.5'")
    navigator = versions.get("navigator", "")
    if not re.fullmatch(r"\d+\.\d+\.\d+", navigator) or tuple(map(int, navigator.split("."))) < (
        4,
        9,
        0,
    ):
        found.append(f"versions.navigator {navigator!r} must be at least 4.9.0")
    filters = layer.get("filters", {})
    _props(filters, {"platforms": list}, "filters", found)
    allowed = PLATFORMS.get(layer.get("domain", ""), set())
    for platform in filters.get("platforms", []):
        if platform not in allowed:
            found.append(f"filters.platforms: {platform!r} is not a platform of the domain")
    if layer.get("sorting", 0) not in (0, 1, 2, 3):
        found.append("sorting must be 0, 1, 2 or 3")
    layout = layer.get("layout", {})
    _props(layout, LAYOUT, "layout", found)
    if layout.get("layout", "side") not in ("side", "flat", "mini"):
        found.append("layout.layout must be side, flat or mini")
    if layout.get("aggregateFunction", "average") not in ("average", "min", "max", "sum"):
        found.append("layout.aggregateFunction must be average, min, max or sum")
    if layout.get("expandedSubtechniques", "none") not in ("none", "all", "annotated"):
        found.append("layout.expandedSubtechniques must be none, all or annotated")
    for number, technique in enumerate(layer.get("techniques", [])):
        _technique(technique, f"techniques[{number}]", found)
    if "gradient" in layer:
        gradient = layer["gradient"]
        _props(gradient, {"colors": list, "minValue": (int, float), "maxValue": (int, float)},
               "gradient", found)  # fmt: skip
        colors = gradient.get("colors", [])
        if len(colors) < 2 or not all(isinstance(c, str) and COLOR.match(c) for c in colors):
            found.append("gradient.colors must hold at least two hex colours")
        if not gradient.get("maxValue", 0) > gradient.get("minValue", 0):
            found.append("gradient.maxValue must be greater than minValue")
    for number, item in enumerate(layer.get("legendItems", [])):
        _props(item, {"label": str, "color": str}, f"legendItems[{number}]", found)
        if set(item) != {"label", "color"}:
            found.append(f"legendItems[{number}]: label and color are required")
    if "tacticRowBackground" in layer and not COLOR.match(layer["tacticRowBackground"]):
        found.append("tacticRowBackground must be a hex colour")
    _metadata(layer.get("metadata", []), "metadata", found)
    _links(layer.get("links", []), "links", found)
    return found


def _technique(technique: Any, where: str, found: list[str]) -> None:
    if not isinstance(technique, dict):
        found.append(f"{where}: a technique is an object")
        return
    _props(technique, TECHNIQUE, where, found)
    if not TECHNIQUE_ID.match(str(technique.get("techniqueID", ""))):
        found.append(f"{where}: techniqueID must be T#### or T####.###")
    if "tactic" in technique and technique["tactic"] not in TACTICS:
        found.append(f"{where}: tactic {technique['tactic']!r} is not an enterprise tactic")
    if "color" in technique and technique["color"] and not COLOR.match(technique["color"]):
        found.append(f"{where}: color must be a hex colour")
    if technique.get("showSubtechniques") and "." in str(technique.get("techniqueID")):
        found.append(f"{where}: showSubtechniques is only valid on a technique")
    _metadata(technique.get("metadata", []), f"{where}.metadata", found)
    _links(technique.get("links", []), f"{where}.links", found)


def _metadata(items: Any, where: str, found: list[str]) -> None:
    for number, item in enumerate(items):
        if isinstance(item, dict) and set(item) == {"divider"}:
            if not isinstance(item["divider"], bool):
                found.append(f"{where}[{number}]: divider must be a boolean")
        elif not (
            isinstance(item, dict)
            and set(item) == {"name", "value"}
            and all(isinstance(v, str) for v in item.values())
        ):
            found.append(f"{where}[{number}]: metadata is a name and a value, both strings")


def _links(items: Any, where: str, found: list[str]) -> None:
    for number, item in enumerate(items):
        if isinstance(item, dict) and set(item) == {"divider"}:
            continue
        if not (isinstance(item, dict) and set(item) == {"label", "url"}):
            found.append(f"{where}[{number}]: a link is a label and a url")
        elif not re.match(r"^[a-z][a-z0-9+.-]*://", item["url"]):
            found.append(f"{where}[{number}]: a link's url needs a protocol")


def _props(value: Any, allowed: dict[str, Any], where: str, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{where}: must be an object")
        return
    for key, item in value.items():
        if key not in allowed:
            found.append(f"{where}: {key!r} is not a property of layer format 4.5")
        elif (
            isinstance(item, bool)
            and allowed[key] is not bool
            and bool not in (allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],))
        ):
            found.append(f"{where}.{key}: must not be a boolean")
        elif not isinstance(item, allowed[key]):
            found.append(f"{where}.{key}: wrong type {type(item).__name__}")
