"""Benign profiles and user suppressions: what a finding may be, besides an attack.

Nothing here is silent. A profile or suppression that applies either lowers a finding (it is
still delivered, with the reason) or suppresses it (kept, counted, listable with its reason).
An expired user suppression stops applying and is reported.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path, PurePath
from typing import Literal

import msgspec

from tidewaiter.detection import cmdline
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.catalog import Catalog
from tidewaiter.detection.catalog import load as load_catalog
from tidewaiter.detection.correlate import ARCHIVING
from tidewaiter.detection.signals import Signal, SignalKind
from tidewaiter.detection.workload import Identity, identity
from tidewaiter.identity import image_repository, workload_key


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str
    reason: str
    effect: Literal["suppress", "lower"]  # when every transfer stayed inside or was allowed
    by: int = 1
    outside: Literal["none", "lower", "suppress_unless_named"] = "none"  # otherwise
    outside_to: int = 2  # the severity an outside transfer is lowered to, at most
    owner_kinds: tuple[str, ...] = ()  # the workload identity that vouches for "lower" outside
    images: tuple[str, ...] = ()
    nearby: bool = False  # its tools count when they ran in the same place just before
    tools: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()


class ProfileFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    profiles: tuple[Profile, ...]


class Match(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a user suppression matches; every given field must match (globs, CIDRs)."""

    analytic: str | None = None
    workload: str | None = None
    image: str | None = None
    command: str | None = None
    destination: str | None = None


