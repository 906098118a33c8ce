"""Per-entity correlation: an archive followed by a transfer out, within a window.

State is one open *episode* per entity (a container, or a host with no container): the archive
signals that opened it and whatever transfers, egress and runtime links followed. Nothing else is
kept, so an entity with no archive activity costs nothing. Episodes close and become findings
when event time passes their due time, at end of input, or when the bound on open episodes
forces the oldest out early; snapshot/restore carry them across a restart.

Event time is kept per clock (a host: each node writes its own timestamps), because time is
attacker-controlled input: a record dated 2099, or a node whose clock runs an hour ahead, moves
only its own clock and closes only its own episodes. An episode whose node falls silent is
closed when the quorum clock (the lower median of all clocks) is `max_clock_skew` past its due
time, so one fast node, or a minority of them, cannot close another's episodes early.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable

import msgspec

from tidewaiter.detection.signals import Destination, Signal, SignalKind
from tidewaiter.events import Container

ARCHIVING = frozenset({SignalKind.ARCHIVE, SignalKind.ENCRYPT, SignalKind.ARCHIVE_FILE})
CARRYING = frozenset({SignalKind.UPLOAD, SignalKind.EGRESS})
LINKING = frozenset({SignalKind.RUNTIME, SignalKind.SPLIT})
COPYING = frozenset({SignalKind.API_COPY, SignalKind.COPY_OUT})


class CorrelationConfig(msgspec.Struct, frozen=True):
    window: float = 900.0  # seconds an archive stays "staged" waiting for a transfer
    settle: float = 60.0  # seconds after the last transfer before a finding is emitted
    max_open: int = 100_000  # open episodes kept; the oldest is closed early beyond this
    max_evidence: int = 64  # signals kept per kind in an episode; the rest are counted
    skew: float = 5.0  # a transfer this much earlier than the archive still counts (clock and
    # ordering skew between sources: a pipeline's connection can be logged before its archiver)
    max_clock_skew: float = 7200.0  # a silent node's episodes close this long past due (quorum)
    # An upload that names an archive joins it this long after: a week, since an attacker who
    # knows the window waits it out, and naming the very file is strong evidence however late.
    # (Memory is bounded by the archives kept per entity and max_open, not by this.)
    named_window: float = 7 * 86_400.0
    update_window: float = 1800.0  # seconds after a finding in which late evidence updates it
    max_updates: int = 8  # updates per finding, at most


class Entity(msgspec.Struct, frozen=True, omit_defaults=True):
    key: str  # "container:<12 hex>" or "host:<name>"
    host: str | None = None
    container: Container | None = None

    @property
    def is_container(self) -> bool:
        return self.container is not None


class Facts(msgspec.Struct, omit_defaults=True):
    """What is known about an entity beyond one episode: its sensitive host mount and its last
    archive, so later platform calls (a copy out, a commit) can be judged with them."""

    mount: Signal | None = None
    last_archive: Signal | None = None
    named: list[Signal] = msgspec.field(default_factory=list)  # recent archives with a path


class Commit(msgspec.Struct, frozen=True):
    """A commit waiting for a push, with what made the committed container interesting."""

    entity: Entity
    signal: Signal
    context: tuple[Signal, ...]  # the container's mount and archive signals, if any


class Episode(msgspec.Struct, omit_defaults=True):
    entity: Entity
    archives: list[Signal]
    mount: Signal | None = None  # the entity's sensitive host mount, when it has one
    transfers: list[Signal] = msgspec.field(default_factory=list)
    links: list[Signal] = msgspec.field(default_factory=list)
    nearby: list[Signal] = msgspec.field(default_factory=list)  # traffic not tied to the archive
    omitted: int = 0  # evidence beyond max_evidence, counted so the alert can say so
    dropped: list[str] = msgspec.field(default_factory=list)  # archive names not kept (bounded)
    ranks: dict[str, list[int]] = msgspec.field(default_factory=dict)  # of full buckets
    last_archive: float = 0.0
    last_transfer: float = 0.0
    external: bool = False  # a transfer reached a non-internal destination
    uploaded: bool = False  # ... and a transfer tool (not bare traffic) carried it
    revision: int = 0  # how many times a decided episode was reopened by late evidence
    uid: str = ""  # the finding uid it was first decided under, kept by its updates
    decided_at: float = 0.0  # event time when it was last decided

    @property
    def first_archive(self) -> float:
        return self.archives[0].event.time

    def due(self, config: CorrelationConfig) -> float:
        if self.uploaded or self.revision:
            # An upload tool sent it out, or late evidence joined a decided finding: report
            # soon (after the settle time, for its sends).
            return self.last_transfer + config.settle
        # Bare traffic is weaker evidence: wait out the window, so an upload that follows the
        # archive's first outbound connection (an updater, a telemetry ping) still joins it.
        return self.last_archive + config.window


class Case(msgspec.Struct, frozen=True):
    """What correlation hands to the analytics: a closed episode, or a platform call with its
    context. ``kind`` is "episode", "copy", "push" or "sigma"."""

    kind: str
    entity: Entity
    signals: tuple[Signal, ...]
    episode: Episode | None = None
    context: tuple[Signal, ...] = ()


class Snapshot(msgspec.Struct):
    version: int
    watermark: float
    episodes: list[Episode]
    facts: list[tuple[str, Facts]] = msgspec.field(default_factory=list)
    commits: list[Commit] = msgspec.field(default_factory=list)
    clocks: list[tuple[str, float]] = msgspec.field(default_factory=list)
    decided: list[Episode] = msgspec.field(default_factory=list)


SNAPSHOT_VERSION = 2
NAMED_KEPT = 4  # archives with a path remembered per entity, for an upload that names one late
_UNKNOWN = Destination(internal=False)
# Scratch folders each container has to itself: an archive there is not on a shared volume.
_PRIVATE_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/", "/proc/")  # noqa: S108
Emit = Callable[[Case], None]
Rank = Callable[[Signal], int]  # how strong a piece of evidence is, for keeping the strongest


class Correlator:
    def __init__(self, config: CorrelationConfig, emit: Emit, rank: Rank | None = None) -> None:
        self.config = config
        self._emit = emit
        self._rank = rank or _rank
        self._open: OrderedDict[str, Episode] = OrderedDict()
        # per clock, a lazily validated min-heap of (due time, episode key)
        self._due: dict[str, list[tuple[float, str]]] = {}
        self._clocks: dict[str, float] = {}  # clock key -> latest event time
        self._since_quorum = 0  # advances since the quorum clock was last worked out
        # (host, archive file name) -> (entity key, archive): an archive made in one container
        # and uploaded from another that shares the volume is matched by its name on the host.
        self._by_name: OrderedDict[tuple[str, str], tuple[str, Signal]] = OrderedDict()
        self._facts: OrderedDict[str, Facts] = OrderedDict()
        self._commits: list[Commit] = []  # recent commits, oldest first, within the window
        # Findings already emitted, open to late evidence for update_window (an uploader that
        # starts minutes after the shell line that named it): one per entity, bounded.
        self._decided: OrderedDict[str, Episode] = OrderedDict()
        self.watermark = 0.0  # the quorum clock: the lower median of all clocks

    @property
    def open_episodes(self) -> int:
        return len(self._open)

    def on_signal(self, signal: Signal, entity: Entity) -> None:
        kind = signal.kind
        if kind is SignalKind.HOST_MOUNT:
            self._fact(entity.key).mount = signal
            return
        if kind in COPYING:
            self._emit(Case("copy", entity, (signal,), context=self._context(entity.key)))
            return
        if kind is SignalKind.SIGMA:  # a user's rule that stands on its own
            self._emit(Case("sigma", entity, (signal,)))
            return
        if kind is SignalKind.COMMIT:
            self._commit(signal, entity)
            return
        if kind is SignalKind.PUSH:
            self._push(signal, entity)
            return
        if kind in ARCHIVING:
            facts = self._fact(entity.key)
            facts.last_archive = signal
            if signal.archive_path:
                facts.named = [*facts.named[-(NAMED_KEPT - 1) :], signal]
            if signal.archive_path and not signal.archive_path.startswith(_PRIVATE_DIRS):
                shared = (clock_key(entity), _name(signal.archive_path))
                self._by_name[shared] = (entity.key, signal)
                self._by_name.move_to_end(shared)
                if len(self._by_name) > self.config.max_open:
                    self._by_name.popitem(last=False)
        self._episode_signal(signal, entity)

    def _episode_signal(self, signal: Signal, entity: Entity) -> None:
        kind = signal.kind
        time = signal.event.time
        episode = self._open.get(entity.key)
        if kind in ARCHIVING:
            if episode is not None and (
                time - episode.last_archive > self.config.window
                or (episode.external and time - episode.last_transfer > self.config.settle)
            ):
                self._close(entity.key)  # a new staging run, not more of the same one
                episode = None
            if episode is None:
                self._decided.pop(entity.key, None)  # a new staging run: the old one is done
                facts = self._facts.get(entity.key)
                episode = Episode(entity=entity, archives=[], mount=facts.mount if facts else None)
                self._open[entity.key] = episode
                self._evict_over_bound()
            if not _duplicate(episode.archives, signal):
                self._add(episode, episode.archives, signal)
            episode.last_archive = max(episode.last_archive, time)
        else:
            if episode is None and kind in CARRYING:
                # Late evidence of a finding already decided: it is updated, same uid.
                episode = self._reopen(entity.key, signal)
            beyond = episode is not None and time - episode.last_archive > self.config.window
            if (
                kind is SignalKind.UPLOAD
                and (episode is None or (beyond and not episode.revision))
                and (named := self._named_archive(entity.key, signal)) is not None
            ):
                self._tail(self._join_by_name(episode, entity, signal, named), entity)
                return
            if episode is None or time < episode.first_archive - self.config.skew:
                return  # a transfer or link with nothing staged before it
            if beyond and not episode.revision:
                self._close(entity.key)
                return
            if kind in CARRYING:
                self._add_transfer(episode, signal)
                episode.last_transfer = max(episode.last_transfer, time)
                dst = signal.destination
                outside = dst is not None and not dst.internal
                episode.external = episode.external or outside
                episode.uploaded = episode.uploaded or (outside and kind is SignalKind.UPLOAD)
            elif kind in LINKING:
                self._add(episode, episode.links, signal)
        self._tail(episode, entity)

    def _join_by_name(
        self, episode: Episode | None, entity: Entity, signal: Signal, named: Signal
    ) -> Episode:
        """An upload that names an archive made before the window: the name joins them, as an
        update of the archive's own finding when it was decided here already."""
        decided = self._decided.get(entity.key)
        if episode is None and decided is not None and named in decided.archives:
            reopened = self._reopen(entity.key, signal, named=True)
            if reopened is not None:
                self._add_transfer(reopened, signal)
                reopened.last_transfer = max(reopened.last_transfer, signal.event.time)
                outside = not (signal.destination or _UNKNOWN).internal
                reopened.external = reopened.external or outside
                reopened.uploaded = reopened.uploaded or outside
                return reopened
        if episode is not None:
            self._close(entity.key)
        episode = Episode(entity=entity, archives=[named], last_archive=named.event.time)
        facts = self._facts.get(entity.key)
        episode.mount = facts.mount if facts else None
        self._open[entity.key] = episode
        self._evict_over_bound()
        self._add_transfer(episode, signal)
        episode.last_transfer = signal.event.time
        episode.external = episode.uploaded = not (signal.destination or _UNKNOWN).internal
        return episode

    def _tail(self, episode: Episode, entity: Entity) -> None:
        """After a signal joined an episode: the richest identity, recency, its due time."""
        if entity.container is not None and episode.entity != entity:
            episode.entity = entity  # keep the richest identity seen (full id, image)
        self._open.move_to_end(entity.key)
        self._schedule(episode, entity.key)

    def _named_archive(self, key: str, upload: Signal) -> Signal | None:
        """The latest archive of this entity, within the named window, whose file the upload
        names (`curl -T /tmp/a.tgz` sixteen minutes after `tar czf /tmp/a.tgz`)."""
        if not upload.sent_paths:
            return None
        sent = {_name(p) for p in upload.sent_paths}
        horizon = upload.event.time - self.config.named_window
        facts = self._facts.get(key)
        for archive in reversed(facts.named if facts else []):
            if archive.event.time >= horizon and _name(archive.archive_path or "") in sent:
                return archive
        # Made elsewhere on the same node (another container sharing the volume)?
        host = (upload.event.host or "").lower()
        for name in sorted(sent):
            found = self._by_name.get((host, name))
            if found is not None and found[0] != key and found[1].event.time >= horizon:
                return found[1]
        return None

    def _reopen(self, key: str, signal: Signal, named: bool = False) -> Episode | None:
        """A decided finding of this entity that late evidence may still update, reopened: an
        upload tool's exec, or the traffic of an uploader it already names (an app's routine
        calls after the archive are not late evidence of it)."""
        episode = self._decided.get(key)
        late = signal.event.time - episode.decided_at if episode is not None else 0.0
        window = self.config.named_window if named else self.config.update_window
        if episode is None or late > window or episode.revision >= self.config.max_updates:
            return None
        if signal.kind is SignalKind.UPLOAD:
            # The planned upload now running (its tool was named before), or one naming the
            # archive; an unrelated upload that happens to follow is not late evidence.
            names = {_name(a.archive_path) for a in episode.archives if a.archive_path}
            planned = {t.tool for t in episode.transfers if t.kind is SignalKind.UPLOAD}
            if signal.tool not in planned and not names & {_name(p) for p in signal.sent_paths}:
                return None
        else:
            process = signal.event.process
            uploaders = {
                t.event.process.pid
                for t in episode.transfers
                if t.kind is SignalKind.UPLOAD and t.event.process is not None
            }
            if process is None or process.pid is None or process.pid not in uploaders:
                return None
        del self._decided[key]
        episode.revision += 1
        self._open[key] = episode
        self._evict_over_bound()
        return episode

    def rekey(self, old: str, new: str) -> None:
        """Move what is known under one entity key to another (a pod that got its real id)."""
        facts = self._facts.pop(old, None)
        if facts is not None and new not in self._facts:
            self._facts[new] = facts
        episode = self._open.pop(old, None)
        if episode is not None and new not in self._open:
            self._open[new] = episode
            self._schedule(episode, new)

    def forget(self, key: str) -> None:
        """An entity that is gone (exited, or idle too long): its open episode is decided now,
        never dropped, and what is known about it is released."""
        self._close(key)
        self._facts.pop(key, None)

    def _fact(self, key: str) -> Facts:
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = Facts()
            while len(self._facts) > self.config.max_open:
                self._facts.popitem(last=False)
        self._facts.move_to_end(key)
        return facts

    def _context(self, key: str) -> tuple[Signal, ...]:
        """The mount and recent archive of an entity, as evidence for a platform call."""
        facts = self._facts.get(key)
        if facts is None:
            return ()
        recent = facts.last_archive
        if recent is not None and self.watermark - recent.event.time > self.config.window:
            recent = None
        return tuple(s for s in (facts.mount, recent) if s is not None)

    def _commit(self, signal: Signal, entity: Entity) -> None:
        self._commits.append(Commit(entity, signal, self._context(entity.key)))
        horizon = signal.event.time - self.config.window
        self._commits = [c for c in self._commits if c.signal.event.time >= horizon][-64:]

    def _push(self, signal: Signal, entity: Entity) -> None:
        """A push is judged with the most recent commit on the same host within the window
        (engine events rarely name the committed container on the push itself)."""
        horizon = signal.event.time - self.config.window
        host = signal.event.host
        candidates = [
            c
            for c in self._commits
            if c.signal.event.time >= horizon
            and (host is None or c.signal.event.host in (None, host))
        ]
        if not candidates:
            self._emit(Case("push", entity, (signal,)))
            return
        commit = next((c for c in reversed(candidates) if c.context), candidates[-1])
        self._emit(Case("push", commit.entity, (commit.signal, signal), context=commit.context))

    def _add_transfer(self, episode: Episode, signal: Signal) -> None:
        """Sends of one flow fold into one evidence item; a flow of 10,000 sends is one line."""
        for index in range(len(episode.transfers) - 1, -1, -1):
            if episode.transfers[index].same_flow(signal):
                folded = episode.transfers[index] = episode.transfers[index].fold(signal)
                if "transfers" in episode.ranks:
                    episode.ranks["transfers"][index] = self._rank(folded)
                return
        self._add(episode, episode.transfers, signal)

    def _add(self, episode: Episode, bucket: list[Signal], signal: Signal) -> None:
        if len(bucket) < self.config.max_evidence:
            bucket.append(signal)
            return
        # The bound is reached: keep the strongest, so decoys sent first cannot push the real
        # archive or upload out; what is dropped is counted (and an archive's name kept).
        episode.omitted += 1
        dropped = signal
        rank = self._rank(signal)
        if rank > 0:
            name = "archives" if bucket is episode.archives else "transfers"
            ranks = episode.ranks.get(name) if bucket is not episode.links else None
            if ranks is None or len(ranks) != len(bucket):
                ranks = [self._rank(s) for s in bucket]
                if bucket is not episode.links:
                    episode.ranks[name] = ranks
            weakest = min(range(len(bucket)), key=ranks.__getitem__)
            if rank > ranks[weakest]:
                dropped, bucket[weakest], ranks[weakest] = bucket[weakest], signal, rank
        if dropped.kind in ARCHIVING and dropped.archive_path:
            episode.dropped.append(dropped.archive_path)
            del episode.dropped[: -4 * self.config.max_evidence]

    def clock(self, key: str) -> float | None:
        """The latest event time a clock (a host, lower-cased; "" for none) has reached."""
        return self._clocks.get(key)

    def advance(self, now: float, clock: str = "") -> None:
        """Move one clock's event time forward; its episodes whose due time has passed become
        findings, and so do any node's once the quorum clock is max_clock_skew past them."""
        previous = self._clocks.get(clock)
        if previous is None or now > previous:
            if previous is None and len(self._clocks) >= self.config.max_open:
                # the stalest goes; its episodes still close by the quorum
                del self._clocks[min(self._clocks, key=self._clocks.__getitem__)]
            self._clocks[clock] = now
            if clock in self._due:
                self._drain(clock, now)
            self._since_quorum += 1
            if len(self._clocks) == 1:
                self.watermark = now  # one clock: it is the quorum, and drained above
            elif self._since_quorum >= 64 or len(self._clocks) <= 8:
                self._since_quorum = 0
                self._advance_quorum()

    def _advance_quorum(self) -> None:
        clocks = sorted(self._clocks.values())
        quorum = clocks[(len(clocks) - 1) // 2]
        if quorum > self.watermark:
            self.watermark = quorum
            for key in list(self._due):
                self._drain(key, quorum - self.config.max_clock_skew)

    def _drain(self, clock: str, now: float) -> None:
        heap = self._due.get(clock)
        while heap and heap[0][0] <= now:
            due, key = heapq.heappop(heap)
            episode = self._open.get(key)
            if episode is not None and episode.due(self.config) <= due:
                self._close(key)
        if heap is not None and not heap:
            del self._due[clock]

    def _schedule(self, episode: Episode, key: str) -> None:
        heap = self._due.setdefault(clock_key(episode.entity), [])
        heapq.heappush(heap, (episode.due(self.config), key))

    def clamp(self, ceiling: float) -> None:
        """No clock beyond `ceiling` (a restored checkpoint from a time before records dated
        far ahead were refused)."""
        for key, value in self._clocks.items():
            self._clocks[key] = min(value, ceiling)
        self.watermark = min(self.watermark, ceiling)

    def flush(self) -> None:
        """End of input: every open episode becomes a finding now."""
        for key in list(self._open):
            self._close(key)
        self._due.clear()

    def _close(self, key: str) -> None:
        episode = self._open.pop(key, None)
        if episode is not None:
            self._emit(Case("episode", episode.entity, (), episode=episode))
            # When it was due, not when the next record happened to arrive (event time).
            episode.decided_at = min(self.watermark, episode.due(self.config))
            self._decided[key] = episode
            self._decided.move_to_end(key)
            while len(self._decided) > self.config.max_open:
                self._decided.popitem(last=False)

    def _evict_over_bound(self) -> None:
        while len(self._open) > self.config.max_open:
            key = next(iter(self._open))
            self._close(key)

    def snapshot(self) -> bytes:
        state = Snapshot(
            SNAPSHOT_VERSION,
            self.watermark,
            list(self._open.values()),
            list(self._facts.items()),
            self._commits,
            list(self._clocks.items()),
            list(self._decided.values()),
        )
        return msgspec.msgpack.encode(state)

    def restore(self, data: bytes) -> None:
        state = msgspec.msgpack.decode(data, type=Snapshot)
        if state.version != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {state.version}, expected {SNAPSHOT_VERSION}")
        self.watermark = state.watermark
        self._open = OrderedDict((e.entity.key, e) for e in state.episodes)
        self._clocks = dict(state.clocks or [("", state.watermark)])
        self._due = {}
        for episode in state.episodes:
            self._schedule(episode, episode.entity.key)
        self._facts = OrderedDict(state.facts)
        self._commits = list(state.commits)
        self._decided = OrderedDict((e.entity.key, e) for e in state.decided)


def clock_key(entity: Entity) -> str:
    """Whose clock an entity's episodes follow: its host's (records name their node)."""
    return (entity.host or "").lower()


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _duplicate(signals: list[Signal], new: Signal) -> bool:
    """The same archive seen again (a file written in many chunks, a wrapper and its child)."""
    return any(
        s.kind == new.kind
        and s.archive_path == new.archive_path
        and s.tool == new.tool
        and (new.archive_path is not None or s.event.process == new.event.process)
        for s in signals
    )


def _rank(signal: Signal) -> int:
    """Evidence strength without the catalog: encrypted or outside beats plain or internal."""
    dst = signal.destination
    outside = dst is not None and not dst.internal
    return 8 * signal.encrypted + 4 * outside + 2 * (signal.kind is SignalKind.UPLOAD)
