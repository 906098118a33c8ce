"""`detect --jobs N`: the same findings as one Engine, from N processes.

Correlation is per entity (a container, or a host), so the work shards by entity. Decoding is
most of the cost and a decoded event costs nearly as much to move between processes as to
decode, so each event is decoded once, by one worker, and moved at most once:

1. Decode: the input is cut into parts: whole files, spread over the workers, and for a big
   file of a format that can route a raw line (``Source.route_hint``: Tetragon's container id),
   one part per worker, each reading every line but decoding only those routed to it. Each
   worker keys every event that can be keyed alone (a container: its id; a host: its name), and
   sends a digest of what needs the whole input: times, network sources, pods, image registries,
   commits and pushes.
2. Plan: the parent replays the digests in the order one process would see the events (the same
   merge by time) and joins what only the whole input can join: a network-only flow (Zeek, flow
   logs) to whoever held its source address at that moment; a pod known only by an audit log to
   the runtime containers of that pod; every entity that commits or pushes into one group (a
   push is judged with the last commit on its host). Each group goes to the worker that already
   holds most of its events, unless that one is full; then to the least loaded.
3. Shuffle and detect: each worker keeps its own entities' events, sends the others to their
   workers, and runs an ordinary Engine over what it holds, in the original order. Every other
   event of the input still moves its host's clock there (episodes close by their host's clock
   and the clocks' quorum), and registries of images seen anywhere (which `judge` consults)
   are noted where one process would have first seen them.

Alerts come back to the parent, which delivers them in time order.
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from time import process_time
from typing import Any, BinaryIO, cast

import msgspec

from tidewaiter.alerts import to_ocsf
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.analytics import Finding
from tidewaiter.detection.baseline import Baselines
from tidewaiter.detection.baseline import encode as encode_profile
from tidewaiter.detection.signals import Detector, SignalKind
from tidewaiter.events import Event, Kind
from tidewaiter.identity import POD_PREFIX, registry_of, workload_key
from tidewaiter.pipeline import Engine, EngineConfig, unanalysable
from tidewaiter.run import Outcome, expired_suppressions, workload_of
from tidewaiter.sinks import Sink
from tidewaiter.sources import SNIFF_BYTES, ReadReport, UnknownFormat, forced, open_events, sniff
from tidewaiter.sources.base import MAX_EXAMPLES, Source, read_lines
from tidewaiter.sources.opening import expand

PLATFORM = "platform:commits and pushes"
_PLATFORM_WORDS = re.compile(r"commit|push")
_MIN_PART = 4 << 20  # smaller files are not worth splitting
_SHIPPED = msgspec.msgpack.Decoder(tuple[list[int], list[Event]])


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's limit, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Part:
    """A whole file (``route`` None) or the lines of one routed to one worker."""

    number: int
    file: int  # index in the input paths: the merge order
    path: str
    fmt: str | None
    worker: int
    route: int | None = None
    routes: int = 1
    listed: bool = False  # found in a folder or by a glob: not in any format is no error


@dataclass
class Digest:
    """What the plan needs from one part's events, in the part's order."""

    times: list[float] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # each event's clock: its host, lower-cased
    lines: list[int] = field(default_factory=list)  # each event's record: its order in the file
    keys: list[str | None] = field(default_factory=list)  # None: a flow that needs its owner
    # (index, source address, the key it teaches or None, the host key if no one owns it,
    # whether that host key may own the address)
    network: list[tuple[int, str | None, str | None, str, bool]] = field(default_factory=list)
    pods: set[tuple[str, str, str]] = field(default_factory=set)  # (key, namespace, pod)
    registries: dict[str, int] = field(default_factory=dict)  # registry -> first index
    platform: set[str] = field(default_factory=set)
    # Learning baselines: (key, a part of a workload key it may learn under). The containers of
    # one workload learn into one profile, so they must meet in one Engine.
    workloads: set[tuple[str, str]] = field(default_factory=set)
    flows: int = 0  # network-only flows with a source address (counted for hunt --spark's plan)


def digest(events: Iterable[Event], config: EngineConfig, workloads: bool = False) -> Digest:
    """Key each event as the Engine would where the event alone decides it; with
    ``workloads``, also note the workloads its container may learn under."""
    detector = Detector(AddressPolicy(config.internal_cidrs, config.external_cidrs))
    out = Digest()
    clocks: dict[str, str] = {}
    for index, decoded in enumerate(events):
        out.times.append(decoded.time)
        out.lines.append(decoded.raw.line or 0)
        event = decoded
        if config.assume_host and event.host is None and event.container is None:
            event = Engine._assumed_host(event, config.assume_host)
        host = (event.host or "").lower()
        out.hosts.append(clocks.setdefault(host, host))  # one object a host: pickled once
        key: str | None
        container = event.container
        if container is not None:
            uid = container.uid
            key = f"container:{uid}" if uid.startswith(POD_PREFIX) else f"container:{uid[:12]}"
            if container.namespace and container.pod_name:
                out.pods.add((key, container.namespace, container.pod_name))
            if uid.startswith(POD_PREFIX):
                namespace, _, rest = uid[len(POD_PREFIX) :].partition("/")
                out.pods.add((key, namespace, rest.partition("/")[0]))
            if container.image is not None and container.image.name:
                out.registries.setdefault(registry_of(container.image.name), index)
            if workloads:
                # Every part (owner, image): an identity merged from several records joins them.
                for token in workload_key(container).split(" "):
                    out.workloads.add((key, f"workload:{token}"))
        else:
            key = f"host:{(event.host or 'unknown host').lower()}"
        if event.kind is Kind.NETWORK:
            ip = event.src_endpoint.ip if event.src_endpoint else None
            if container is None:
                out.network.append((index, ip, None, key, event.host is not None))
                out.flows += ip is not None
                key = None
            else:
                out.network.append((index, ip, key, key, True))
        elif key is not None and _platform(event, detector):
            out.platform.add(key)
        out.keys.append(key)
    return out


def _platform(event: Event, detector: Detector) -> bool:
    """Whether the event is a commit or a push (asked of the detector itself, for the few
    events that could be one)."""
    if event.api is not None:
        if event.api.operation not in ("commit", "push"):
            return False
    elif not (
        event.process and event.process.cmd_line and _PLATFORM_WORDS.search(event.process.cmd_line)
    ):
        return False
    return any(s.kind in (SignalKind.COMMIT, SignalKind.PUSH) for s in detector.signals(event))


@dataclass
class Plan:
    workers: int
    positions: list[list[int]]  # per part: each event's place in the single-process order
    shards: list[list[int]]  # per part: each event's worker
    registries: list[tuple[int, str]]  # (position first seen, registry), in order
    # Every event's time and host by position: the correlator keeps a clock a host and closes
    # episodes by them and their quorum, so every worker moves them as one process would.
    times: list[float]
    hosts: list[str]


def plan(parts: Sequence[Part], digests: Sequence[Digest], config: EngineConfig, jobs: int) -> Plan:
    positions = merge_positions(parts, digests)
    owners: dict[str, str] = {}
    for name, address in config.host_addresses:
        owners[address] = f"host:{name.lower()}"
    keys = [list(d.keys) for d in digests]
    flows = sorted(
        (positions[p][item[0]], p, item) for p, d in enumerate(digests) for item in d.network
    )
    for _, p, (index, ip, own_key, fallback, host_named) in flows:
        owner = owner_step(owners, ip, own_key, fallback, host_named)
        if own_key is None:
            keys[p][index] = owner
    groups = group_entities(digests)
    workers = max(1, jobs)
    held: dict[str, list[int]] = {}  # group -> its events on each worker
    for part, part_keys in zip(parts, keys, strict=True):
        for key in part_keys:
            counts = held.setdefault(groups.find(key or ""), [0] * workers)
            counts[part.worker % workers] += 1
    fair = sum(len(k) for k in keys) / workers * 1.05
    load = [0] * workers
    shard_of: dict[str, int] = {}
    for root, counts in sorted(held.items(), key=lambda item: (-sum(item[1]), item[0])):
        size = sum(counts)
        holder = max(range(workers), key=lambda n: (counts[n], -n))
        if load[holder] + size > fair:  # moving events costs less than an idle worker
            holder = min(range(workers), key=lambda n: (load[n], n))
        shard_of[root] = holder
        load[holder] += size
    shards = [[shard_of[groups.find(key or "")] for key in part_keys] for part_keys in keys]
    times, hosts = clocks_in_order(positions, digests)
    return Plan(workers, positions, shards, first_registries(positions, digests), times, hosts)


def owner_step(
    owners: dict[str, str], ip: str | None, own_key: str | None, fallback: str, host_named: bool
) -> str:
    """One network event of the replay in merge order: the key it lands on, as
    AddressBook.owner then learn (a flow with no owner lands on its host, which then owns the
    address only when the record named that host). ``owners`` maps an address to its key."""
    key, teaches = own_key, True
    if key is None:
        owned = owners.get(ip) if ip is not None else None
        key = owned or fallback
        teaches = owned is not None or host_named
    if ip is not None and teaches:
        owners[ip] = key
    return key


def group_entities(digests: Iterable[Digest]) -> Groups:
    """Entities that must meet in one Engine: a pod's audit-log name and its runtime containers;
    everything that commits or pushes (a push is judged with the last commit on its host); when
    learning, the containers of one workload."""
    groups = Groups()
    for d in digests:
        for key, namespace, pod in d.pods:
            groups.union(key, f"pod:{namespace}/{pod}")
        for key in d.platform:
            groups.union(key, PLATFORM)
        for key, workload in d.workloads:
            groups.union(key, workload)
    return groups


def first_registries(
    positions: Sequence[Sequence[int]], digests: Sequence[Digest]
) -> list[tuple[int, str]]:
    """(position first seen, registry) of every image registry, in order."""
    first: dict[str, int] = {}
    for p, d in enumerate(digests):
        for registry, index in d.registries.items():
            at = positions[p][index]
            if at < first.get(registry, at + 1):
                first[registry] = at
    return sorted((at, registry) for registry, at in first.items())


def clocks_in_order(
    positions: Sequence[Sequence[int]], digests: Sequence[Digest]
) -> tuple[list[float], list[str]]:
    """Every event's time and host by position: the clocks every shard moves as one process."""
    total = sum(len(d.times) for d in digests)
    times, hosts = [0.0] * total, [""] * total
    for part_positions, d in zip(positions, digests, strict=True):
        for at, time, host in zip(part_positions, d.times, d.hosts, strict=True):
            times[at], hosts[at] = time, host
    return times, hosts


