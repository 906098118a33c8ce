"""`hunt --spark`: detection over a fleet's history on Spark, with exactly `detect`'s findings.

The same sources and the same Engine as `detect`, in the stages of `detect --jobs`
(tidewaiter.parallel), each one a Spark job:

1. Decode, in ``mapPartitions``: the input is cut into parts (``parallel.parts_of``: whole
   files, and a big file of a routable format read by one task per part, each decoding only the
   lines routed to it, so every record keeps its line number; a file named by URI is read whole
   through Hadoop, ``spark.remote``; a Parquet table of records row by row, ``spark.parquet``).
   Each event is keyed alone where it can be (``parallel.digest``) and kept msgpack-encoded in
   the cached RDD.
2. Order: the driver merges the parts' (line, time) lists into the order one process sees the
   events (``parallel.merge_positions``) and broadcasts it with the clock line (every event's
   time and host by position: every Engine moves its clocks as one process would). Pods, commits
   and pushes (which entities must meet) and image registries are per entity: collected small.
3. Join: the network events are keyed by their source address and sorted by position within it;
   each address's ownership intervals (who sent from it, from when) are replayed
   (``parallel.owner_step``) and joined to the network-only flows (Zeek, flow logs) that need an
   owner, on the executors, every address apart.
4. Detect: every event goes to partition crc32(its group) % P, sorted by position
   (``partitionBy``; sorted in the task), and each partition runs one Engine over its groups
   (``parallel.detect_shard``): entity groups never span partitions.
5. The findings come back to the driver (they are few), in the order `detect --jobs` delivers
   them, to the sinks (OCSF JSON lines) and, optionally, Parquet.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from tidewaiter.detection.baseline import Baselines, Profile
from tidewaiter.detection.baseline import decode as decode_profile
from tidewaiter.detection.baseline import encode as encode_profile
from tidewaiter.events import Event
from tidewaiter.parallel import (
    Digest,
    Groups,
    Part,
    ShardResult,
    alert_order,
    clocks_in_order,
    decode_part,
    detect_shard,
    digest,
    first_registries,
    group_entities,
    merge_positions,
    merge_report,
    owner_step,
    parts_of,
)
from tidewaiter.pipeline import Engine, EngineConfig
from tidewaiter.run import Outcome, expired_suppressions
from tidewaiter.sinks import Sink
from tidewaiter.sources import ReadReport, UnknownFormat
from tidewaiter.sources.opening import expand
from tidewaiter.spark.parquet import decode_rows, is_parquet
from tidewaiter.spark.parquet import rows as parquet_rows
from tidewaiter.spark.remote import is_uri, list_files, read_whole

_EVENT = msgspec.msgpack.Decoder(Event)
_encode = msgspec.msgpack.Encoder().encode


CHUNK = 4096  # events a record of the cached RDD: a record must fit the JVM's heap whole

_Network = tuple[int, str | None, str | None, str, bool]  # as Digest.network


@dataclass
class _Decoded:
    """One part, decoded: what the plan needs (its events follow, in _Chunks)."""

    number: int
    digest: Digest  # per event only its time, host and line
    report: ReadReport
    unreadable: list[str]
    passed_over: list[str]


@dataclass
class _Chunk:
    """Up to CHUNK events of a part, encoded, in the part's order, with their keys."""

    number: int  # the part
    start: int  # the index in the part of its first event
    events: list[bytes]
    keys: list[str | None]  # None: a network-only flow, keyed by its address's owner
    network: list[_Network]  # its network events, indexed in the part


def hunt_spark(
    spark: Any,
    paths: Sequence[str],
    config: EngineConfig,
    sinks: Sequence[Sink],
    fmt: str | None = None,
    parquet: str | None = None,
) -> Outcome:
    """Detection over ``paths`` (files, folders, globs) on the given SparkSession: the alerts
    and counts of ``detect_files`` over the same paths, alerts delivered in time order."""
    outcome, results = _stages(spark, paths, config, fmt, None)
    alerts = sorted((a for r in results for a in r.alerts), key=alert_order)
    return _finish(outcome, alerts, sinks, fmt, spark, parquet)


@dataclass
class Learned:
    outcome: Outcome
    profiles: dict[str, Profile]  # the workloads whose baseline this run changed
    flagged_windows: int
    # Each finding's (workload, suppressed by), by uid: to store it as detect --db does.
    stored: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


