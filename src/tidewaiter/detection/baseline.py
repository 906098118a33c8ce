"""Baselines per workload: what a workload normally runs, where it talks, how much it sends.

Containers are ephemeral, so profiles are keyed by the workload (image repository and digest,
Kubernetes namespace and owner). A profile learns in 10-minute windows; a window in which a
finding above low fired for that container is not learned, so an attack does not teach its own
normality. Counts decay with a half-life so the profile follows slow change. A profile is
trusted only after a minimum history; before that the static rules stand alone.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Iterator

import msgspec

from tidewaiter.detection import cmdline
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.correlate import ARCHIVING, Entity
from tidewaiter.detection.signals import Destination, Signal, SignalKind
from tidewaiter.events import Activity, Event, Kind
from tidewaiter.identity import workload_key

WINDOW = 600.0  # seconds: the unit of "bytes out per window"
ROUTINE = -9  # a score change that means "this workload's routine": informational
ROUTINE_DAYS = 2  # earlier days a finding must repeat before it is a routine
ROUTINE_MEMORY = 32  # occurrences kept per routine key
DAY = 86_400.0


class BaselineConfig(msgspec.Struct, frozen=True):
    half_life_days: float = 14.0
    min_days: float = 1.0  # history needed before a profile is trusted
    min_windows: int = 12  # active windows needed before volume judgements are made
    max_keys: int = 2_000  # executables, shapes or destinations kept per profile
    max_windows: int = 4_032  # 28 days of 10-minute windows
    spike_factor: float = 10.0  # an egress window this many times the p99 is unusual
    spike_floor: int = 1 << 20  # and at least this many bytes


class Profile(msgspec.Struct):
    workload: str
    first_seen: float
    last_seen: float
    decayed_at: float
    events: float = 0.0
    executables: dict[str, float] = msgspec.field(default_factory=dict)
    archive_shapes: dict[str, float] = msgspec.field(default_factory=dict)
    destinations: dict[str, float] = msgspec.field(default_factory=dict)  # "ip:port"
    prefixes: dict[str, float] = msgspec.field(default_factory=dict)  # "/24 or /64:port"
    window_bytes: list[int] = msgspec.field(default_factory=list)  # external bytes per window
    # Findings above low that recurred, by routine key (archive shape to destinations): when
    # they fired and how many bytes left. Learned windows leave out what alerted, so a workload
    # whose routine alerts (an export worker's upload to the company bucket) learns it here.
    routines: dict[str, list[tuple[float, int]]] = msgspec.field(default_factory=dict)

    @property
    def days(self) -> float:
        return (self.last_seen - self.first_seen) / DAY

    def trusted(self, config: BaselineConfig) -> bool:
        return self.days >= config.min_days

    def volume_known(self, config: BaselineConfig) -> bool:
        return self.trusted(config) and len(self.window_bytes) >= config.min_windows

    def p99(self) -> float:
        return _quantile(self.window_bytes, 0.99)

    def median_mad(self) -> tuple[float, float]:
        """Median and median absolute deviation of log10 bytes per active window."""
        logs = sorted(math.log10(b + 1) for b in self.window_bytes)
        median = _quantile(logs, 0.5)
        return median, _quantile(sorted(abs(x - median) for x in logs), 0.5)


class _Window(msgspec.Struct):
    """What one container did in the current 10-minute window, not yet learned."""

    entity: Entity
    start: float
    executables: dict[str, int] = msgspec.field(default_factory=dict)
    archive_shapes: dict[str, int] = msgspec.field(default_factory=dict)
    destinations: dict[str, int] = msgspec.field(default_factory=dict)
    external_bytes: int = 0
    events: int = 0
    flagged: bool = False
    egress: list[Signal] = msgspec.field(default_factory=list)  # a few, as evidence of a spike


class Baselines:
    """Profiles by workload, plus the open window of each container being watched."""

    def __init__(
        self,
        config: BaselineConfig | None = None,
        learn: bool = False,
        hold: float = 1020.0,
        exclude_flagged: bool = True,
    ) -> None:
        self.config = config or BaselineConfig()
        self.learn = learn
        # Continuous learning (`detect --learn`) must not learn what alerted; explicit learning
        # (`baseline learn`) is over a period the user vouches for, and reports what alerted.
        self.exclude_flagged = exclude_flagged
        self.flagged_windows = 0
        # A closed window waits this long (the correlation window and its settle time) before it
        # is learned, so a finding that fires late can still keep its attack out of the profile.
        self.hold = hold
        self._pending: deque[_Window] = deque()
        self.profiles: dict[str, Profile] = {}
        self.changed: set[str] = set()
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.closed_windows: list[_Window] = []  # windows with external egress, to judge

    # --- observing -------------------------------------------------------------------------

    def observe(self, event: Event, entity: Entity, signals: list[Signal]) -> None:
        """Account one event of a container to its open window."""
        if entity.container is None:
            return
        window = self._window(entity, event.time)
        window.events += 1
        if event.kind is Kind.PROCESS and event.activity is Activity.LAUNCH and event.process:
            name = cmdline.exe_name(event.process.path)
            window.executables[name] = window.executables.get(name, 0) + 1
        for signal in signals:
            if signal.kind in ARCHIVING and signal.event.process is not None:
                shape = archive_shape(signal)
                window.archive_shapes[shape] = window.archive_shapes.get(shape, 0) + 1
            elif signal.kind is SignalKind.UPLOAD and signal.destination is not None:
                # A URL's host (no address, no port) is learned under its name, the key the
                # same upload is judged by on a later night (its connection's address changes).
                for key in destination_keys(signal.destination):
                    window.destinations[key] = window.destinations.get(key, 0) + 1
            elif signal.kind is SignalKind.EGRESS and signal.destination is not None:
                if signal.destination.internal:
                    continue  # the shared range, internal by choice: not egress volume
                key = destination_key(signal.destination.ip, signal.destination.port)
                window.destinations[key] = window.destinations.get(key, 0) + 1
                window.external_bytes += signal.bytes_out or 0
                if len(window.egress) < 8:
                    window.egress.append(signal)

    def flag(self, entity: Entity) -> None:
        """A finding above low fired for this container: its recent windows are not learned."""
        window = self._windows.get(entity.key)
        if window is not None:
            window.flagged = True
        for pending in self._pending:
            if pending.entity.key == entity.key:
                pending.flagged = True

    def _window(self, entity: Entity, time: float) -> _Window:
        window = self._windows.get(entity.key)
        if window is not None and time - window.start >= WINDOW:
            self._close(self._windows.pop(entity.key))
            window = None
        if window is None:
            window = _Window(entity=entity, start=time - (time % WINDOW))
            self._windows[entity.key] = window
            while len(self._windows) > 100_000:
                self._close(self._windows.popitem(last=False)[1])
        self._windows.move_to_end(entity.key)
        return window

    def advance(self, now: float) -> None:
        """Close the windows that ended before now (event time); learn those held long enough."""
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.start < 2 * WINDOW:
                break
            del self._windows[key]
            self._close(window)
        while self._pending and (
            self._pending[0].start + WINDOW + self.hold <= now or len(self._pending) > 100_000
        ):
            self._learn_window(self._pending.popleft())

    def flush(self) -> None:
        """End of input: close every window and learn every one not flagged."""
        for window in self._windows.values():
            self._close(window)
        self._windows.clear()
        while self._pending:
            self._learn_window(self._pending.popleft())

    def _close(self, window: _Window) -> None:
        if window.external_bytes and len(self.closed_windows) < 10_000:
            self.closed_windows.append(window)
        if self.learn and window.entity.container is not None:
            self._pending.append(window)

    def _learn_window(self, window: _Window) -> None:
        if window.flagged:
            self.flagged_windows += 1
            if self.exclude_flagged:
                return
        if window.entity.container is not None:
            self._learn(workload_key(window.entity.container), window)

    def _learn(self, workload: str, window: _Window) -> None:
        end = window.start + WINDOW
        profile = self.profiles.get(workload)
        if profile is None:
            profile = Profile(workload, window.start, end, window.start)
            self.profiles[workload] = profile
        self._decay(profile, window.start)
        profile.first_seen = min(profile.first_seen, window.start)
        profile.last_seen = max(profile.last_seen, end)
        profile.events += window.events
        _add(profile.executables, window.executables, self.config.max_keys)
        _add(profile.archive_shapes, window.archive_shapes, self.config.max_keys)
        _add(profile.destinations, window.destinations, self.config.max_keys)
        prefixes: dict[str, int] = {}
        for key, count in window.destinations.items():
            prefixes[prefix_key(key)] = prefixes.get(prefix_key(key), 0) + count
        _add(profile.prefixes, prefixes, self.config.max_keys)
        if window.external_bytes:
            profile.window_bytes.append(window.external_bytes)
            del profile.window_bytes[: -self.config.max_windows]
        self.changed.add(workload)

    def _decay(self, profile: Profile, now: float) -> None:
        elapsed = now - profile.decayed_at
        if elapsed <= 0:
            return
        factor = 0.5 ** (elapsed / (self.config.half_life_days * DAY))
        for table in (
            profile.executables,
            profile.archive_shapes,
            profile.destinations,
            profile.prefixes,
        ):
            for key in list(table):
                table[key] *= factor
                if table[key] < 0.01:
                    del table[key]
        profile.events *= factor
        profile.decayed_at = now

    # --- judging -------------------------------------------------------------------------

    def profile_for(self, entity: Entity) -> Profile | None:
        if entity.container is None:
            return None
        return self.profiles.get(workload_key(entity.container))

    def remember(self, finding: Finding) -> None:
        """A finding above low was delivered while learning: keep its routine key, so the same
        archive to the same destinations on later days is recognised as this workload's own."""
        if not self.learn or finding.entity.container is None:
            return
        key = routine_key(finding.evidence)
        if key is None:
            return
        workload = workload_key(finding.entity.container)
        profile = self.profiles.get(workload)
        if profile is None:
            first = finding.evidence[0].event.time
            profile = self.profiles[workload] = Profile(workload, first, first, first)
        seen = profile.routines.setdefault(key, [])
        seen.append((finding.time, _sent(finding.evidence)))
        del seen[:-ROUTINE_MEMORY]
        if len(profile.routines) > self.config.max_keys:
            del profile.routines[next(iter(profile.routines))]
        self.changed.add(workload)

    def score(self, finding: Finding) -> Finding:
        """The finding with what the baseline says of each signal, and severity moved by it."""
        profile = self.profile_for(finding.entity)
        if profile is None:
            return finding
        recurring, routine = _recurring(profile, finding, self.config)
        notes: list[str] = []
        change = 0
        if profile.trusted(self.config):
            notes, change = _judge_signals(profile, finding.evidence, self.config)
        if recurring is not None:
            # The routine's own history judges it: informational, or far above it and not
            # lowered at all (whatever the thinner window history says).
            return msgspec.structs.replace(
                finding,
                severity_id=1
                if routine
                else max(finding.severity_id, finding.severity_id + change),
                risk_score=10 if routine else finding.risk_score,
                reasons=(*finding.reasons, *notes, recurring),
            )
        if not notes:
            return finding
        severity = min(5, max(1, finding.severity_id + change))
        if change <= ROUTINE:
            severity = 1  # the workload does exactly this, to where it always does, as much
        return msgspec.structs.replace(
            finding,
            severity_id=severity,
            risk_score=min(100, max(0, finding.risk_score + 10 * change)),
            reasons=(*finding.reasons, *notes),
        )

    def spikes(self) -> Iterator[tuple[Entity, list[Signal], str]]:
        """Closed windows whose egress volume is far above the workload's usual."""
        closed, self.closed_windows = self.closed_windows, []
        for window in closed:
            entity, sent = window.entity, window.external_bytes
            profile = self.profile_for(entity)
            if profile is None or not profile.volume_known(self.config):
                continue
            p99 = profile.p99()
            if sent >= max(self.config.spike_factor * p99, self.config.spike_floor):
                note = (
                    f"{_size(sent)} left in 10 minutes, {sent / max(p99, 1):.0f}x the p99 of "
                    f"{profile.workload}'s egress per window ({_size(int(p99))}) over "
                    f"{profile.days:.0f} days of history"
                )
                yield entity, window.egress, note