def merge_positions(parts: Sequence[Part], digests: Sequence[Digest]) -> list[list[int]]:
    """Each event's place in merge_by_time over the files, each file its parts in order."""
    by_file: dict[int, list[int]] = {}
    for p, part in enumerate(parts):
        by_file.setdefault(part.file, []).append(p)
    positions = [[0] * len(d.times) for d in digests]

    def stream(file_parts: list[int]) -> Iterator[tuple[float, int, int]]:
        """A file's events in its own order: its routed parts merged back by line."""
        routed = [_by_line(p, digests[p]) for p in file_parts]
        for _, time, p, i in heapq.merge(*routed, key=lambda item: item[0]):
            yield time, p, i

    streams = [stream(by_file[f]) for f in sorted(by_file)]
    if len(streams) == 1:  # one file: its own order
        for at, (_, p, i) in enumerate(streams[0]):
            positions[p][i] = at
        return positions
    for at, (_, p, i) in enumerate(heapq.merge(*streams, key=lambda item: item[0])):
        positions[p][i] = at
    return positions


def _by_line(p: int, d: Digest) -> Iterator[tuple[int, float, int, int]]:
    for i, (line, time) in enumerate(zip(d.lines, d.times, strict=True)):
        yield line, time, p, i


class Groups:
    """Union-find over entity keys."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        parent = self._parent.setdefault(key, key)
        while parent != key:
            grand = self._parent[parent]
            self._parent[key] = grand
            key, parent = parent, grand
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)


# --- the run -------------------------------------------------------------------------------


def detect_parallel(
    paths: Sequence[str],
    config: EngineConfig,
    sinks: Sequence[Sink],
    jobs: int,
    fmt: str | None = None,
) -> Outcome:
    """``detect_files`` over ``jobs`` processes: the same alerts (delivered in time order once
    all workers are done, not as they are decided) and the same counts."""
    outcome = Outcome()
    outcome.expired = expired_suppressions(Engine(lambda _: None, config))
    expanded = expand(paths)
    outcome.unreadable.extend(expanded.problems)
    parts = parts_of(expanded.files, expanded.listed, fmt, jobs)
    workers = max(1, min(jobs, len(parts)))
    parts = [replace(part, worker=part.worker % workers) for part in parts]
    context = multiprocessing.get_context("fork")  # the config (and users' rules) inherited
    pipes: list[Connection] = []
    processes = []
    for number in range(workers):
        mine = [part for part in parts if part.worker == number]
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_worker, args=(child_end, config, mine, number, list(pipes)), daemon=True
        )
        process.start()
        child_end.close()
        pipes.append(parent_end)
        processes.append(process)
    try:
        decoded: dict[int, tuple[Digest, ReadReport, list[str], list[str]]] = {}
        for pipe in pipes:
            decoded.update(pipe.recv())
        for number in range(len(parts)):
            _, report, unreadable, passed_over = decoded[number]
            merge_report(outcome.report, report)
            outcome.unreadable.extend(unreadable)
            outcome.passed_over.extend(passed_over)
        digests = [decoded[number][0] for number in range(len(parts))]
        layout = plan(parts, digests, config, workers)
        for pipe in pipes:
            pipe.send(layout)
        outgoing = [pipe.recv() for pipe in pipes]  # worker -> blob per destination
        for number, pipe in enumerate(pipes):
            pipe.send([blobs[number] for sender, blobs in enumerate(outgoing) if sender != number])
        del outgoing
        results: list[ShardResult] = [pipe.recv() for pipe in pipes]
    except BaseException:
        for process in processes:
            process.kill()
        raise
    finally:
        for pipe in pipes:
            pipe.close()
        for process in processes:
            process.join()
    alerts = sorted((a for r in results for a in r.alerts), key=alert_order)
    for alert in alerts:
        outcome.alerts.append(alert)
        for sink in sinks:
            sink.write(alert)
    outcome.suppressed = sorted((a for r in results for a in r.suppressed), key=alert_order)
    outcome.hidden_below_min = sum(result.below_min for result in results)
    for result in results:
        merge_report(outcome.report, result.report)  # records the engine could not analyse
        outcome.ahead_total += result.ahead
        outcome.ahead.extend(result.ahead_examples[: max(0, 5 - len(outcome.ahead))])
    outcome.report.check_forced(fmt)
    outcome.worker_cpu_s = [result.cpu_s for result in results]
    return outcome


def alert_order(alert: dict[str, Any]) -> tuple[Any, str]:
    return alert.get("time", 0), alert["finding_info"]["uid"]


def parts_of(paths: Sequence[str], listed: set[str], fmt: str | None, jobs: int) -> list[Part]:
    """Whole files spread over the workers by size; a big routable file in one part per worker."""
    parts: list[Part] = []
    load = [0] * jobs
    for file, path in enumerate(paths):
        size = _routable_size(path, fmt) if jobs > 1 else None
        if size is not None:
            for route in range(jobs):
                parts.append(Part(len(parts), file, path, fmt, route, route, jobs))
                load[route] += size // jobs
            continue
        worker = min(range(jobs), key=lambda n: (load[n], n))
        with suppress(OSError):  # the worker reading it reports it
            load[worker] += Path(path).stat().st_size
        parts.append(Part(len(parts), file, path, fmt, worker, listed=path in listed))
    return parts


def _routable_size(path: str, fmt: str | None) -> int | None:
    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as stream:
            head = stream.read(SNIFF_BYTES)
        source = forced(fmt, head) if fmt else sniff(head, path)
    except (OSError, UnknownFormat):
        return None
    return size if source.routable and size >= _MIN_PART and head[:2] != b"\x1f\x8b" else None


def merge_report(into: ReadReport, part: ReadReport) -> None:
    into.records += part.records
    into.events += part.events
    into.ignored += part.ignored
    into.abandoned += part.abandoned
    into.problems += part.problems
    into.files.update(part.files)
    into.notes.extend(part.notes)
    for reason, count in part.skipped.items():
        into.skipped[reason] += count
    into.foreign.update(part.foreign)
    into.file_events.update(part.file_events)  # check_forced reads them once all are merged
    for path, reasons in part.file_reasons.items():
        into.file_reasons.setdefault(path, Counter()).update(reasons)
    into.examples.extend(part.examples[: max(0, MAX_EXAMPLES - len(into.examples))])


# --- the worker side -----------------------------------------------------------------------


@dataclass
class ShardResult:
    alerts: list[dict[str, Any]]
    suppressed: list[dict[str, Any]]
    below_min: int
    report: ReadReport
    ahead: int
    ahead_examples: list[str]
    cpu_s: float = 0.0  # this worker's CPU time, for the measurements (bench/jobs.py)
    # Learning baselines: each finding's (workload, suppressed by) by uid, to store it as
    # detect --db does; the profiles learned (encoded, by workload); windows that alerted.
    stored: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    profiles: dict[str, bytes] = field(default_factory=dict)
    flagged_windows: int = 0


def decode_part(
    part: Part, report: ReadReport, unreadable: list[str], passed_over: list[str]
) -> list[Event]:
    if part.route is None:  # as open_all, for one file
        try:
            return list(open_events(part.path, report, part.fmt))
        except UnknownFormat as exc:
            (passed_over if part.listed else unreadable).append(str(exc))
        except OSError as exc:
            unreadable.append(f"{part.path}: cannot read ({exc.strerror or exc})")
        return []
    with open(part.path, "rb") as stream:
        head = stream.read(SNIFF_BYTES)
        source = forced(part.fmt, head) if part.fmt else sniff(head, part.path)
        stream.seek(0)
        report.files[part.path] = source.name
        lines = _routed(stream, source, part.route, part.routes)
        return list(read_lines(source, part.path, cast(BinaryIO, lines), report))


def _routed(stream: BinaryIO, source: Source, route: int, routes: int) -> Iterator[bytes]:
    """The file's lines, those routed elsewhere blanked (read_lines skips blank lines, so line
    numbers stay true). A line that cannot be routed alone goes to route 0."""
    for line in stream:
        hint = source.route_hint(line)
        owner = 0 if hint is None else zlib.crc32(hint) % routes
        yield line if owner == route else b"\n"


def _worker(
    pipe: Connection, config: EngineConfig, parts: list[Part], me: int, siblings: list[Connection]
) -> None:
    for sibling in siblings:  # the parent's ends to earlier workers: theirs to close, not ours
        sibling.close()
    # The worker holds its whole share of the input: lists and tuples the cycle collector would
    # walk again and again while they grow. Nothing here makes cycles until detection starts.
    gc.disable()
    events: dict[int, list[Event]] = {}
    decoded: dict[int, tuple[Digest, ReadReport, list[str], list[str]]] = {}
    for part in parts:
        report, unreadable, passed_over = ReadReport(), list[str](), list[str]()
        events[part.number] = decode_part(part, report, unreadable, passed_over)
        summary = digest(events[part.number], config)
        decoded[part.number] = (summary, report, unreadable, passed_over)
    pipe.send(decoded)
    layout: Plan = pipe.recv()
    kept: list[tuple[int, Event]] = []
    out: dict[int, tuple[list[int], list[Event]]] = {}
    for number, part_events in events.items():
        shards, positions = layout.shards[number], layout.positions[number]
        for index, event in enumerate(part_events):
            shard = shards[index]
            if shard == me:
                kept.append((positions[index], event))
            else:
                shipped = out.setdefault(shard, ([], []))
                shipped[0].append(positions[index])
                shipped[1].append(event)
    del events
    pipe.send([msgspec.msgpack.encode(out.get(n, ([], []))) for n in range(layout.workers)])
    out.clear()
    for blob in pipe.recv():
        positions, moved = _SHIPPED.decode(blob)
        kept.extend(zip(positions, moved, strict=True))
    kept.sort(key=lambda item: item[0])  # runs already in order: a cheap merge
    gc.freeze()  # the input stays; detection's own garbage is collected as usual
    gc.enable()
    result = detect_shard(kept, config, layout.times, layout.hosts, layout.registries)
    result.cpu_s = process_time()
    pipe.send(result)
    pipe.close()


def detect_shard(
    events: Iterable[tuple[int, Event]],
    config: EngineConfig,
    times: Sequence[float],
    hosts: Sequence[str],
    registries: Sequence[tuple[int, str]],
    baselines: Baselines | None = None,
) -> ShardResult:
    """An Engine over one shard's events (position, event), in position order; every other
    event of the input moves its host's clock, and every registry is noted, where one process
    would. ``times`` and ``hosts`` are every event's, by position. With ``baselines``, the
    Engine learns into them (every workload of the shard wholly in it)."""
    alerts: list[dict[str, Any]] = []
    suppressed: list[dict[str, Any]] = []
    stored: dict[str, tuple[str | None, str | None]] = {}

    def deliver(finding: Finding) -> None:
        alert = to_ocsf(finding)
        alerts.append(alert)
        if baselines is not None:
            stored[alert["finding_info"]["uid"]] = (workload_of(finding), None)

    def hold(finding: Finding) -> None:
        alert = to_ocsf(finding)
        suppressed.append(alert)
        if baselines is not None:
            stored[alert["finding_info"]["uid"]] = (workload_of(finding), finding.suppressed_by)

    report = ReadReport()
    engine = Engine(
        deliver, config, on_suppressed=hold, on_error=unanalysable(report), baselines=baselines
    )
    ceiling = engine.time_ceiling()  # records dated past it are clamped, as process does
    advance = engine.correlator.advance if baselines is None else engine.pass_by
    mine = iter(events)
    own = next(mine, None)
    notes = iter(registries)
    note = next(notes, None)
    for position in range(len(times)):
        while note is not None and note[0] < position:
            engine.identities.note_registry(note[1])
            note = next(notes, None)
        if own is not None and own[0] == position:
            engine.process(own[1])
            own = next(mine, None)
        else:
            time = times[position]
            advance(time if time <= ceiling else ceiling, hosts[position])
    while note is not None:
        engine.identities.note_registry(note[1])
        note = next(notes, None)
    engine.flush()
    result = ShardResult(
        alerts, suppressed, engine.suppressed_below_min, report, engine.ahead, engine.ahead_examples
    )
    if baselines is not None:
        result.stored = stored
        result.profiles = {w: encode_profile(baselines.profiles[w]) for w in baselines.changed}
        result.flagged_windows = baselines.flagged_windows
    return result