def learn_spark(
    spark: Any,
    paths: Sequence[str],
    config: EngineConfig,
    known: dict[str, Profile],
    fmt: str | None = None,
) -> Learned:
    """`baseline learn` on Spark: every workload's baseline learned over ``paths``, from the
    ``known`` profiles on, as one process learns them (the containers of a workload meet in one
    Engine, whose baseline windows close by every event's time). The findings of the period
    come back with the workload each is stored under (``Outcome.alerts`` in time order)."""
    outcome, results = _stages(spark, paths, config, fmt, known)
    outcome.alerts = sorted((a for r in results for a in r.alerts), key=alert_order)
    outcome.report.check_forced(fmt)
    profiles = {w: decode_profile(blob) for r in results for w, blob in r.profiles.items()}
    stored = {uid: kept for r in results for uid, kept in r.stored.items()}
    return Learned(outcome, profiles, sum(r.flagged_windows for r in results), stored)


@dataclass
class _Inputs:
    """The parts of a run, by how they are read."""

    parts: list[Part]  # every part, numbered in the merge order
    tasks: list[list[Part]]  # local parts (opened by the tasks), by task
    whole: list[str]  # files named by URI, read whole through Hadoop
    tables: dict[int, str]  # Parquet files, by part number


def _inputs(
    sc: Any, paths: Sequence[str], fmt: str | None, slots: int, outcome: Outcome
) -> _Inputs:
    expanded = expand([path for path in paths if not is_uri(path)])
    uris = list_files(sc, [path for path in paths if is_uri(path)])
    outcome.unreadable.extend(expanded.problems + uris.problems)
    files = [path for path in expanded.files if not is_parquet(path)]
    parts = parts_of(files, expanded.listed, fmt, slots)
    tasks = [[part for part in parts if part.worker == n] for n in range(slots)]
    whole = [uri for uri in uris.files if not is_parquet(uri)]
    for uri in whole:  # after the local files in the merge order
        parts.append(Part(len(parts), len(parts), uri, fmt, 0, listed=uri in uris.listed))
    tables: dict[int, str] = {}
    for path in [p for p in expanded.files + uris.files if is_parquet(p)]:
        tables[len(parts)] = path
        parts.append(Part(len(parts), len(parts), path, fmt, 0))
    return _Inputs(parts, [task for task in tasks if task], whole, tables)


def _decoders(
    spark: Any, inputs: _Inputs, fmt: str | None, config_b: Any, learning: bool, outcome: Outcome
) -> list[Any]:
    """An RDD of _Chunks and one _Decoded a part, for each way the parts are read."""
    sc = spark.sparkContext
    slots = max(1, int(sc.defaultParallelism))
    out = []
    if inputs.tasks:
        local = sc.parallelize(inputs.tasks, len(inputs.tasks))
        out.append(local.mapPartitions(lambda task: _decode(task, config_b.value, learning)))
    if inputs.whole:
        named = {part.path: part for part in inputs.parts if part.path in set(inputs.whole)}
        read = sc.binaryFiles(",".join(inputs.whole), slots)
        out.append(
            read.mapPartitions(
                lambda files: _decode_whole(files, named, fmt, config_b.value, learning)
            )
        )
    if inputs.tables:
        tables = inputs.tables
        found, problems = parquet_rows(spark, tables.items())
        outcome.unreadable.extend(problems)
        # One marker a table, so each yields its part, rows or not.
        keyed = sc.parallelize([(number, None) for number in tables], 1)
        if found is not None:
            keyed = found.union(keyed)
        out.append(
            keyed.groupByKey(min(slots, len(tables))).flatMap(
                lambda item: _decode_table(item, tables, fmt, config_b.value, learning)
            )
        )
    return out


def _stages(
    spark: Any,
    paths: Sequence[str],
    config: EngineConfig,
    fmt: str | None,
    known: dict[str, Profile] | None,
) -> tuple[Outcome, list[ShardResult]]:
    sc = spark.sparkContext
    slots = max(1, int(sc.defaultParallelism))
    outcome = Outcome()
    outcome.expired = expired_suppressions(Engine(lambda _: None, config))
    inputs = _inputs(sc, paths, fmt, slots, outcome)
    if not inputs.parts:
        return outcome, []
    config_b = sc.broadcast(config)
    decoded = sc.union(_decoders(spark, inputs, fmt, config_b, known is not None, outcome))
    from pyspark import StorageLevel

    # Decoded once, kept on the executors' disks: a partition (a part a core: ~0.5 GB a 500k
    # events) is cached as one block, which in memory would have to fit the JVM's heap whole.
    decoded = decoded.persist(StorageLevel.DISK_ONLY)
    try:
        summaries = decoded.filter(_is_summary).collect()
        summaries.sort(key=lambda d: d.number)
        for one in summaries:
            merge_report(outcome.report, one.report)
            outcome.unreadable.extend(one.unreadable)
            outcome.passed_over.extend(one.passed_over)
        ordered = [replace(part, worker=0) for part in inputs.parts]
        digests = [one.digest for one in summaries]
        chunks = decoded.filter(_is_chunk)
        results = _detect(sc, chunks, ordered, digests, config, config_b, slots, known)
    finally:
        decoded.unpersist()
        config_b.unpersist()
    for result in results:
        merge_report(outcome.report, result.report)
        outcome.ahead_total += result.ahead
        outcome.ahead.extend(result.ahead_examples[: max(0, 5 - len(outcome.ahead))])
        outcome.hidden_below_min += result.below_min
        outcome.suppressed.extend(result.suppressed)
    outcome.suppressed.sort(key=alert_order)
    outcome.worker_cpu_s = [result.cpu_s for result in results]
    return outcome, results


