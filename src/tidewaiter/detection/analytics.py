"""From a closed episode to a finding: which analytic it is, how severe, and why.

Severity follows OCSF (1 informational .. 5 critical). The reasons that raise it are kept as
sentences, because an alert that cannot explain itself is not one an analyst can act on.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath, PureWindowsPath

import msgspec

from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.catalog import AnalyticSpec, Catalog
from tidewaiter.detection.correlate import Case, Entity, Episode
from tidewaiter.detection.signals import Signal, SignalKind

EXFIL = "tw-archive-exfil"
INTERNAL = "tw-archive-internal"
CREATED = "tw-archive-created"
K8S_COPY = "tw-k8s-exec-copy"
EXPORT = "tw-container-export"
COMMIT_PUSH = "tw-commit-push"
HOST_STAGED = "tw-host-staged"
EGRESS_SPIKE = "tw-egress-spike"
SIGMA = "tw-sigma-rule"
DNS_CHANNEL = 8  # long unique names under one domain that make a DNS channel, not a lookup
LARGE_RESPONSE = 1 << 20  # bytes; a pods/exec response this large carried real data

SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
SIGMA_LEVELS = {name.lower(): level for level, name in SEVERITY_NAMES.items()}


class Finding(msgspec.Struct, frozen=True):
    uid: str
    analytic: AnalyticSpec
    title: str
    entity: Entity
    severity_id: int
    risk_score: int
    techniques: tuple[str, ...]
    evidence: tuple[Signal, ...]  # time order
    reasons: tuple[str, ...]
    omitted: int = 0
    suppressed_by: str | None = None  # the profile or suppression that holds it back, and why
    revision: int = 0  # 0 when first decided; each update with late evidence adds one

    @property
    def time(self) -> float:
        """When the last evidence happened (a folded flow counts its last send)."""
        return max(s.last_time or s.event.time for s in self.evidence)

    @property
    def severity(self) -> str:
        return SEVERITY_NAMES[self.severity_id]


def judge(case: Case, catalog: Catalog, registries: frozenset[str] = frozenset()) -> Finding | None:
    """The finding a correlated case makes, or None when it is not worth one."""
    if case.kind == "copy":
        return _copy(case, catalog)
    if case.kind == "push":
        return _push(case, catalog, registries)
    if case.kind == "sigma":
        return _sigma(case, catalog)
    if case.episode is None:
        raise ValueError(f"a {case.kind!r} case without an episode")
    return _episode(case.episode, catalog)


def _episode(episode: Episode, catalog: Catalog) -> Finding:
    where = "a container" if episode.entity.is_container else "a host"
    external = [t for t in episode.transfers if t.destination is None or not t.destination.internal]
    encrypted = any(a.encrypted for a in episode.archives)
    reasons: list[str] = []
    if external:
        # A transfer tool sending out is stronger evidence than traffic alone: a container that
        # archives logs and also talks to the internet is common, one that uploads is not.
        tool = any(t.kind is SignalKind.UPLOAD for t in external)
        raisers = _raisers(episode, external, encrypted)
        base = 4 if tool else 3
        analytic, severity = EXFIL, min(5, base + len(raisers))
        risk = min(100, (70 if tool else 55) + 10 * len(raisers))
        title = f"Archive staged and exfiltrated from {where}"
        reasons.append(_first_transfer_sentence(episode, external[0]))
        reasons += raisers
        reasons += _made_elsewhere(episode)
    elif episode.mount is not None:
        analytic, severity, risk = HOST_STAGED, 4, 75
        title = "Host data staged through a container"
        reasons.append(f"{episode.mount.explanation}; an archive was then made in it")
        if episode.transfers:
            reasons.append("the transfers that followed went to internal destinations")
    elif episode.transfers:
        analytic, severity, risk = INTERNAL, 2, 30
        title = f"Archive staged and sent to an internal destination from {where}"
        reasons.append("every transfer after the archive went to an internal destination")
        short = _unverified_short_name(episode.transfers)
        if short:
            severity, risk = 3, 50
            reasons.append(
                f"but {short} is a short name: /etc/hosts or a search domain decides where it "
                "goes, and no connection telemetry shows where it went"
            )
    else:
        analytic, severity, risk = CREATED, (3 if encrypted else 2), (45 if encrypted else 20)
        title = f"Archive created in {where}" + (" (encrypted)" if encrypted else "")
        reasons.append("no transfer out followed within the correlation window")
        if encrypted:
            reasons.append("the archive was encrypted")
    if episode.omitted:
        reasons.append(
            f"{episode.omitted} more signals were beyond the evidence bound; "
            "the strongest were kept"
        )
    if episode.nearby:
        reasons.append(_nearby_sentence(episode.nearby))
    mount = [episode.mount] if episode.mount is not None else []
    evidence = _ordered([*mount, *episode.archives, *episode.links, *episode.transfers])
    techniques = _techniques(evidence, catalog.analytics[analytic].attacks, bool(external))
    return _finding(
        catalog,
        analytic,
        title,
        episode.entity,
        severity,
        risk,
        evidence,
        reasons,
        techniques,
        anchor=episode.archives[0],
        omitted=episode.omitted,
        revision=episode.revision,
        uid=episode.uid,
    )


def _copy(case: Case, catalog: Catalog) -> Finding:
    """A pods/exec tar (kubectl cp), or docker cp / export out of a container."""
    [signal] = case.signals
    event = signal.event
    api = event.api
    raisers: list[str] = []
    refused = False
    for path in signal.sent_paths:
        inside = path.split(":", 1)[1] if ":" in path and path[1:2] != ":" else path
        why = catalog.sensitive_path(inside)  # `web:/etc/shadow` names a path in container web
        if why:
            raisers.append(f"it copied a sensitive path {path} ({why})")
            break
    if api is not None:
        outside = [ip for ip in api.source_ips if not _internal_ip(ip)]
        if outside:
            raisers.append(f"the request came from outside the network ({outside[0]})")
        if api.response_bytes and api.response_bytes >= LARGE_RESPONSE:
            raisers.append(f"the response carried {api.response_bytes} bytes")
        refused = api.response_code is not None and api.response_code >= 400
    if any(s.kind in (SignalKind.ARCHIVE, SignalKind.ARCHIVE_FILE) for s in case.context):
        raisers.append("an archive had been made in the container shortly before")
    if any(s.kind is SignalKind.HOST_MOUNT for s in case.context):
        raisers.append("the container mounts a sensitive host path")
    if signal.kind is SignalKind.API_COPY:
        analytic = K8S_COPY
        title = "Data copied out of a pod through the Kubernetes API"
        who = (api.user if api else None) or "an unknown user"
        reasons = [f"{who} ran a tar create in the pod through pods/exec, the shape of kubectl cp"]
    else:
        analytic = EXPORT
        title = "Container filesystem exported or copied to the host"
        reasons = [signal.explanation]
    severity = min(5, 3 + len(raisers))
    if api is not None and refused:
        # Nothing was copied, but someone tried: worth a record, not an alert.
        severity = 2
        raisers.append(f"the API refused it ({api.response_code}): an attempt, nothing copied")
    evidence = _ordered([*case.context, signal])
    techniques = _techniques(evidence, catalog.analytics[analytic].attacks, True)
    return _finding(
        catalog,
        analytic,
        title,
        case.entity,
        severity,
        min(100, 50 + 12 * len(raisers)),
        evidence,
        [*reasons, *raisers],
        techniques,
        anchor=signal,
    )


def _push(case: Case, catalog: Catalog, registries: frozenset[str]) -> Finding | None:
    push = case.signals[-1]
    registry = push.destination.host if push.destination else None
    familiar = registries | set(catalog.platform.familiar_registries)
    if registry is None or registry in familiar:
        return None
    committed = len(case.signals) > 1
    reasons = [f"{push.explanation} to {registry}, a registry not seen in this telemetry"]
    if committed and case.context:
        severity, risk = 4, 80
        reasons.insert(
            0, "a container that " + " and ".join(_context_phrases(case.context)) + " was committed"
        )
        if len(case.context) > 1 or any(s.encrypted for s in case.context):
            severity, risk = 5, 90
        title = "Container committed and pushed to an unfamiliar registry"
    else:
        severity, risk = 2, 30
        title = "Image pushed to an unfamiliar registry"
    evidence = _ordered([*case.context, *case.signals])
    techniques = _techniques(evidence, catalog.analytics[COMMIT_PUSH].attacks, True)
    return _finding(
        catalog,
        COMMIT_PUSH,
        title,
        case.entity,
        severity,
        risk,
        evidence,
        reasons,
        techniques,
        anchor=push,
    )


def _sigma(case: Case, catalog: Catalog) -> Finding:
    """A user's Sigma rule that matched on its own: its title, level and tags, as written."""
    [signal] = case.signals
    rule = signal.rule
    if rule is None:
        raise ValueError("a sigma case without its rule")
    severity = SIGMA_LEVELS.get(rule.level, 3)
    reasons = [signal.explanation + (f" (rule file {rule.path})" if rule.path else "")]
    known = tuple(t for t in _rule_techniques(rule.tags) if catalog.knows(t))
    unknown = [t for t in _rule_techniques(rule.tags) if not catalog.knows(t)]
    if unknown:
        reasons.append(f"its tags name {', '.join(unknown)}, outside tidewaiter's ATT&CK list")
    return _finding(
        catalog,
        SIGMA,
        rule.title,
        case.entity,
        severity,
        20 * severity - 10,
        (signal,),
        reasons,
        known,
        anchor=signal,
    )


