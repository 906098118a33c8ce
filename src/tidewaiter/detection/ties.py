"""Whether a transfer carried an archive, or merely happened near it in time.

On a host the unit of correlation is not a container: a desktop's chat and sync clients talk to
the internet all day, and a zip made in between is not theirs to carry. A transfer joins an
archive only when it is tied to it:

- the uploader names the archive or is fed it through a pipe;
- the bytes sent match the archive's size;
- the sender is in the archiving process's tree: the archiver itself, its ancestor (the script
  that ran it) or descendant, or a process started by the same parent after the archive began;
- the sender is a process started, after the archive began, in the same logon session.

Traffic that is not tied stays in the finding as context and is never its reason. Inside a
container the same idea holds for one case the record proves: a process that talked to a
destination before the archive existed is not carrying it (the app's own API calls).

The process table is built from the process starts the source records (Sysmon ProcessGuid and
ParentProcessGuid, Tetragon exec ids, pids elsewhere); where a source records no starts for an
entity, nothing can be proven either way and every transfer stays joined, as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

import msgspec

from tidewaiter.detection import cmdline
from tidewaiter.detection.cmdline import exe_name
from tidewaiter.detection.correlate import ARCHIVING, Episode
from tidewaiter.detection.signals import Signal, SignalKind
from tidewaiter.events import Activity, Event, Kind, Process

K = TypeVar("K")
V = TypeVar("V")
MAX_ENTITIES = 65_536
MAX_PROCESSES = 4_096  # per entity, most recent kept
MAX_TALKS = 4_096  # (process, destination) pairs per entity
MAX_COPIES = 65_536  # strings shared between the tables (Ties._one)
SIZE_SLACK = 0.25  # bytes within a quarter of the archive's size (protocol overhead) match


# Sources that record every process start: an archiver they never saw start did not run.
RECORDS_STARTS = frozenset(
    {"sysmon-xml", "sysmon-evtx", "tetragon", "auditd", "eslogger", "sensor"}
)


# Sessions every service shares (Windows SYSTEM, LOCAL and NETWORK SERVICE; Sysmon for Linux
# writes 0 for all): being in one of them ties nothing to anything.
SHARED_SESSIONS = frozenset({None, "0", "0x0", "0x3e7", "0x3e4", "0x3e5"})


# A process: the producer's unique id (a str) where it gives one, else its pid (an int). The
# two types never compare equal, so no prefix is needed, and the id is the record's own string
# rather than a new one per event: these keys are most of what the tables below hold.
ProcKey = str | int


class _Proc(msgspec.Struct, gc=False):  # strings and a float: no cycles to collect
    start: float
    parent: ProcKey | None
    session: str | None
    name: str = ""


def process_key(process: Process | None) -> ProcKey | None:
    if process is None:
        return None
    if process.uid:
        return process.uid
    return process.pid


def _evict_oldest(table: dict[K, V]) -> None:
    """A plain dict keeps insertion order, so its first key is the oldest; it costs a third of
    an OrderedDict's memory per entry, and the tables hold thousands of entries per entity."""
    del table[next(iter(table))]


