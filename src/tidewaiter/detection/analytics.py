"""From a closed episode to a finding: which analytic it is, how severe, and why.

Severity follows OCSF (1 informational .. 5 critical). The reasons that raise it are kept as
sentences, because an alert that cannot explain itself is not one an analyst can act on.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath, PureWindowsPath

import msgspec

from tidewaiter.detection.catalog import AnalyticSpec, Catalog
from tidewaiter.detection.correlate import Entity, Episode
from tidewaiter.detection.signals import Signal, SignalKind

EXFIL = "tw-archive-exfil"
INTERNAL = "tw-archive-internal"
CREATED = "tw-archive-created"

SEVERITY_NAMES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}


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

    @property
    def time(self) -> float:
        """When the last evidence happened (a folded flow counts its last send)."""
        return max(s.last_time or s.event.time for s in self.evidence)

    @property
    def severity(self) -> str:
        return SEVERITY_NAMES[self.severity_id]


def judge(episode: Episode, catalog: Catalog) -> Finding:
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
    elif episode.transfers:
        analytic, severity, risk = INTERNAL, 2, 30
        title = f"Archive staged and sent to an internal destination from {where}"
        reasons.append("every transfer after the archive went to an internal destination")
    else:
        analytic, severity, risk = CREATED, (3 if encrypted else 2), (45 if encrypted else 20)
        title = f"Archive created in {where}" + (" (encrypted)" if encrypted else "")
        reasons.append("no transfer out followed within the correlation window")
        if encrypted:
            reasons.append("the archive was encrypted")
    evidence = tuple(
        sorted([*episode.archives, *episode.links, *episode.transfers], key=lambda s: s.event.time)
    )
    techniques = _techniques(evidence, catalog.analytics[analytic].attacks, bool(external))
    return Finding(
        uid=_finding_uid(analytic, episode),
        analytic=catalog.analytics[analytic],
        title=title,
        entity=episode.entity,
        severity_id=severity,
        risk_score=risk,
        techniques=techniques,
        evidence=evidence,
        reasons=tuple(reasons),
        omitted=episode.omitted,
    )


def _first_transfer_sentence(episode: Episode, transfer: Signal) -> str:
    gap = transfer.event.time - episode.first_archive
    archive = episode.archives[0]
    return (
        f"{archive.tool} packed data at {_clock(archive.event.time)}; {gap:.0f} s later "
        f"{transfer.explanation}"
    )


def _raisers(episode: Episode, external: list[Signal], encrypted: bool) -> list[str]:
    raisers: list[str] = []
    archive_names = {_basename(a.archive_path) for a in episode.archives if a.archive_path}
    for transfer in external:
        named = archive_names & {_basename(p) for p in transfer.sent_paths}
        if named or transfer.piped:
            how = (
                f"names the archive {sorted(named)[0]}" if named else "is fed the archive by a pipe"
            )
            raisers.append(f"the uploader's command line {how}")
            break
    sizes = [a.event.file.size for a in episode.archives if a.event.file and a.event.file.size]
    sent = sum(t.bytes_out or 0 for t in episode.transfers if t.kind is SignalKind.EGRESS)
    if sizes and sent >= max(sizes) / 2:
        raisers.append(f"{sent} bytes left, at least half the archive's {max(sizes)} bytes")
    if encrypted:
        raisers.append("the archive was encrypted before it left")
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


def _finding_uid(analytic: str, episode: Episode) -> str:
    """Stable for the same evidence: the analytic, the entity and the first archive signal."""
    first = episode.archives[0]
    process = first.event.process
    material = "\x1f".join(
        [
            analytic,
            episode.entity.key,
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