class Suppression(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: str
    match: Match
    reason: str
    author: str
    expires: date | None = None

    def expired(self, today: date) -> bool:
        return self.expires is not None and self.expires < today


class SuppressionFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    suppressions: tuple[Suppression, ...] = ()


class SuppressionError(Exception):
    """A suppressions file that cannot be used; the message names the file and the field."""


class Verdict(msgspec.Struct, frozen=True):
    finding: Finding  # as it stands after any lowering
    suppressed_by: str | None = None  # "profile <id>: reason" or "suppression <id>: reason"


class Check(msgspec.Struct, frozen=True):
    """One condition of a profile or suppression, held against a finding."""

    condition: str  # "tools", "parents", "commands", "paths", "destinations", or a Match field
    matched: bool
    detail: str


class NearMatch(msgspec.Struct, frozen=True):
    """How close a benign profile or suppression came to covering a finding, and why not."""

    kind: Literal["profile", "suppression"]
    id: str
    reason: str
    applies: bool
    checks: tuple[Check, ...]

    @property
    def score(self) -> float:
        """The share of its conditions that hold: 1.0 applies, 0.0 nothing in common."""
        if self.applies:
            return 1.0
        return sum(c.matched for c in self.checks) / len(self.checks) if self.checks else 0.0


class _CompiledProfile:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.tools = frozenset(profile.tools)
        self.parents = frozenset(profile.parents)
        self.commands = [re.compile(c) for c in profile.commands]
        self.paths = [re.compile(p) for p in profile.paths]
        self.images = [re.compile(i) for i in profile.images]

    def vouched(self, who: Identity) -> str | None:
        """Why the workload's identity (never its command text) says it does this, or None."""
        if who.kind in self.profile.owner_kinds:
            inferred = " (from the name its controller gave the pod)" if who.inferred else ""
            return f"the workload is {who.describe()}{inferred}"
        if who.image and any(i.search(who.image) for i in self.images):
            return f"the workload runs the image {who.image}"
        return None

    def why(self, signal: Signal, recent: frozenset[str]) -> str | None:
        """The evidence that makes this profile cover one archiving signal, or None."""
        process = signal.event.process
        name = cmdline.exe_name(process.path if process else None)
        parent = process.parent if process else None
        parent_name = cmdline.exe_name(parent.path if parent else None)
        if name in self.tools:
            return f"{name} is a {self.profile.name.lower()}"
        ran = sorted(self.tools & recent) if self.profile.nearby else []
        if ran:
            return f"{ran[0]} ran just before in the same place: a {self.profile.name.lower()}"
        if parent_name in self.parents:
            return f"{signal.tool} was started by {parent_name}"
        for text in (process.cmd_line if process else None, parent.cmd_line if parent else None):
            if text and any(c.search(text) for c in self.commands):
                return f"the command line {text[:120]!r} is a {self.profile.name.lower()}"
        if signal.archive_path and any(p.search(signal.archive_path) for p in self.paths):
            return (
                f"the archive {signal.archive_path} is where a {self.profile.name.lower()} writes"
            )
        return None

    def checks(self, signal: Signal, recent: frozenset[str] = frozenset()) -> list[Check]:
        """Each condition this profile has, held against one archiving signal (why() says
        whether any holds; this says which did and which did not, for an analyst)."""
        process = signal.event.process
        name = cmdline.exe_name(process.path if process else None)
        parent = process.parent if process else None
        parent_name = cmdline.exe_name(parent.path if parent else None)
        label = self.profile.name.lower()
        out: list[Check] = []
        if self.tools:
            hit = name in self.tools
            ran = sorted(self.tools & recent) if self.profile.nearby else []
            if not hit and ran:
                out.append(Check("tools", True, f"{ran[0]}, a {label}, ran just before"))
            else:
                detail = f"{name or '?'} is {'' if hit else 'not '}a {label}"
                out.append(Check("tools", hit, detail))
        if self.parents:
            hit = parent_name in self.parents
            verb = "is" if hit else "is not"
            out.append(
                Check("parents", hit, f"{signal.tool}'s parent {parent_name or '?'} {verb} one")
            )
        if self.commands:
            texts = [t for t in (process, parent) if t is not None and t.cmd_line]
            hit = any(c.search(t.cmd_line or "") for t in texts for c in self.commands)
            what = "matches" if hit else "matches none of"
            out.append(Check("commands", hit, f"the command line {what} its patterns"))
        if self.paths:
            path = signal.archive_path
            hit = bool(path) and any(p.search(path or "") for p in self.paths)
            where = f"the archive {path}" if path else "no archive path"
            out.append(
                Check("paths", hit, f"{where} {'is' if hit else 'is not'} where a {label} writes")
            )
        return out


class Suppressor:
    def __init__(
        self,
        suppressions: Iterable[Suppression] = (),
        allowed_destinations: Iterable[str] = (),
        profiles: Iterable[Profile] | None = None,
        today: date | None = None,
    ) -> None:
        self.today = today or datetime.now(UTC).date()
        loaded = load_profiles() if profiles is None else tuple(profiles)
        self.profiles = [_CompiledProfile(p) for p in loaded]
        all_rules = tuple(suppressions)
        self.expired = [s for s in all_rules if s.expired(self.today)]
        self.active = [s for s in all_rules if not s.expired(self.today)]
        self.allowed = _Allowed(allowed_destinations)
        # Executables whose mere running nearby makes a profile apply (a backup tool's script).
        self.context_tools = frozenset(
            t for c in self.profiles if c.profile.nearby for t in c.tools
        )

    def judge(self, finding: Finding, recent: frozenset[str] = frozenset()) -> Verdict:
        """The finding's fate; `recent` is the executables that ran in the same place lately."""
        for rule in self.active:
            if _matches(rule.match, finding):
                return Verdict(finding, f"suppression {rule.id}: {rule.reason} ({rule.author})")
        inside, caveat = self._inside(finding.evidence)
        refused: list[str] = []
        for compiled in self.profiles:
            profile = compiled.profile
            effect: str = profile.effect if inside else profile.outside
            if effect == "none":
                continue
            evidence = self._profile_evidence(compiled, finding, recent)
            if evidence is None:
                continue
            note = f"benign profile {profile.id} ({profile.reason}): {evidence}"
            if inside and caveat:
                note += f"; {caveat}"
            if finding.omitted:
                # It judged only the evidence kept under the bound: unproven for the rest, so it
                # may neither suppress nor lower (decoys must not make a finding milder).
                unproven = f"{note}; not applied: {finding.omitted} signals were not kept"
                reasons = (*finding.reasons, unproven)
                return Verdict(msgspec.structs.replace(finding, reasons=reasons))
            if effect == "suppress_unless_named":
                why_not = self._carried_out(finding)
                if why_not is None:
                    return Verdict(finding, note)
                refused.append(f"not held back as {profile.name.lower()} ({evidence}): {why_not}")
                continue
            if effect == "suppress":
                return Verdict(finding, note)
            if inside:
                return Verdict(_lower(finding, finding.severity_id - profile.by, note))
            who = identity(finding.entity.container)
            vouched = compiled.vouched(who)
            if vouched is None:
                # Names and command text come from inside the workload: context, never cover.
                refused.append(
                    f"not lowered as a {profile.name.lower()}: {evidence}, but that is text from "
                    f"inside {who.describe()}, which is not a {profile.name.lower()} job by its "
                    "owner or image, and the transfer went to a destination not allowed"
                )
                continue
            to = min(finding.severity_id, profile.outside_to)
            return Verdict(_lower(finding, to, f"{note}; {vouched}"))
        if refused:
            finding = msgspec.structs.replace(finding, reasons=(*finding.reasons, refused[0]))
        return Verdict(finding)

    def _carried_out(self, finding: Finding) -> str | None:
        """Why a transfer out is more than the profile's own traffic (None when it is not): an
        upload tool sent to a destination not allowed, or another process's egress left."""
        if _named(finding):
            return "an upload tool carried the archive itself"
        for signal in finding.evidence:
            if (
                signal.kind in (SignalKind.UPLOAD, SignalKind.PUSH)
                and not self._inside((signal,))[0]
            ):
                dst = signal.destination
                where = dst.label() if dst is not None else "an unknown destination"
                return f"{signal.tool} uploaded to {where}, a destination not allowed"
        own = {
            s.event.process.pid
            for s in finding.evidence
            if s.kind in ARCHIVING and s.event.process is not None
        }
        for signal in finding.evidence:
            if signal.kind is not SignalKind.EGRESS or self._inside((signal,))[0]:
                continue
            process = signal.event.process
            if process is None or process.pid in own:
                continue  # the installer's own download (an executable's name proves nothing)
            name = cmdline.exe_name(process.path)
            return f"{name or 'a process'} (pid {process.pid}) sent traffic out after it"
        return None

    def explain(self, finding: Finding, recent: frozenset[str] = frozenset()) -> list[NearMatch]:
        """Every profile and suppression held against the finding, closest first: which of
        its conditions hold and which do not (the "verify" step of a response)."""
        out = [self._explain_profile(c, finding, recent) for c in self.profiles]
        out += [_explain_rule(rule, finding, self.today) for rule in (*self.active, *self.expired)]
        return sorted(out, key=lambda m: -m.score)

    def _explain_profile(
        self, compiled: _CompiledProfile, finding: Finding, recent: frozenset[str]
    ) -> NearMatch:
        profile = compiled.profile
        archiving = [s for s in finding.evidence if s.kind in ARCHIVING]
        checks: list[Check] = []
        if not archiving:
            checks.append(Check("archiving", False, "no archiving evidence for it to cover"))
        for signal in archiving:
            found = compiled.checks(signal, recent)
            covered = any(c.matched for c in found)
            # A signal is covered by any one condition: report the one that holds, else all.
            checks.extend([c for c in found if c.matched][:1] if covered else found)
        inside = self._only_inside(finding.evidence)
        effect: str = profile.effect if inside else profile.outside
        if not inside:
            detail = (
                f"a transfer left for a destination not allowed: the profile's effect is {effect}"
            )
            checks.append(Check("destinations", effect != "none", detail))
        applies = self._profile_evidence(compiled, finding, recent) is not None and effect != "none"
        # The same conditions judge() holds it to, so verify never contradicts detection.
        if applies and effect == "suppress_unless_named":
            why_not = self._carried_out(finding)
            if why_not is not None:
                checks.append(Check("carried out", False, why_not))
                applies = False
        if applies and effect == "lower" and not inside:
            who = identity(finding.entity.container)
            vouched = compiled.vouched(who)
            not_vouched = f"{who.describe()} is not a {profile.name.lower()} job by owner or image"
            checks.append(Check("workload identity", vouched is not None, vouched or not_vouched))
            applies = vouched is not None
        if applies and finding.omitted:
            checks.append(Check("evidence kept", False, f"{finding.omitted} signals not kept"))
            applies = False
        return NearMatch("profile", profile.id, profile.reason, applies, tuple(checks))

    def _profile_evidence(
        self, compiled: _CompiledProfile, finding: Finding, recent: frozenset[str]
    ) -> str | None:
        archiving = [s for s in finding.evidence if s.kind in ARCHIVING]
        if not archiving:
            return None
        reasons = [compiled.why(s, recent) for s in archiving]
        if any(r is None for r in reasons):
            return None
        return reasons[0]

    def _only_inside(self, evidence: tuple[Signal, ...]) -> bool:
        return self._inside(evidence)[0]

    def _inside(self, evidence: tuple[Signal, ...]) -> tuple[bool, str | None]:
        """Whether every transfer stayed internal or reached an allowed destination, judged by
        the address the bytes reached (a command line's name can be rerouted: --resolve, a
        proxy, /etc/hosts). A connection is allowed by its address, or by a name its telemetry
        resolved forward (Hubble's DNS names; Sysmon's is a reverse lookup the far side
        controls). An upload is allowed by name only when no connection of its process was seen
        at all; the second value then says so, for the finding."""
        carriers = (SignalKind.UPLOAD, SignalKind.EGRESS, SignalKind.PUSH)
        connected = {
            s.event.process.pid
            for s in evidence
            if s.kind is SignalKind.EGRESS and s.event.process is not None
        }
        by_name: set[str] = set()
        for signal in evidence:
            dst = signal.destination
            if signal.kind not in carriers or dst is None or dst.internal:
                continue
            if self.allowed.covers(None, dst.ip):
                continue
            if dst.note is not None or not self.allowed.covers(dst.host, None):
                return False, None
            if signal.kind is SignalKind.EGRESS:
                if signal.event.raw.source in _FORWARD_NAMED:
                    continue
                return False, None
            process = signal.event.process
            if process is None or process.pid not in connected:
                by_name.add(dst.label())
            # else: its own connections are in the evidence and are judged by their address
        if not by_name:
            return True, None
        names = ", ".join(sorted(by_name)[:3])
        return True, f"{names} allowed by name only: no connection telemetry shows where it went"


# Sources whose connection names come from forward DNS answers, not from the far side.
_FORWARD_NAMED = frozenset({"hubble"})


def _lower(finding: Finding, severity: int, note: str) -> Finding:
    to = max(1, min(finding.severity_id, severity))
    by = finding.severity_id - to
    return msgspec.structs.replace(
        finding,
        severity_id=to,
        risk_score=max(0, finding.risk_score - 20 * by),
        reasons=(*finding.reasons, f"lowered by {note}"),
    )


class _Allowed:
    """Allowed destinations: host names (a name covers its subdomains), bucket or remote names,
    addresses and CIDR ranges."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.names: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def covers(self, host: str | None, ip: str | None) -> bool:
        if ip and self.networks:
            try:
                address = ipaddress.ip_address(ip)
            except ValueError:
                address = None
            if address is not None and any(address in net for net in self.networks):
                return True
        name = (host or "").lower().rstrip(".:")
        while name:
            if name in self.names:
                return True
            name = name.partition(".")[2]
        return False


def _named(finding: Finding) -> bool:
    """Whether an upload tool carried an archive of the finding itself (named it, or was fed it
    through a pipe)."""
    archives = {PurePath(s.archive_path).name for s in finding.evidence if s.archive_path}
    for signal in finding.evidence:
        if signal.kind is not SignalKind.UPLOAD:
            continue
        if signal.piped or archives & {PurePath(p).name for p in signal.sent_paths}:
            return True
    return False


def _explain_rule(rule: Suppression, finding: Finding, today: date) -> NearMatch:
    checks = []
    for field in ("analytic", "workload", "image", "command", "destination"):
        value = getattr(rule.match, field)
        if value is None:
            continue
        hit = _matches(Match(**{field: value}), finding)
        checks.append(
            Check(field, hit, f"{field} {'matches' if hit else 'does not match'} {value!r}")
        )
    if rule.expired(today):
        checks.append(Check("expires", False, f"expired on {rule.expires}"))
    applies = not rule.expired(today) and _matches(rule.match, finding)
    return NearMatch(
        "suppression", rule.id, f"{rule.reason} ({rule.author})", applies, tuple(checks)
    )


def _matches(match: Match, finding: Finding) -> bool:
    if match.analytic and match.analytic != finding.analytic.uid:
        return False
    container = finding.entity.container
    if match.workload and not (
        container is not None and fnmatch.fnmatchcase(workload_key(container), match.workload)
    ):
        return False
    if match.image:
        image = container.image.name if container is not None and container.image else None
        repo = image_repository(image) or ""
        if not (
            fnmatch.fnmatchcase(image or "", match.image) or fnmatch.fnmatchcase(repo, match.image)
        ):
            return False
    if match.command:
        lines = [s.event.process.cmd_line or "" for s in finding.evidence if s.event.process]
        if not any(fnmatch.fnmatchcase(line, match.command) for line in lines):
            return False
    if match.destination:
        targets = [s.destination for s in finding.evidence if s.destination is not None]
        if not targets or not all(
            _destination_matches(match.destination, d.host, d.ip) for d in targets
        ):
            return False
    return True


def _destination_matches(pattern: str, host: str | None, ip: str | None) -> bool:
    if ip:
        try:
            return ipaddress.ip_address(ip) in ipaddress.ip_network(pattern, strict=False)
        except ValueError:
            pass
    return fnmatch.fnmatchcase((host or ip or "").lower(), pattern.lower())


def load_profiles() -> tuple[Profile, ...]:
    text = resources.files("tidewaiter.detection.catalog").joinpath("profiles.yaml").read_bytes()
    return msgspec.yaml.decode(text, type=ProfileFile).profiles


def load_suppressions(path: str | Path) -> tuple[Suppression, ...]:
    try:
        data = Path(path).read_bytes()
        rules = msgspec.yaml.decode(data, type=SuppressionFile).suppressions
    except OSError as exc:
        raise SuppressionError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SuppressionError(f"{path}: {exc}") from exc
    for rule in rules:
        problem = match_problem(rule.match)
        if problem is not None:
            raise SuppressionError(f"{path}: suppression {rule.id}: {problem}")
    return rules


_LOOKS_LIKE_CIDR = re.compile(r"^[0-9a-fA-F:.]+/\S*$")


def match_problem(match: Match, catalog: Catalog | None = None) -> str | None:
    """Why a suppression could never match what its author meant, or None: an analytic that
    does not exist, or a destination written as a CIDR that is not one. Refused up front, so a
    typo never passes as a suppression that silently matches nothing."""
    catalog = catalog or load_catalog()
    if match.analytic is not None and match.analytic not in catalog.analytics:
        known = ", ".join(sorted(catalog.analytics))
        return f"no analytic {match.analytic!r} (one of {known})"
    if match.destination is not None and _LOOKS_LIKE_CIDR.match(match.destination):
        try:
            ipaddress.ip_network(match.destination, strict=False)
        except ValueError:
            return f"destination {match.destination!r} is not a valid CIDR range"
    return None