def _judge_signals(
    profile: Profile, evidence: tuple[Signal, ...], config: BaselineConfig
) -> tuple[list[str], int]:
    notes: list[str] = []
    change = 0
    history = f"{profile.days:.0f} days of history"
    routine_archiver = False
    for signal in evidence:
        if signal.kind in ARCHIVING and signal.event.process is not None:
            shape = archive_shape(signal)
            seen = profile.archive_shapes.get(shape, 0.0)
            tool = shape.split(" ", 1)[0]
            if seen >= 1:
                notes.append(
                    f"{tool} runs like this routinely in {profile.workload} "
                    f"({seen:.0f} times in {history})"
                )
                routine_archiver = True
            elif profile.executables.get(tool, 0.0) >= 1:
                notes.append(f"{tool} runs in {profile.workload}, but never with these arguments")
            else:
                notes.append(f"{tool} has never run in {profile.workload} in {history}")
                change += 1
            break
    sent = _sent(evidence)
    new_destination = _judge_destinations(profile, evidence, notes)
    if sent and profile.volume_known(config):
        p99 = profile.p99()
        ratio = sent / max(p99, 1.0)
        notes.append(
            f"{_size(sent)} to the outside, {ratio:.0f}x the p99 of this workload's egress per "
            f"10-minute window ({_size(int(p99))})"
        )
        if ratio >= config.spike_factor:
            change += 1
    elif sent and not profile.volume_known(config):
        notes.append("too little egress history to judge the volume")
    if new_destination:
        change += 1
    if routine_archiver and not new_destination and change == 0:
        # The workload does exactly this, to where it always does: informational when the
        # volume is known to be usual too, else two levels down.
        change = ROUTINE if profile.volume_known(config) or not sent else -2
    return notes, change