def _rule_techniques(tags: tuple[str, ...]) -> list[str]:
    """`attack.t1560.001` → T1560.001; other tags are not techniques."""
    return [
        t.removeprefix("attack.").upper()
        for t in tags
        if t.lower().startswith("attack.t") and t[8:9].isdigit()
    ]


def _context_phrases(context: tuple[Signal, ...]) -> list[str]:
    phrases = []
    for signal in context:
        if signal.kind is SignalKind.HOST_MOUNT:
            phrases.append("mounts " + ", ".join(signal.sent_paths))
        else:
            phrases.append(f"archived data ({signal.tool})")
    return phrases


def _finding(
    catalog: Catalog,
    analytic: str,
    title: str,
    entity: Entity,
    severity: int,
    risk: int,
    evidence: tuple[Signal, ...],
    reasons: list[str],
    techniques: tuple[str, ...],
    anchor: Signal,
    omitted: int = 0,
    revision: int = 0,
    uid: str = "",
) -> Finding:
    return Finding(
        uid=uid or _finding_uid(analytic, entity, anchor),
        analytic=catalog.analytics[analytic],
        title=title,
        entity=entity,
        severity_id=severity,
        risk_score=risk,
        techniques=techniques,
        evidence=evidence,
        reasons=tuple(reasons),
        omitted=omitted,
        revision=revision,
    )