def _finish(
    outcome: Outcome,
    alerts: list[dict[str, Any]],
    sinks: Sequence[Sink],
    fmt: str | None,
    spark: Any,
    parquet: str | None,
) -> Outcome:
    for alert in alerts:
        outcome.alerts.append(alert)
        for sink in sinks:
            sink.write(alert)
    outcome.report.check_forced(fmt)
    if parquet is not None:
        write_parquet(spark, alerts, parquet)
    return outcome


def _detect(
    sc: Any,
    decoded: Any,
    parts: Sequence[Part],
    digests: list[Digest],
    config: EngineConfig,
    config_b: Any,
    slots: int,
    known: dict[str, Profile] | None,
) -> list[ShardResult]:
    if not any(d.times for d in digests):
        return []
    positions = merge_positions(parts, digests)
    times, hosts = clocks_in_order(positions, digests)
    intern = sys.intern  # one string a host: the broadcast pickles each once
    order_b = sc.broadcast(
        _Order(
            [array("q", p) for p in positions],
            array("d", times),
            [intern(h) for h in hosts],
            first_registries(positions, digests),
            group_entities(digests),
        )
    )
    known_b = None if known is None else sc.broadcast(known)
    try:
        seeds = {address: f"host:{name.lower()}" for name, address in config.host_addresses}
        keyed = decoded.flatMap(lambda one: _keyed(one, order_b.value, slots))
        if any(d.flows for d in digests):  # network-only flows to join to their owners
            flows = (
                decoded.flatMap(lambda one: _by_address(one, order_b.value))
                .repartitionAndSortWithinPartitions(slots, partitionFunc=_address_partition)
                .mapPartitions(lambda items: _owners(items, seeds, order_b.value, slots))
            )
            keyed = keyed.union(flows)
        # Partitioned, not sorted by Spark: its Python sorter spills to disk past
        # spark.python.worker.memory, and a shard's events are held for the Engine anyway.
        shards = keyed.partitionBy(slots, _shard_partition).mapPartitions(
            lambda events: _run(events, config_b.value, order_b.value, known_b)
        )
        results: list[ShardResult] = shards.collect()
    finally:
        order_b.unpersist()
        if known_b is not None:
            known_b.unpersist()
    return results


@dataclass
class _Order:
    """What every task needs of the whole input (broadcast): positions, clocks, groups."""

    positions: list[array[int]]  # per part: each event's place in the single-process order
    times: array[float]  # by position
    hosts: list[str]  # by position
    registries: list[tuple[int, str]]
    groups: Groups


# --- the executor side ----------------------------------------------------------------------


def _decode(
    task: Iterable[list[Part]], config: EngineConfig, learning: bool
) -> Iterator[_Decoded | _Chunk]:
    for parts in task:
        for part in parts:
            report, unreadable, passed_over = ReadReport(), list[str](), list[str]()
            events = decode_part(part, report, unreadable, passed_over)
            yield from _records(
                part.number, events, report, unreadable, passed_over, config, learning
            )


def _decode_whole(
    files: Iterable[tuple[str, bytes]],
    parts: dict[str, Part],
    fmt: str | None,
    config: EngineConfig,
    learning: bool,
) -> Iterator[_Decoded | _Chunk]:
    for uri, events, report, problems, unknown in read_whole(files, fmt):
        part = parts[uri]
        passed = unknown and part.listed  # in a folder or a glob and in no format: not an error
        unreadable, passed_over = ([], problems) if passed else (problems, [])
        yield from _records(part.number, events, report, unreadable, passed_over, config, learning)


def _decode_table(
    item: tuple[int, Iterable[tuple[int, bytes] | None]],
    tables: dict[int, str],
    fmt: str | None,
    config: EngineConfig,
    learning: bool,
) -> Iterator[_Decoded | _Chunk]:
    number, found = item
    report, problems = ReadReport(), list[str]()
    events: list[Event] = []
    rows = [row for row in found if row is not None]
    if rows:
        try:
            events = decode_rows(tables[number], rows, fmt, report)
        except UnknownFormat as exc:
            problems.append(str(exc))
    yield from _records(number, events, report, problems, [], config, learning)