class Ties:
    """Per entity: the processes whose starts were recorded, and who talked where first."""

    def __init__(self) -> None:
        self._procs: OrderedDict[str, dict[ProcKey, _Proc]] = OrderedDict()
        self._talks: OrderedDict[str, dict[tuple[ProcKey, str], float]] = OrderedDict()
        # One copy of each id, address and name the tables hold: every record decodes its own
        # copy of its parent's id, and without this each start held a second one. Not
        # sys.intern: some Pythons make interned strings immortal (3.12 until a fix, free-
        # threaded builds), and these are the sender's. Bounded: when full it starts again,
        # which costs sharing, not correctness.
        self._copies: dict[str, str] = {}

    def _one(self, text: str) -> str:
        copies = self._copies
        held = copies.get(text)
        if held is not None:
            return held
        if len(copies) >= MAX_COPIES:
            copies.clear()
        copies[text] = text
        return text

    def _key(self, process: Process | None) -> ProcKey | None:
        own = process_key(process)
        return self._one(own) if isinstance(own, str) else own

    def observe(self, event: Event, key: str) -> None:
        process = event.process
        if event.kind is Kind.PROCESS and event.activity is Activity.LAUNCH:
            own = self._key(process)
            if own is None or process is None:
                return
            table = _table(self._procs, key)
            table.pop(own, None)  # a start seen again is the most recent
            table[own] = _Proc(
                event.time,
                self._key(process.parent),
                process.session,
                self._one(exe_name(process.path)),  # a few names, each held thousands of times
            )
            if len(table) > MAX_PROCESSES:
                _evict_oldest(table)
        elif event.kind is Kind.NETWORK and event.dst_endpoint is not None:
            own = process_key(process)
            ip = event.dst_endpoint.ip
            if own is None or not ip:
                return
            talks = _table(self._talks, key)
            if (own, ip) in talks:
                return  # first contacts only
            if isinstance(own, str):
                own = self._one(own)
            talks[own, self._one(ip)] = event.time
            if len(talks) > MAX_TALKS:
                _evict_oldest(talks)

    def forget(self, key: str) -> None:
        self._procs.pop(key, None)
        self._talks.pop(key, None)

    def unstarted(self, episode: Episode, shells: frozenset[str], skew: float) -> list[str]:
        """The archivers a shell line named that never started, when that is all the episode
        has to show (a plan, not a deed); empty when any archiver ran or a file was written."""
        procs = self._procs.get(episode.entity.key)
        if not procs:
            return []
        planned: list[str] = []
        for signal in episode.archives:
            process = signal.event.process
            if signal.kind is SignalKind.ARCHIVE_FILE or process is None:
                return []
            wrapped = exe_name(process.path) in shells and not _runs_applet(process, shells)
            if not wrapped or signal.event.raw.source not in RECORDS_STARTS:
                return []  # the archiver's own start, or a source that does not record starts
            since = signal.event.time - skew
            tool = signal.tool.lower()
            if any(p.start >= since and p.name == tool for p in procs.values()):
                return []
            planned.append(signal.tool)
        return planned

    def split(
        self, episode: Episode, skew: float, host: bool, internal: Callable[[str], bool]
    ) -> Episode:
        """The episode with only the transfers tied to its archives; the rest as context."""
        if not episode.transfers or not episode.archives:
            return episode
        procs = self._procs.get(episode.entity.key, {})
        talks = self._talks.get(episode.entity.key, {})
        episode = _resolve_names(episode, talks, internal)
        start = episode.first_archive - skew
        # A container started by the archiver's tree with a volume: its traffic leaves through
        # the runtime's own process (Docker Desktop's backend), so from then on it is tied.
        handed = min(
            (
                link.event.time
                for link in episode.links
                if link.kind is SignalKind.RUNTIME
                and link.sent_paths
                and _related_to_archive(link, episode, procs, start)
            ),
            default=None,
        )
        tied: list[Signal] = []
        nearby: list[Signal] = []
        for transfer in episode.transfers:
            if (handed is not None and transfer.event.time >= handed) or _tied(
                transfer, episode, procs, talks, start, host
            ):
                tied.append(transfer)
            else:
                nearby.append(transfer)
        if not nearby:
            return episode
        external = any(t.destination is None or not t.destination.internal for t in tied)
        return msgspec.structs.replace(
            episode, transfers=tied, nearby=[*episode.nearby, *nearby], external=external
        )


def _resolve_names(
    episode: Episode,
    talks: dict[tuple[ProcKey, str], float],
    internal: Callable[[str], bool],
) -> Episode:
    """An upload to a URL host is internal when every connection its process made went to an
    internal address (`https://files.corp.example.com/` resolving to 10.20.0.5)."""
    changed = False
    transfers = []
    for transfer in episode.transfers:
        dst = transfer.destination
        sender = process_key(transfer.event.process)
        if (
            transfer.kind is SignalKind.UPLOAD
            and dst
            and not dst.ip
            and not dst.internal
            and sender is not None  # pid 0 is a process too
        ):
            ips = [ip for (who, ip) in talks if who == sender]
            if ips and all(internal(ip) for ip in ips):
                where = msgspec.structs.replace(dst, ip=ips[0], internal=True)
                transfers.append(msgspec.structs.replace(transfer, destination=where))
                changed = True
                continue
        transfers.append(transfer)
    if not changed:
        return episode
    external = any(t.destination is None or not t.destination.internal for t in transfers)
    return msgspec.structs.replace(episode, transfers=transfers, external=external)


