"""The detection pipeline: Event → identity → signals → correlation → findings.

The same ``Engine`` serves a test over a list, ``tidewaiter detect`` over files and (later) a live
stream: feed it events in time order with ``process`` and call ``flush`` at the end. Findings are
handed to the ``on_finding`` callback as they are decided, so nothing waits for the whole input.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.analytics import Finding, egress_spike, evidence_rank, judge
from tidewaiter.detection.baseline import WINDOW, Baselines
from tidewaiter.detection.catalog import Catalog, load
from tidewaiter.detection.cmdline import exe_name
from tidewaiter.detection.correlate import Case, CorrelationConfig, Correlator, Entity, Episode
from tidewaiter.detection.signals import Detector, Signal
from tidewaiter.detection.suppress import Suppression, Suppressor
from tidewaiter.detection.ties import Ties
from tidewaiter.events import Event, Kind
from tidewaiter.identity import MIN_PREFIX, POD_PREFIX, Identities
from tidewaiter.sources.base import ReadReport, location

OnError = Callable[[Event, Exception], None]

MAX_DECIDED = 65_536  # findings whose last delivered state is remembered, for updates
MAX_ENTITIES = 4096  # entities of recent containers kept to reuse (Engine._entity)


class RuleSignals(Protocol):
    """Signals from rules beyond the catalog (users' Sigma rules, `--sigma`)."""

    def signals(self, event: Event, policy: AddressPolicy) -> list[Signal]: ...


class EngineConfig(msgspec.Struct, frozen=True):
    correlation: CorrelationConfig = CorrelationConfig()
    internal_cidrs: tuple[str, ...] = ()
    external_cidrs: tuple[str, ...] = ()
    shared_internal: bool = True  # 100.64.0.0/10 (CGNAT, some pod networks, overlay VPNs)
    min_severity: int = 1
    suppressions: tuple[Suppression, ...] = ()
    allowed_destinations: tuple[str, ...] = ()  # hosts uploads may go to (registries, stores)
    host_addresses: tuple[tuple[str, str], ...] = ()  # (host name, address): joins flow logs
    assume_host: str | None = None  # the host of records that name none (an eslogger export)
    rules: tuple[RuleSignals, ...] = ()  # users' rules, run beside the catalog's indicators
    max_ahead: float = 3600.0  # seconds past the wall clock a record's time may be; beyond, the
    # time is clamped and the record counted (a record dated 2099 must not end every episode)


class AddressBook:
    """Which container (or host) held an address lately, so network-only sources (Zeek, flow
    logs) land on what sent the traffic. Bounded, most recent owner wins."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._owners: OrderedDict[str, Entity] = OrderedDict()
        self._held: dict[str, set[str]] = {}  # entity key -> its addresses, to forget them
        self._capacity = capacity

    def learn(self, event: Event, entity: Entity) -> None:
        src = event.src_endpoint
        if src is None or src.ip is None or (entity.container is None and entity.host is None):
            return
        ip = src.ip
        previous = self._owners.get(ip)
        self._owners[ip] = entity
        self._owners.move_to_end(ip)
        if previous is None or previous.key != entity.key:
            if previous is not None:
                self._release(previous.key, ip)
            self._held.setdefault(entity.key, set()).add(ip)
        # else the same owner again (every record of a connection): every address owned is in
        # its owner's held set already
        if len(self._owners) > self._capacity:
            ip, oldest = self._owners.popitem(last=False)
            self._release(oldest.key, ip)

    def declare(self, ip: str, entity: Entity) -> None:
        """An address the user says belongs to a host (a Mac whose eslogger has no network)."""
        self._owners[ip] = entity
        self._held.setdefault(entity.key, set()).add(ip)

    def owner(self, event: Event) -> Entity | None:
        src = event.src_endpoint
        return self._owners.get(src.ip) if src is not None and src.ip is not None else None

    def forget(self, key: str) -> None:
        for ip in self._held.pop(key, ()):
            self._owners.pop(ip, None)

    def _release(self, key: str, ip: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.discard(ip)
            if not held:
                del self._held[key]

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(list(self._owners.items()))

    def restore(self, data: bytes) -> None:
        self._owners = OrderedDict(msgspec.msgpack.decode(data, type=list[tuple[str, Entity]]))
        self._held = {}
        for ip, entity in self._owners.items():
            self._held.setdefault(entity.key, set()).add(ip)


class Engine:
    def __init__(
        self,
        on_finding: Callable[[Finding], None],
        config: EngineConfig | None = None,
        catalog: Catalog | None = None,
        on_suppressed: Callable[[Finding], None] | None = None,
        baselines: Baselines | None = None,
        wall_clock: Callable[[], float] = time.time,
        on_error: OnError | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self._on_error = on_error
        self.catalog = catalog or load()
        policy = AddressPolicy(
            self.config.internal_cidrs,
            self.config.external_cidrs,
            shared_internal=self.config.shared_internal,
        )
        self.policy = policy
        self.detector = Detector(policy, self.catalog)
        self.identities = Identities()
        self.addresses = AddressBook()
        for name, address in self.config.host_addresses:
            self.addresses.declare(address, Entity(f"host:{name.lower()}", name))
        self.correlator = Correlator(
            self.config.correlation, self._decide, lambda s: evidence_rank(s, self.catalog)
        )
        self.suppressor = Suppressor(self.config.suppressions, self.config.allowed_destinations)
        self.baselines = baselines
        self.ties = Ties()
        self._entities: dict[int, Entity] = {}  # id of a resolved container -> its entity
        self._decided: OrderedDict[str, object] = OrderedDict()  # finding uid -> signature
        self._shells = self.catalog.posix_shells | self.catalog.cmd_shells
        self._on_finding = on_finding
        self._on_suppressed = on_suppressed
        self.suppressed = 0
        self._baseline_tick = 0.0
        self._recent_tools: OrderedDict[str, dict[str, float]] = OrderedDict()
        self.events = 0
        self.signals = 0
        self.suppressed_below_min = 0
        self._wall_clock = wall_clock
        self.ahead = 0  # records dated past the wall clock, their time clamped
        self.ahead_examples: list[str] = []

    def process(self, event: Event) -> None:
        """Analyse one event. With ``on_error``, a failure on this record (a parser bug met by
        attacker-chosen text) is handed to it and the run goes on; without, it is raised."""
        if self._on_error is None:
            self._process(event)
            return
        try:
            self._process(event)
        except Exception as exc:
            self._on_error(event, exc)

    def _process(self, event: Event) -> None:
        self.events += 1
        if self.config.assume_host and event.host is None and event.container is None:
            event = self._assumed_host(event, self.config.assume_host)
        ceiling = self.time_ceiling()
        if not event.time <= ceiling:  # also NaN
            event = self._clamped(event, ceiling)
        self.correlator.advance(event.time, (event.host or "").lower())
        signals = self.detector.signals(event)
        for rules in self.config.rules:
            signals = [*signals, *rules.signals(event, self.detector.policy)]
        entity = None
        kind = event.kind
        if kind is Kind.NETWORK:
            entity = self._entity(event)
            self.addresses.learn(event, entity)
        elif kind is Kind.PROCESS and event.process is not None:
            self._note_tool(event)
        if event.process is not None and (entity is not None or kind is Kind.PROCESS):
            entity = entity or self._entity(event)
            self.ties.observe(event, entity.key)
        elif entity is None and event.container is not None and not signals:
            # Every record teaches identity (a full id, an image, a pod) even when it raises
            # nothing, so a later alert from a source with a short id names the container.
            # (Where an entity was made above, its container was resolved already.)
            self.identities.resolve(event.container)
        if self.baselines is not None:
            self._baseline(event, entity or self._entity(event), signals)
        if not signals:
            return
        entity = entity or self._entity(event)
        self.signals += len(signals)
        for signal in signals:
            self.correlator.on_signal(signal, entity)

    def _clamped(self, event: Event, ceiling: float) -> Event:
        """A record dated past the wall clock: counted, with an example, and given the latest
        time believable, so it neither ends other episodes nor poisons a checkpoint."""
        self.ahead += 1
        if len(self.ahead_examples) < 5:
            when = event.time
            stated = (
                f"{datetime.fromtimestamp(when, UTC):%Y-%m-%dT%H:%M:%SZ}"
                if 0 <= when <= 253_402_300_799  # the last second of year 9999; NaN is neither
                else repr(when)
            )
            self.ahead_examples.append(f"{event.raw.label()}: dated {stated}")
        return msgspec.structs.replace(event, time=ceiling)

    def time_ceiling(self) -> float:
        return self._wall_clock() + self.config.max_ahead

    def flush(self) -> None:
        self.correlator.flush()
        if self.baselines is not None:
            self.baselines.flush()
            self._spikes(self.baselines)

    def pass_by(self, time: float, host: str) -> None:
        """An event of the same input that another Engine analyses (a shard of `detect --jobs`,
        a Spark partition): its host's clock moves here as it would in one process, and the
        baselines' windows close by its time. ``time`` is already clamped, ``host`` lower-cased."""
        self.correlator.advance(time, host)
        baselines = self.baselines
        if baselines is not None and time - self._baseline_tick >= WINDOW / 10:
            self._baseline_tick = time
            baselines.advance(time)
            self._spikes(baselines)

    def _baseline(self, event: Event, entity: Entity, signals: list[Signal]) -> None:
        baselines = self.baselines
        if baselines is None:
            return
        baselines.observe(event, entity, signals)
        if event.time - self._baseline_tick >= WINDOW / 10:  # windows close at most this often
            self._baseline_tick = event.time
            baselines.advance(event.time)
            self._spikes(baselines)

    def _spikes(self, baselines: Baselines) -> None:
        for entity, egress, note in baselines.spikes():
            if egress:
                self._deliver(egress_spike(entity, egress, note, self.catalog))

    def forget(self, container_uid: str) -> None:
        """Release a container that exited or went idle (any prefix of its id): its identity,
        facts and addresses go; an open episode is decided now rather than lost."""
        if container_uid.startswith(POD_PREFIX):
            key = f"container:{container_uid}"
        else:
            key = f"container:{self.identities.canonical_id(container_uid)[:MIN_PREFIX]}"
        self.correlator.forget(key)
        self.addresses.forget(key)
        self.ties.forget(key)
        self.identities.forget(container_uid)

    def _entity(self, event: Event) -> Entity:
        if event.container is not None:
            container = self.identities.resolve(event.container)
            if self.identities.named_pods:
                self._adopt_pods()
            # The entity of the last record from this (resolved) container and host, when this
            # one is the same: every record of a container would otherwise build it anew.
            made = self._entities.get(id(container))
            if made is not None and made.container is container and made.host == event.host:
                return made
            if container.uid.startswith(POD_PREFIX):  # a pod no runtime record has named yet
                made = Entity(f"container:{container.uid}", event.host, container)
            else:
                made = Entity(f"container:{container.uid[:MIN_PREFIX]}", event.host, container)
            if len(self._entities) >= MAX_ENTITIES:
                self._entities.clear()
            self._entities[id(container)] = made  # made holds container: its id stays its own
            return made
        owner = self.addresses.owner(event) if event.kind is Kind.NETWORK else None
        if owner is not None:
            return owner
        host = (event.host or "unknown host").lower()
        return Entity(f"host:{host}", event.host)

    @staticmethod
    def _assumed_host(event: Event, host: str) -> Event:
        """A record of a single-host export that names no host (eslogger) gets the assumed one;
        a bare flow (Zeek) does not: it belongs to whoever held its address."""
        if event.kind is Kind.NETWORK and event.process is None:
            return event
        return msgspec.structs.replace(event, host=host)

    def _note_tool(self, event: Event) -> None:
        """Remember that a tool a benign profile names ran here (a backup script's etcdctl
        before its gzip), so the profile can cover an archive its child did not make."""
        name = exe_name(event.process.path if event.process else None)
        if name not in self.suppressor.context_tools:
            return
        key = self._entity(event).key
        seen = self._recent_tools.setdefault(key, {})
        seen[name] = event.time
        self._recent_tools.move_to_end(key)
        if len(self._recent_tools) > 65_536:
            self._recent_tools.popitem(last=False)

    def _recent(self, finding: Finding) -> frozenset[str]:
        seen = self._recent_tools.get(finding.entity.key, {})
        start = finding.evidence[0].event.time - self.config.correlation.window
        return frozenset(name for name, time in seen.items() if time >= start)

    def _adopt_pods(self) -> None:
        """A runtime record has named a pod's container: what was learned about the pod under
        its synthetic id (a hostPath mount from the audit log) moves to the real container."""
        for synthetic, full in self.identities.named_pods:
            real = f"container:{full[:MIN_PREFIX]}"
            self.correlator.rekey(f"container:{synthetic}", real)
            pod_only = synthetic.rsplit("/", 1)[0] + "/"
            self.correlator.rekey(f"container:{pod_only}", real)
        self.identities.named_pods.clear()

    def _decide(self, case: Case) -> None:
        if self._on_error is None:
            self._judge(case)
            return
        try:
            self._judge(case)
        except Exception as exc:  # one episode's failure must not lose the others
            self._on_error(case.signals[0].event, exc)

    def _judge(self, case: Case) -> None:
        original = case.episode  # the correlator's own, which keeps the uid for updates
        if case.episode is not None:
            # Only transfers tied to the archive carry it; the rest is context (ties.py).
            episode = self.ties.split(
                case.episode,
                self.config.correlation.skew,
                not case.entity.is_container,
                self.policy.host_internal,
            )
            case = msgspec.structs.replace(case, episode=episode)
        judged = judge(case, self.catalog, self.identities.registries())
        if judged is None:
            return
        if original is not None and not original.uid:
            original.uid = judged.uid  # its updates keep this uid, whatever they become
        if case.episode is not None:
            judged = self._plan_only(case.episode, judged)
            if not self._changed(judged):
                return  # late traffic that changed nothing the finding says
        self._deliver(judged, score=True)

    def _changed(self, finding: Finding) -> bool:
        """Whether a finding says something new: always when first decided; an update only
        when its severity, analytic or tied evidence (kinds, destinations, bytes) moved."""
        signature = (
            finding.severity_id,
            finding.analytic.uid,
            tuple(
                (s.kind, s.destination.label() if s.destination else "", s.bytes_out or 0)
                for s in finding.evidence
            ),
        )
        before = self._decided.get(finding.uid)
        self._decided[finding.uid] = signature
        self._decided.move_to_end(finding.uid)
        if len(self._decided) > MAX_DECIDED:
            self._decided.popitem(last=False)
        return finding.revision == 0 or before != signature

    def _plan_only(self, episode: Episode, finding: Finding) -> Finding:
        """A shell line that names an archiver is a plan; where the source records every
        process start and the archiver never started, it is at most low."""
        planned = self.ties.unstarted(episode, self._shells, self.config.correlation.skew)
        if not planned:
            return finding
        note = (
            f"attempted; the archiver did not start: {planned[0]} was named in a shell line, but "
            "this source records every process start and none of it followed"
        )
        return msgspec.structs.replace(
            finding,
            severity_id=min(finding.severity_id, 2),
            risk_score=min(finding.risk_score, 30),
            reasons=(*finding.reasons, note),
        )

    def _deliver(self, judged: Finding, score: bool = False) -> None:
        verdict = self.suppressor.judge(judged, self._recent(judged))
        finding = verdict.finding
        if score and self.baselines is not None and verdict.suppressed_by is None:
            # After the profiles: a backup job lowered to low by its identity still rises for a
            # destination its workload never used, and falls to informational for its routine.
            finding = self.baselines.score(finding)
        if self.baselines is not None and finding.severity_id > 2:
            self.baselines.flag(finding.entity)
            if verdict.suppressed_by is None and finding.revision == 0:
                self.baselines.remember(finding)
        if verdict.suppressed_by is not None:
            self.suppressed += 1
            if self._on_suppressed is not None:
                self._on_suppressed(
                    msgspec.structs.replace(finding, suppressed_by=verdict.suppressed_by)
                )
            return
        if finding.severity_id < self.config.min_severity:
            self.suppressed_below_min += 1
            return
        self._on_finding(finding)


def unanalysable(report: ReadReport) -> OnError:
    """An ``on_error`` that counts the record, with its file and line, as one that could not
    be analysed: every command reports such a record the same way and carries on."""

    def skip(event: Event, exc: Exception) -> None:
        reason = f"could not be analysed: {type(exc).__name__}"
        report.skip(event.raw.path, location(event.raw), reason, str(exc)[:160])

    return skip


def merge_by_time(streams: Iterable[Iterator[Event]]) -> Iterator[Event]:
    """One time-ordered stream from several roughly time-ordered ones (one per input file), so a
    Tetragon exec and a Zeek connection from two files meet in the right order."""
    return heapq.merge(*streams, key=lambda e: e.time)
