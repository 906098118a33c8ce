"""The catalog written as Sigma rules, so its logic can leave the tool.

One rule a signal and a platform: archive, encrypt, upload, split and container copy-out as
process_creation for Linux, Windows and macOS, archive files as file_event, and traffic to the
outside as network_connection. Each tool of the catalog is one selection of its signal's rule,
its "create" or "send" semantics written as Sigma can: an option or subcommand in the command
line. Plain Sigma sees one event at a time, so what tidewaiter reads from a whole pipeline
(`tar | nc`, an uploader fed by a pipe) cannot be written; the archive-then-transfer analytic is
the Sigma correlation rules (`temporal_ordered`) over those rules, per container or per host.

Nothing here imports pySigma: the rules are plain data, written as YAML.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from tidewaiter.detection.addresses import DEFAULT_INTERNAL_RANGES
from tidewaiter.detection.catalog import (
    Archiver,
    Catalog,
    Encryptor,
    Transfer,
    load,
)
from tidewaiter.detection.correlate import CorrelationConfig

PLATFORMS = ("linux", "windows", "macos")
# Tools that exist on some platforms only (everything else is exported for all three).
ONLY_ON = {
    "makecab": ("windows",),
    "winzip": ("windows",),
    "wzzip": ("windows",),
    "bitsadmin": ("windows",),
    "ditto": ("macos",),
    "split": ("linux", "macos"),
    "Compress-Archive": ("windows",),
    "ZipFile.CreateFromDirectory": ("windows",),
    "Invoke-WebRequest": ("windows",),
    "WebClient.UploadFile": ("windows",),
}
NAMESPACE = uuid.UUID("6b0e4f5c-2f7d-4c2a-9d3e-7a1f0c5e9b21")  # rule ids: uuid5 of the rule name
AUTHOR = "tidewaiter (generated from its detection catalog)"
# The program at the head of a command line, quoted or not (the quote as \x22: some backends
# put the expression in a double-quoted string without escaping it).
PROGRAM = r"^(?:\x22[^\x22]*\x22|\S+)"
CONTAINER_FIELD = "ContainerId"  # not in Sigma's taxonomy: name the field your events carry
HOST_FIELD = "Computer"


@dataclass(frozen=True)
class Signal:
    """How one catalog signal reads as a Sigma rule: its name, which analytic's ADS metadata
    (false positives) it carries, and its level alone."""

    key: str
    title: str
    analytic: str
    level: str
    category: str = "process_creation"


# Levels: what tidewaiter makes of the signal alone. An archive alone is tw-archive-created
# (low), an encrypted one one step higher; a copy out of a container is tw-container-export
# (its priority); a transfer or traffic alone raises nothing in tidewaiter, so plain Sigma gets
# them as low and informational: they matter in the correlation.
SIGNALS = (
    Signal("archive", "Archive created by an archiver, compressor or library", "tw-archive-created",
           "low"),
    Signal("encrypt", "Data encrypted for staging", "tw-archive-created", "medium"),
    Signal("upload", "File transfer tool sending data", "tw-archive-exfil", "low"),
    Signal("split", "File split into pieces before transfer", "tw-archive-exfil", "low"),
    Signal("container_copy", "Container data copied, exported or pushed by the runtime CLI",
           "tw-container-export", "medium"),
    Signal("archive_file", "Archive file written", "tw-archive-created", "low", "file_event"),
    Signal("egress", "Connection to a non-internal address", "tw-archive-exfil", "informational",
           "network_connection"),
)  # fmt: skip
ARCHIVING = ("archive", "encrypt", "archive_file")
CARRYING = ("upload", "egress")


@dataclass
class Rule:
    """One Sigma rule document, and where `sigma export` writes it."""

    name: str
    folder: str
    body: dict[str, Any]

    @property
    def filename(self) -> str:
        return f"{self.folder}/{self.name}.yml"

    def yaml(self) -> str:
        return yaml.safe_dump(self.body, sort_keys=False, allow_unicode=True, width=100)


@dataclass
class _Selections:
    """The selections of one rule: each is (match, filter or None); any one matching fires."""

    items: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = field(default_factory=list)
    techniques: dict[str, None] = field(default_factory=dict)

    def add(
        self, tool: str, technique: str, match: dict[str, Any], unless: dict[str, Any] | None = None
    ) -> None:
        self.items.append((tool, match, unless))
        self.techniques[technique] = None

    def detection(self) -> dict[str, Any]:
        detection: dict[str, Any] = {}
        parts = []
        for number, (tool, match, unless) in enumerate(self.items, 1):
            key = f"selection_{number}_{_ident(tool)}"
            detection[key] = match
            if unless is None:
                parts.append(key)
            else:
                detection[f"filter_{number}_{_ident(tool)}"] = unless
                parts.append(f"({key} and not filter_{number}_{_ident(tool)})")
        detection["condition"] = " or ".join(parts)
        return detection


def export(catalog: Catalog | None = None, config: CorrelationConfig | None = None) -> list[Rule]:
    """Every rule: the single-event rules, then the correlation rules that refer to them."""
    catalog = catalog or load()
    config = config or CorrelationConfig()
    rules = []
    for platform in PLATFORMS:
        for signal in SIGNALS:
            selections = _selections(signal.key, platform, catalog)
            if selections.items:
                rules.append(_rule(signal, platform, selections, catalog))
    return rules + _correlations(rules, catalog, config)


def rule_name(signal: str, platform: str) -> str:
    return f"tw_{signal}_{platform}"


def _rule(signal: Signal, platform: str, selections: _Selections, catalog: Catalog) -> Rule:
    name = rule_name(signal.key, platform)
    analytic = catalog.analytics[signal.analytic]
    tools = sorted({tool for tool, _, _ in selections.items})
    body: dict[str, Any] = {
        "title": f"{signal.title} ({_platform_name(platform)})",
        "id": str(uuid.uuid5(NAMESPACE, name)),
        "name": name,
        "status": "experimental",
        "description": (
            f"tidewaiter's {signal.key} signal on {_platform_name(platform)}, one selection per "
            f"catalog tool: {', '.join(tools)}. Alone it is evidence, not a verdict; "
            f"the tw_archive_exfil correlation rules join it with what follows."
        ),
        "references": ["https://github.com/tidewaiter/tidewaiter#sigma-in-and-out"],
        "author": AUTHOR,
        "tags": _tags(selections.techniques, catalog),
        "logsource": {"category": signal.category, "product": platform},
        "detection": selections.detection(),
        "falsepositives": [_sentence(analytic.false_positives)],
        "level": signal.level,
    }
    return Rule(name, platform, body)


def _correlations(rules: list[Rule], catalog: Catalog, config: CorrelationConfig) -> list[Rule]:
    """tw-archive-exfil as Sigma: an archiving rule, then a transfer rule, in the window, per
    container (Linux, where the containers are) and per host (every platform)."""
    analytic = catalog.analytics["tw-archive-exfil"]
    names = {r.name for r in rules}
    out = []
    for platform in PLATFORMS:
        groups = [("container", CONTAINER_FIELD), ("host", HOST_FIELD)]
        if platform != "linux":
            groups = groups[1:]
        for first in ("archive", "archive_file"):
            for then in CARRYING:
                archive, carry = rule_name(first, platform), rule_name(then, platform)
                if archive not in names or carry not in names:
                    continue
                for scope, group_by in groups:
                    name = f"tw_archive_exfil_{platform}_{first}_{then}_{scope}"
                    body = {
                        "title": f"{analytic.name}: {first.replace('_', ' ')} then {then} "
                        f"per {scope} ({_platform_name(platform)})",
                        "id": str(uuid.uuid5(NAMESPACE, name)),
                        "name": name,
                        "status": "experimental",
                        "description": _sentence(analytic.goal),
                        "author": AUTHOR,
                        "references": ["https://github.com/tidewaiter/tidewaiter#sigma-in-and-out"],
                        "correlation": {
                            "type": "temporal_ordered",
                            "rules": [archive, carry],
                            "group-by": [group_by],
                            "timespan": _timespan(config.window),
                        },
                        "tags": _tags(analytic.attacks, catalog),
                        "falsepositives": [_sentence(analytic.false_positives)],
                        "level": analytic.priority,
                    }
                    out.append(Rule(name, "correlation", body))
    return out


def _selections(signal: str, platform: str, catalog: Catalog) -> _Selections:
    found = _Selections()
    files = catalog_files(catalog)
    if signal == "archive":
        _each(found, files.archivers, platform, _archiver)
        for script, _, _ in catalog.scripts:
            if _on(script.tool, platform):
                match = _interpreted(catalog, platform, script.pattern)
                found.add(script.tool, script.technique, match)
    elif signal == "encrypt":
        _each(found, files.encryptors, platform, _encryptor)
    elif signal == "upload":
        _each(found, files.transfers, platform, _transfer)
        for cmdlet, _, _ in catalog.script_transfers:
            if _on(cmdlet.tool, platform):
                shells = catalog.shells.powershell.binaries
                sends = {**_image(shells, platform), **_regex(cmdlet.pattern)}
                found.add(cmdlet.tool, cmdlet.technique, sends)
    elif signal == "split":
        for splitter in files.splitters:
            if _on(splitter.tool, platform):
                found.add(splitter.tool, splitter.technique, _image(splitter.binaries, platform))
    elif signal == "container_copy":
        runtimes = catalog.runtimes.binaries
        # out of a container only: `cp CONTAINER:PATH DEST`, never `cp SRC CONTAINER:PATH`
        verbs = r"\s(?:cp(?:\s+-\S+)*\s+[\w.\-]{2,}:\S*\s+\S|export\s|commit\s|push\s)"
        found.add("docker", "T1609", {**_image(runtimes, platform), "CommandLine|re": verbs})
    elif signal == "archive_file":
        extensions = list(catalog.archive_extensions)
        downloaders = _image(sorted(catalog.downloaders), platform)["Image|endswith"]
        found.add(
            "archive extension",
            "T1560",
            {"TargetFilename|endswith": extensions},
            {"Image|endswith": downloaders},  # `curl -O x.tgz`: received, not staged
        )
    elif signal == "egress":
        found.add(
            "network",
            "T1041",
            {"Initiated": "true"},
            {"DestinationIp|cidr": list(DEFAULT_INTERNAL_RANGES)},
        )
    return found


Spec = TypeVar("Spec", Archiver, Encryptor, Transfer)
Build = Callable[[Spec, str], tuple[dict[str, Any], dict[str, Any] | None]]


def _each(found: _Selections, specs: Iterable[Spec], platform: str, build: Build[Spec]) -> None:
    """One selection per catalog entry that exists on the platform."""
    for spec in specs:
        if _on(spec.tool, platform):
            match, unless = build(spec, platform)
            found.add(spec.tool, spec.technique, match, unless)


@dataclass(frozen=True)
class CatalogFiles:
    archivers: tuple[Archiver, ...]
    encryptors: tuple[Encryptor, ...]
    transfers: tuple[Transfer, ...]
    splitters: tuple[Any, ...]


def catalog_files(catalog: Catalog) -> CatalogFiles:
    """The catalog's entries once each, in file order (the catalog indexes them by binary)."""
    return CatalogFiles(
        _unique(catalog.archivers.values()),
        _unique(catalog.encryptors.values()),
        _unique(catalog.transfers.values()),
        _unique(catalog.splitters.values()),
    )