def _ordered(signals: list[Signal]) -> tuple[Signal, ...]:
    return tuple(sorted(signals, key=lambda s: s.event.time))


def _internal_ip(ip: str) -> bool:
    return AddressPolicy().host_internal(ip)


def _made_elsewhere(episode: Episode) -> list[str]:
    """A sentence when the archive was made in another container than the one that sent it."""
    mine = episode.entity.container
    for archive in episode.archives:
        theirs = archive.event.container
        if mine is not None and theirs is not None and theirs.uid[:12] != mine.uid[:12]:
            name = theirs.name or theirs.uid[:12]
            return [
                f"the archive was made in container {name} on the same node and sent from this "
                "one: they share the volume it is on"
            ]
    return []


def _unverified_short_name(transfers: list[Signal]) -> str | None:
    """A dotless host an upload went to, when no connection evidence came with it (a short
    name can be made to resolve anywhere from inside the container)."""
    if any(t.kind is SignalKind.EGRESS for t in transfers):
        return None
    for transfer in transfers:
        host = transfer.destination.host if transfer.destination else None
        if (
            transfer.kind is SignalKind.UPLOAD
            and host
            and "." not in host
            and host.lower() not in ("localhost", "unknown destination")
            and ":" not in host  # an rclone remote (`remote:`) is named by configuration
        ):
            return host
    return None


def _first_transfer_sentence(episode: Episode, transfer: Signal) -> str:
    gap = transfer.event.time - episode.first_archive
    archive = episode.archives[0]
    return (
        f"{archive.tool} packed data at {_clock(archive.event.time)}; {gap:.0f} s later "
        f"{transfer.explanation}"
    )


def _nearby_sentence(nearby: list[Signal]) -> str:
    """Traffic near the archive in time but not tied to it: context, never the reason."""
    shown = []
    for signal in nearby[:3]:
        process = signal.event.process
        who = _basename(process.path) if process and process.path else "a process"
        dst = signal.destination
        shown.append(f"{who} to {dst.label() if dst else 'an unknown destination'}")
    more = f" and {len(nearby) - 3} more" if len(nearby) > 3 else ""
    return (
        "context, not evidence: traffic in the same period that is not tied to the archive "
        f"(neither names it, nor is in its process tree or session, nor matches its size): "
        f"{', '.join(shown)}{more}"
    )