def _table(tables: OrderedDict[str, dict[K, V]], key: str) -> dict[K, V]:
    table = tables.get(key)
    if table is None:
        table = tables[key] = {}
        if len(tables) > MAX_ENTITIES:
            tables.popitem(last=False)
    tables.move_to_end(key)
    return table


def _tied(
    transfer: Signal,
    episode: Episode,
    procs: dict[ProcKey, _Proc],
    talks: dict[tuple[ProcKey, str], float],
    start: float,
    host: bool,
) -> bool:
    if transfer.kind is SignalKind.UPLOAD and (transfer.piped or _names(transfer, episode)):
        return True
    if _size_matches(transfer, episode):
        return True
    sender = process_key(transfer.event.process)
    dst = transfer.destination
    if sender is None:
        return True  # a bare flow (Zeek, flow logs): nothing to tie or untie it with
    if dst is not None and dst.ip:
        first = talks.get((sender, dst.ip))
        if first is not None and first < start:
            return False  # it talked there before the archive existed: not carrying it
    if not host or not procs:
        return True  # containers: only the rule above; no recorded starts: cannot tell
    return _related_to_archive(transfer, episode, procs, start)


def _related_to_archive(
    signal: Signal, episode: Episode, procs: dict[ProcKey, _Proc], start: float
) -> bool:
    sender = process_key(signal.event.process)
    if sender is None:
        return False
    archivers = {
        k
        for s in episode.archives
        if s.kind in ARCHIVING and (k := process_key(s.event.process)) is not None
    }
    return any(_related(sender, a, procs, start) for a in archivers)


def _related(sender: ProcKey, archiver: ProcKey, procs: dict[ProcKey, _Proc], start: float) -> bool:
    if sender == archiver:
        return True
    mine = procs.get(sender)
    theirs = procs.get(archiver)
    if mine is None:
        return False  # started before the record began: long-running, not the archiver's
    if archiver in _ancestors(sender, procs) or sender in _ancestors(archiver, procs):
        return True
    if mine.start < start:
        return False
    if theirs is not None and theirs.parent is not None and mine.parent == theirs.parent:
        return True  # started by the same script or shell after the archive began
    shared = theirs is not None and theirs.session not in SHARED_SESSIONS
    return shared and theirs is not None and mine.session == theirs.session


def _ancestors(key: ProcKey, procs: dict[ProcKey, _Proc]) -> list[ProcKey]:
    out: list[ProcKey] = []
    current = procs.get(key)
    while current is not None and current.parent is not None and len(out) < 32:
        out.append(current.parent)
        current = procs.get(current.parent)
    return out


def _names(transfer: Signal, episode: Episode) -> bool:
    names = {_basename(a.archive_path) for a in episode.archives if a.archive_path}
    return bool(names & {_basename(p) for p in transfer.sent_paths})


def _size_matches(transfer: Signal, episode: Episode) -> bool:
    sent = transfer.bytes_out or 0
    if not sent:
        return False
    sizes = [a.event.file.size for a in episode.archives if a.event.file and a.event.file.size]
    return any(size * (1 - SIZE_SLACK) <= sent <= size * (1 + SIZE_SLACK) for size in sizes)


def _basename(path: str | None) -> str:
    if not path:
        return ""
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def _runs_applet(process: Process, shells: frozenset[str]) -> bool:
    """`toybox tar -czf ...` is tar's own start, not a shell line naming it: a multicall binary
    runs the applet its first argument names. It is a shell when that applet is one, or when
    its arguments are a shell's (`/bin/sh` linked to busybox: Tetragon reports busybox `-c ...`)."""
    if exe_name(process.path) not in cmdline.MULTICALL:
        return False
    argv = process.args or tuple((process.cmd_line or "").split())
    if argv and exe_name(argv[0]) in cmdline.MULTICALL:
        argv = argv[1:]  # argv[0] is there (Tetragon leaves it out)
    applet = argv[0] if argv else ""
    shell_flags = applet.startswith("-") and applet.endswith("c") and len(applet) <= 3
    return bool(applet) and not shell_flags and exe_name(applet) not in shells