def _records(
    number: int,
    events: list[Event],
    report: ReadReport,
    unreadable: list[str],
    passed_over: list[str],
    config: EngineConfig,
    learning: bool,
) -> Iterator[_Decoded | _Chunk]:
    """A part's events in chunks, each with its events' keys and network events, then what the
    plan needs of the part: per event only its time, host and line."""
    d = digest(events, config, workloads=learning)
    network = iter(d.network)
    item = next(network, None)
    for start in range(0, len(events), CHUNK):
        end = min(start + CHUNK, len(events))
        mine: list[_Network] = []
        while item is not None and item[0] < end:
            mine.append(item)
            item = next(network, None)
        encoded = [_encode(event) for event in events[start:end]]
        yield _Chunk(number, start, encoded, d.keys[start:end], mine)
    light = Digest(d.times, d.hosts, d.lines, [], [], d.pods, d.registries, d.platform, d.workloads)
    light.flows = d.flows
    yield _Decoded(number, light, report, unreadable, passed_over)


def _is_summary(record: _Decoded | _Chunk) -> bool:
    return isinstance(record, _Decoded)


def _is_chunk(record: _Decoded | _Chunk) -> bool:
    return isinstance(record, _Chunk)


def _slot(key: str, groups: Groups, slots: int) -> int:
    return zlib.crc32(groups.find(key).encode()) % slots


def _keyed(one: _Chunk, order: _Order, slots: int) -> Iterator[tuple[tuple[int, int], bytes]]:
    """((partition, position), event) for every event whose key it decides alone."""
    positions = order.positions[one.number]
    groups = order.groups
    start = one.start
    for offset, key in enumerate(one.keys):
        if key is not None:
            yield (_slot(key, groups, slots), positions[start + offset]), one.events[offset]
    for index, ip, own_key, fallback, _ in one.network:
        if own_key is None and ip is None:  # no address to own: its host, as AddressBook
            yield (_slot(fallback, groups, slots), positions[index]), one.events[index - start]


_Flow = tuple[str | None, str, bool, bytes | None]  # own key, host key, host named, event


def _by_address(one: _Chunk, order: _Order) -> Iterator[tuple[tuple[str, int], _Flow]]:
    """((address, position), flow) for every network event with a source address: those that
    teach who holds it, and the network-only flows (carrying the event) that need its owner."""
    positions = order.positions[one.number]
    for index, ip, own_key, fallback, host_named in one.network:
        if ip is not None:
            event = one.events[index - one.start] if own_key is None else None
            yield (ip, positions[index]), (own_key, fallback, host_named, event)


def _address_partition(key: tuple[str, int]) -> int:
    return zlib.crc32(key[0].encode())


def _owners(
    items: Iterable[tuple[tuple[str, int], _Flow]],
    seeds: dict[str, str],
    order: _Order,
    slots: int,
) -> Iterator[tuple[tuple[int, int], bytes]]:
    """Each address's network events in position order (its whole history is in this
    partition): who owned it when each flow was sent, as one process learns it."""
    owners = dict(seeds)
    for (ip, position), (own_key, fallback, host_named, event) in items:
        key = owner_step(owners, ip, own_key, fallback, host_named)
        if event is not None:
            yield (_slot(key, order.groups, slots), position), event


def _shard_partition(key: tuple[int, int]) -> int:
    return key[0]


def _first(item: tuple[int, bytes]) -> int:
    return item[0]


def _run(
    events: Iterable[tuple[tuple[int, int], bytes]],
    config: EngineConfig,
    order: _Order,
    known: Any,
) -> Iterator[ShardResult]:
    held = sorted(((position, blob) for (_, position), blob in events), key=_first)
    mine = ((position, _EVENT.decode(blob)) for position, blob in held)
    baselines = None
    if known is not None:  # `baseline learn`: the whole period trusted, alerts included
        baselines = Baselines(learn=True, exclude_flagged=False)
        baselines.profiles = {w: decode_profile(encode_profile(p)) for w, p in known.value.items()}
    yield detect_shard(mine, config, order.times, order.hosts, order.registries, baselines)


# --- findings as Parquet --------------------------------------------------------------------


def write_parquet(spark: Any, alerts: Sequence[dict[str, Any]], path: str) -> None:
    """The findings as Parquet: the columns to filter on, and the whole OCSF alert as JSON."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType(
        [
            StructField("uid", StringType(), False),
            StructField("time", LongType(), True),
            StructField("severity_id", LongType(), True),
            StructField("title", StringType(), True),
            StructField("ocsf", StringType(), False),
        ]
    )
    rows = [
        (
            str(a["finding_info"]["uid"]),
            a.get("time"),
            a.get("severity_id"),
            a["finding_info"].get("title"),
            msgspec.json.encode(a).decode(),
        )
        for a in alerts
    ]
    spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet(path)
