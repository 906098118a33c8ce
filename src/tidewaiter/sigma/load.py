"""Users' Sigma rules (`--sigma RULE_OR_DIR`) loaded through pySigma and run as signals.

A rule tagged as archiving (T1560) becomes an archive signal and a rule tagged as exfiltration
(T1048, T1041, T1567, T1030) a transfer: both join the per-container correlation like the
catalog's own. Any other rule is a finding of its own. Every rule that cannot run (a YAML or
pySigma error, a correlation rule, a logsource, field or modifier tidewaiter cannot evaluate)
is reported in one sentence and left out; none is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.signals import Destination, RuleRef, Signal, SignalKind
from tidewaiter.events import Event
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sigma.fields import Category, category, flatten, product
from tidewaiter.sigma.match import Predicate, Unsupported, compile_rule
from tidewaiter.sigma.pipeline import pipeline

CATEGORIES: frozenset[str] = frozenset({"process_creation", "file_event", "network_connection"})
PRODUCTS = frozenset({"linux", "windows", "macos"})
ARCHIVING = ("T1560",)
CARRYING = ("T1048", "T1041", "T1567", "T1030")
MAX_RULES = 10_000  # a directory of rules beyond this is refused, not half-loaded


@dataclass(frozen=True)
class Rule:
    ref: RuleRef
    kind: SignalKind  # ARCHIVE, UPLOAD or SIGMA
    technique: str
    category: Category
    product: str | None
    predicate: Predicate


@dataclass
class Rules:
    """Loaded rules, and one sentence per rule that could not be loaded."""

    rules: list[Rule] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def signals(self, event: Event, policy: AddressPolicy) -> list[Signal]:
        kind = category(event)
        if kind is None:
            return []
        source_product = product(event)
        fields = None
        found: list[Signal] = []
        for rule in self.rules:
            if rule.category != kind or (
                rule.product and source_product not in (None, rule.product)
            ):
                continue
            if fields is None:
                fields = flatten(event)
            if rule.predicate(fields):
                found.append(_signal(rule, event, policy))
        return found


def load(paths: list[str]) -> Rules:
    """Every rule under the paths (a file, or a directory searched for *.yml and *.yaml)."""
    loaded = Rules()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted([*path.rglob("*.yml"), *path.rglob("*.yaml")])
            if not files:
                raise SigmaLoadError(f"--sigma {given}: no .yml or .yaml rule files in it")
        elif path.is_file():
            files = [path]
        else:
            raise SigmaLoadError(f"--sigma {given}: no such file or directory")
        for file in files:
            _load_file(file, loaded)
            if len(loaded.rules) > MAX_RULES:
                raise SigmaLoadError(f"--sigma {given}: more than {MAX_RULES} rules")
    return loaded


def _load_file(file: Path, loaded: Rules) -> None:
    """Each YAML document on its own, so one bad rule (or a correlation whose rules are not
    here) does not take the file's other rules with it."""
    try:
        documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        loaded.problems.append(f"{file}: not loaded: {_sentence(exc)}")
        return
    load_documents(documents, file, loaded)


def load_documents(documents: list[Any], file: Path, loaded: Rules) -> None:
    """Rules from parsed YAML documents (a file's, or `sigma export`'s own)."""
    for number, document in enumerate(documents, 1):
        if document is None:
            continue
        title = document.get("title") if isinstance(document, dict) else None
        name = f"{file}: rule {title!r}" if title else f"{file}: document {number}"
        if not isinstance(document, dict):
            loaded.problems.append(f"{name} not loaded: it is not a mapping")
        elif "correlation" in document:
            loaded.problems.append(
                f"{name} not loaded: correlation rules are not run (tidewaiter correlates archiver "
                "and uploader rules per container itself)"
            )
        elif document.get("action"):
            loaded.problems.append(f"{name} not loaded: 'action' documents are not supported")
        else:
            _load_rule(document, file, name, loaded)


def _load_rule(document: dict[str, Any], file: Path, name: str, loaded: Rules) -> None:
    try:
        rule = SigmaRule.from_dict(document, collect_errors=True)
        if rule.errors:
            raise rule.errors[0]
        loaded.rules.append(_compile(rule, file))
    except Unsupported as exc:
        loaded.problems.append(f"{name} not loaded: {exc}")
    except (SigmaError, ValueError, TypeError, AttributeError) as exc:
        loaded.problems.append(f"{name} not loaded: {_sentence(exc)}")


def _compile(rule: SigmaRule, file: Path) -> Rule:
    source = rule.logsource
    service = (source.service or "").lower()
    wanted = (source.category or "").lower()
    if service == "auditd" and not wanted:
        wanted = "process_creation"  # execve records are what tidewaiter keeps from auditd
    elif service and not wanted:
        raise Unsupported(f"logsource service '{service}' is not one tidewaiter reads")
    if wanted not in CATEGORIES:
        raise Unsupported(
            f"logsource category '{wanted or 'none'}' is not one of {', '.join(sorted(CATEGORIES))}"
        )
    os_name = (source.product or "").lower() or None
    if os_name is not None and os_name not in PRODUCTS:
        raise Unsupported(f"logsource product '{os_name}' is not linux, windows or macos")
    pipeline().apply(rule)
    predicate = compile_rule(rule)
    tags = tuple(str(t) for t in rule.tags)
    techniques = [t.removeprefix("attack.").upper() for t in tags if t.startswith("attack.t")]
    if any(t.startswith(ARCHIVING) for t in techniques):
        kind, technique = SignalKind.ARCHIVE, _first(techniques, ARCHIVING)
    elif any(t.startswith(CARRYING) for t in techniques):
        kind, technique = SignalKind.UPLOAD, _first(techniques, CARRYING)
    else:
        kind, technique = SignalKind.SIGMA, techniques[0] if techniques else "T1560"
    level = str(rule.level).lower() if rule.level else "medium"
    ref = RuleRef(
        title=rule.title,
        level=level,
        id=str(rule.id) if rule.id else None,
        tags=tags,
        path=str(file),
    )
    return Rule(ref, kind, technique, wanted, os_name, predicate)  # type: ignore[arg-type]


def _first(techniques: list[str], prefixes: tuple[str, ...]) -> str:
    return next(t for t in techniques if t.startswith(prefixes))


def _signal(rule: Rule, event: Event, policy: AddressPolicy) -> Signal:
    process = event.process
    what = (process.cmd_line or process.path) if process else None
    what = what or (event.file.path if event.file else None)
    dst = event.dst_endpoint
    if dst is not None and dst.ip is not None:
        what = f"{what or 'a connection'} to {dst.ip}:{dst.port}"
    explanation = f"Sigma rule {rule.ref.title!r} matched {(what or 'a record')[:200]}"
    destination = None
    if rule.kind is SignalKind.UPLOAD:
        if dst is not None and (dst.ip or dst.hostname):
            internal = policy.ip_internal(dst.ip) if dst.ip else None
            destination = Destination(dst.hostname, dst.ip, dst.port, internal=bool(internal))
        else:  # the rule says it carries data out; where to is not in the record
            destination = Destination(host="unknown destination", internal=False)
    return Signal(
        rule.kind,
        tool=process.name if process and process.path else f"sigma:{rule.ref.title[:60]}",
        technique=rule.technique,
        event=event,
        explanation=explanation,
        archive_path=event.file.path if event.file and rule.kind is SignalKind.ARCHIVE else None,
        destination=destination,
        rule=rule.ref,
    )


def _sentence(error: object) -> str:
    return " ".join(str(error).split())[:300]