def _sent(evidence: tuple[Signal, ...]) -> int:
    return sum(s.bytes_out or 0 for s in evidence if s.kind is SignalKind.EGRESS)


def routine_key(evidence: tuple[Signal, ...]) -> str | None:
    """An archive's shape and where it went (host names, else networks): the same every day
    for a routine, whatever the pod, the file's date or the store's current address."""
    shape = next(
        (archive_shape(s) for s in evidence if s.kind in ARCHIVING and s.event.process), None
    )
    named_pids = {
        s.event.process.pid
        for s in evidence
        if s.kind is SignalKind.UPLOAD and s.event.process and s.destination and s.destination.host
    }
    places: set[str] = set()
    for signal in evidence:
        dst = signal.destination
        if signal.kind not in (SignalKind.EGRESS, SignalKind.UPLOAD) or dst is None or dst.internal:
            continue
        process = signal.event.process
        if signal.kind is SignalKind.EGRESS and process is not None and process.pid in named_pids:
            continue  # the named upload's own connection: its name is the key
        keys = destination_keys(dst)
        places.add(keys[-1] if dst.host else prefix_key(keys[0]) if keys else "?")
    if shape is None or not places:
        return None
    return f"{shape} to {' '.join(sorted(places))}"


def _recurring(
    profile: Profile, finding: Finding, config: BaselineConfig
) -> tuple[str | None, bool]:
    """What the findings it repeats say of this one, and whether it is the routine: the same
    routine key on at least ROUTINE_DAYS earlier days, and no more than spike_factor times the
    most that left on any of them. (None, False) when it repeats nothing."""
    key = routine_key(finding.evidence)
    seen = profile.routines.get(key or "", [])
    earlier = [(t, b) for t, b in seen if t <= finding.time - 0.8 * DAY]
    days = {int(t // DAY) for t, _ in earlier}
    if len(days) < ROUTINE_DAYS:
        return None, False
    sent, most = _sent(finding.evidence), max(b for _, b in earlier)
    same = f"the same archive to the same destinations as findings on {len(days)} earlier days"
    if sent > max(config.spike_factor * most, config.spike_floor):
        ratio = sent / max(most, 1)
        return f"{same}, but {_size(sent)} left, {ratio:.0f}x the most they sent", False
    return f"{same} (delivered then; {_size(most)} at most): a routine of {profile.workload}", True


def _judge_destinations(profile: Profile, evidence: tuple[Signal, ...], notes: list[str]) -> bool:
    """Note whether each destination out is usual for the workload; True when one is new."""
    new_destination = False
    usual: list[str] = []
    known_uploaders: set[int | None] = set()
    for signal in sorted(evidence, key=lambda s: s.kind is not SignalKind.UPLOAD):
        dst = signal.destination
        if signal.kind not in (SignalKind.EGRESS, SignalKind.UPLOAD) or dst is None or dst.internal:
            continue
        pid = signal.event.process.pid if signal.event.process else None
        keys = destination_keys(dst)
        if not keys:
            continue
        if any(k in profile.destinations or prefix_key(k) in profile.prefixes for k in keys):
            usual.append(dst.label())
            if signal.kind is SignalKind.UPLOAD:
                known_uploaders.add(pid)
        elif signal.kind is SignalKind.EGRESS and pid is not None and pid in known_uploaders:
            usual.append(dst.label())  # a usual upload's own connection (the store moved)
        elif not new_destination:
            notes.append(f"destination {dst.label()} never seen from {profile.workload}")
            new_destination = True
    if usual and not new_destination:
        notes.append(f"destination {usual[0]} is usual for {profile.workload}")
    return new_destination


def archive_shape(signal: Signal) -> str:
    """An archiver's command reduced to its shape: the tool, its options, and the kinds of
    its other arguments, so `tar czf /backup/2026-11-27.tgz /data` is the same every night."""
    process = signal.event.process
    argv = cmdline.split_command(process.cmd_line or "", process.path) if process else []
    if not argv:
        return signal.tool
    parts = [signal.tool]
    for arg in argv[1:12]:
        if arg.startswith("-"):
            parts.append(arg.split("=", 1)[0])
        elif "/" in arg or "\\" in arg or "." in arg:
            parts.append("<path>")
        elif arg.isalpha() and len(arg) <= 8:
            parts.append(arg)  # a subcommand or a bundled option cluster: `7z a`, `tar czf`
        else:
            parts.append("<word>")
    return " ".join(parts)


def destination_key(ip: str | None, port: int | None) -> str:
    return f"{ip} port {port}"


def destination_keys(dst: Destination) -> list[str]:
    """The keys a destination is learned and judged by: its address and port, and the host
    name (or bucket) an upload's command line gave, so both forms of one store match."""
    keys = [destination_key(dst.ip, dst.port)] if dst.ip else []
    if dst.host and dst.host != dst.ip:
        keys.append(f"name {dst.host.lower().rstrip('.')}")
    return keys


def prefix_key(key: str) -> str:
    """`203.0.113.9 port 443` → `203.0.113.0/24 port 443`; IPv6 keeps its /64."""
    address, _, port = key.partition(" port ")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return key
    bits = 24 if parsed.version == 4 else 64
    return f"{ipaddress.ip_network(f'{address}/{bits}', strict=False)} port {port}"


def _add(table: dict[str, float], counts: dict[str, int], limit: int) -> None:
    for key, count in counts.items():
        table[key] = table.get(key, 0.0) + count
    if len(table) > limit:
        for key in sorted(table, key=table.__getitem__)[: len(table) - limit]:
            del table[key]


def _quantile(values: list[float] | list[int], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def encode(profile: Profile) -> bytes:
    return msgspec.msgpack.encode(profile)


def decode(data: bytes) -> Profile:
    return msgspec.msgpack.decode(data, type=Profile)