def _unique(items: Iterable[Any]) -> tuple[Any, ...]:
    seen: dict[int, Any] = {}
    for item in items:
        seen.setdefault(id(item), item)
    return tuple(seen.values())


def _archiver(spec: Archiver, platform: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    match: dict[str, Any] = _image(spec.binaries, platform)
    unless = None
    if spec.mode == "flags":
        patterns = []
        if spec.create_short:
            letters = re.escape(spec.create_short)
            cluster = rf"-[A-Za-z]*[{letters}][A-Za-z]*(?:\s|$)"
            patterns.append(rf"\s{cluster}")
            if spec.bundled:  # `tar czf out.tgz dir`: the first argument, without its dash
                patterns.append(rf"{PROGRAM}\s+[A-Za-z]*[{letters}][A-Za-z]*(?:\s|$)")
        patterns += [rf"\s{re.escape(o)}(?:[\s=]|$)" for o in spec.create_long]
        match["CommandLine|re"] = "|".join(patterns)
    elif spec.mode == "subcommand":
        words = "|".join(re.escape(s) for s in spec.subcommands)
        match["CommandLine|re|i"] = rf"{PROGRAM}\s+(?:-\S+\s+)*(?:{words})(?:\s|$)"
    elif spec.mode == "unless_flags":
        unless = {"CommandLine|re": _options(spec.decompress_short, spec.decompress_long)}
    if spec.requires:
        match["CommandLine|contains|all"] = [f" {r}" for r in spec.requires]
    return match, unless


def _encryptor(spec: Encryptor, platform: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    match: dict[str, Any] = _image(spec.binaries, platform)
    if spec.subcommands:
        words = "|".join(re.escape(s) for s in spec.subcommands)
        match["CommandLine|re"] = rf"{PROGRAM}\s+(?:{words})(?:\s|$)"
    elif spec.encrypt_options:
        match["CommandLine|re"] = _options("", spec.encrypt_options)
    unless = (
        {"CommandLine|re": _options("", spec.decrypt_options)} if spec.decrypt_options else None
    )
    return match, unless


def _transfer(spec: Transfer, platform: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    match: dict[str, Any] = _image(spec.binaries, platform)
    patterns = []
    if spec.upload_options or spec.data_options:
        sends = [_options("", spec.upload_options)] if spec.upload_options else []
        if spec.data_options:  # only when the value reads a file: `--data-binary @x.tgz`
            alternatives = "|".join(re.escape(o) for o in spec.data_options)
            sends.append(rf"\s(?:{alternatives})(?:\s+|=)@")
        patterns.append("|".join(sends))
    if spec.subcommands:
        words = "|".join(re.escape(s) for s in spec.subcommands)
        patterns.append(rf"{PROGRAM}\s+(?:{words})(?:\s|$)")
    if spec.verbs:
        patterns.append(rf"\s(?:{'|'.join(re.escape(v) for v in spec.verbs)})(?:\s|$)")
    destination = {
        "remote_last": r"\s(?:\S+@)?[\w.\-\[\]]{2,}:\S*\s*$|\srsync://",
        "cloud": r"\s(?:s3|gs|az|https?|wasbs|abfss)://\S+\s*$",
        "remote_name": r"\s[\w\-]{2,}:\S*\s*$",
        "socat": r"\s(?:TCP|TCP4|TCP6|OPENSSL|SSL|UDP|UDP4|UDP6|tcp|tcp4|tcp6|openssl|ssl|udp):",
    }.get(spec.destination)
    if destination:
        patterns.append(destination)
    if len(patterns) == 1:
        match["CommandLine|re"] = patterns[0]
    elif patterns:
        match["CommandLine|re|all"] = patterns
    unless = {"CommandLine|re": _options("", spec.listen_options)} if spec.listen_options else None
    return match, unless


def _interpreted(catalog: Catalog, platform: str, pattern: str) -> dict[str, Any]:
    interpreters = sorted({*catalog.interpreters, *catalog.shells.powershell.binaries})
    return {**_image(interpreters, platform), **_regex(pattern)}


def _regex(pattern: str) -> dict[str, str]:
    """A catalog pattern as a `|re` item; a leading `(?i)` becomes Sigma's `|i` modifier."""
    if pattern.startswith("(?i)"):
        return {"CommandLine|re|i": pattern.removeprefix("(?i)")}
    return {"CommandLine|re": pattern}


def _image(binaries: Iterable[str], platform: str) -> dict[str, Any]:
    if platform == "windows":
        return {"Image|endswith": [f"\\{b}.exe" for b in binaries]}
    return {"Image|endswith": [f"/{b}" for b in binaries]}


def _options(shorts: str, longs: Iterable[str]) -> str:
    """A regular expression for any of the options, as a word of the command line."""
    patterns = [rf"\s-[A-Za-z]*[{re.escape(shorts)}]"] if shorts else []
    words = "|".join(re.escape(o) for o in longs)
    if words:
        patterns.append(rf"\s(?:{words})(?:[\s=]|$)")
    return "|".join(patterns)


def _on(tool: str, platform: str) -> bool:
    return platform in ONLY_ON.get(tool, PLATFORMS)


def _tags(techniques: Iterable[str], catalog: Catalog) -> list[str]:
    tactics: dict[str, None] = {}
    named: dict[str, None] = {}
    for uid in techniques:
        _, tactic = catalog.technique(uid)
        tactics[f"attack.{tactic.lower().replace(' ', '-')}"] = None
        named[f"attack.{uid.lower()}"] = None
    return [*tactics, *named]


def _timespan(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds)}s"


def _platform_name(platform: str) -> str:
    return {"linux": "Linux", "windows": "Windows", "macos": "macOS"}[platform]


def _ident(tool: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", tool).strip("_").lower()


def _sentence(text: str) -> str:
    return " ".join(text.split())