def _raisers(episode: Episode, external: list[Signal], encrypted: bool) -> list[str]:
    raisers: list[str] = []
    kept = [a.archive_path for a in episode.archives if a.archive_path]
    archive_names = {_basename(p) for p in (*kept, *episode.dropped)}
    for transfer in external:
        named = archive_names & {_basename(p) for p in transfer.sent_paths}
        if named or transfer.piped:
            how = (
                f"names the archive {sorted(named)[0]}" if named else "is fed the archive by a pipe"
            )
            raisers.append(f"the uploader's command line {how}")
            break
    sizes = [a.event.file.size for a in episode.archives if a.event.file and a.event.file.size]
    sent = sum(t.bytes_out or 0 for t in external if t.kind is SignalKind.EGRESS)
    if sizes and sent >= max(sizes) / 2:
        raisers.append(f"{sent} bytes left, at least half the archive's {max(sizes)} bytes")
    if encrypted:
        raisers.append("the archive was encrypted before it left")
    queried: dict[str, set[str]] = {}
    for transfer in external:
        if transfer.technique == "T1048.003" and transfer.destination is not None:
            queried.setdefault(transfer.destination.label(), set()).update(transfer.sent_paths)
    for domain, names in queried.items():
        if len(names) >= DNS_CHANNEL:
            raisers.append(f"{len(names)} long unique names were queried under {domain}")
            break
    folders = {_folder(a.archive_path) for a in episode.archives if a.archive_path} - {""}
    for link in episode.links:
        handed = [m for m in link.sent_paths if any(_within(m, f) for f in folders)]
        if link.kind is SignalKind.RUNTIME and handed:
            raisers.append(f"the archive's folder was handed to a container ({handed[0]})")
            break
    return raisers


def _techniques(
    evidence: tuple[Signal, ...], defaults: tuple[str, ...], exfil: bool
) -> tuple[str, ...]:
    """The techniques the evidence shows; the analytic's defaults where the evidence is silent."""
    seen: dict[str, None] = {}
    for signal in evidence:
        if exfil or signal.kind not in (SignalKind.EGRESS, SignalKind.UPLOAD):
            seen[signal.technique] = None
    if not any(t.startswith("T1560") for t in seen):
        seen = {"T1560": None, **seen}
    if exfil and not any(t.startswith(("T1048", "T1041", "T1567")) for t in seen):
        seen.update({t: None for t in defaults if not t.startswith("T1560")})
    return tuple(seen)


def _finding_uid(analytic: str, entity: Entity, first: Signal) -> str:
    """Stable for the same evidence: the analytic, the entity and the signal that anchors it."""
    process = first.event.process
    material = "\x1f".join(
        [
            analytic,
            entity.key,
            f"{first.event.time:.6f}",
            first.kind,
            first.tool,
            first.archive_path or "",
            str(process.pid if process else ""),
            (process.cmd_line or "") if process else "",
        ]
    )
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _basename(path: str | None) -> str:
    if not path:
        return ""
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def _folder(path: str) -> str:
    """The folder of an archive path, lower-cased ("" for the current or root folder)."""
    parent = str(PureWindowsPath(path).parent if "\\" in path else PurePosixPath(path).parent)
    return "" if parent in (".", "/") else parent.lower().rstrip("/\\")


def _within(mount: str, folder: str) -> bool:
    """Whether a mount spec (`C:\\Archive:/data`, `/srv:/x:ro`) shares the archive's folder or
    one above it, so the archive is visible inside the container."""
    drive, rest = (mount[:2], mount[2:]) if mount[1:2] == ":" else ("", mount)
    host = (drive + rest.split(":", 1)[0]).lower().rstrip("/\\")
    return folder == host or folder.startswith((host + "\\", host + "/"))


def _clock(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def evidence_rank(signal: Signal, catalog: Catalog) -> int:
    """How strong one piece of evidence is, for keeping the strongest when an episode's bound
    is reached: encrypted, outside, carried by an upload tool, big, from a sensitive path, a
    real archiver rather than a compressor of one file."""
    rank = 16 * signal.encrypted
    dst = signal.destination
    if signal.kind in (SignalKind.UPLOAD, SignalKind.EGRESS):
        rank += 8 * (dst is not None and not dst.internal)
        rank += 4 * (signal.kind is SignalKind.UPLOAD) + 2 * bool(signal.sent_paths)
        rank += (signal.bytes_out or 0) >= LARGE_RESPONSE
        return rank
    file = signal.event.file
    rank += 4 * bool(file is not None and file.size and file.size >= LARGE_RESPONSE)
    process = signal.event.process
    argv = (process.args or (process.cmd_line or "")[:4096].split()) if process else ()
    words = [signal.archive_path or "", *argv]
    rank += 8 * any(w.startswith("/") and catalog.sensitive_path(w) for w in words[:64])
    spec = catalog.archivers.get(signal.tool)
    rank += 2 * (spec is not None and spec.output != "compressed_input")
    return rank


def egress_spike(entity: Entity, egress: list[Signal], note: str, catalog: Catalog) -> Finding:
    """A container workload sent far more than it ever does, with or without an archive."""
    evidence = _ordered(list(egress))
    return _finding(
        catalog,
        EGRESS_SPIKE,
        "Unusual egress volume from a container workload",
        entity,
        3,
        55,
        evidence,
        [note],
        catalog.analytics[EGRESS_SPIKE].attacks,
        anchor=evidence[0],
    )
