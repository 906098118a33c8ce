"""bpftrace's output (program.bt's printf records) into SensorRecords.

bpftrace reads one ring buffer per CPU, so records of one process can arrive out of order: an
exec's arguments are printed where execve began and its success where it ended, which may be
another CPU (execve rebalances). An exec is therefore emitted once its start (X), arguments (A),
end of arguments (M) and success (E) have all arrived, or GRACE seconds after E with what did.
Sends are folded per process and socket for up to FOLD seconds, so an upload is a few records
rather than one per write. A process table (pid → executable, argv, parent) gives every record
its process, also for a forked child that has not exec'd (it runs its parent's image).
"""

from __future__ import annotations

import ipaddress
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import msgspec

from tidewaiter.sensor.cgroups import CgroupResolver
from tidewaiter.sensor.schema import MARKER, VERSION, ProcessInfo, RecordKind, SensorRecord
from tidewaiter.sources.fields import decode_keeping_bad_utf8

GRACE = 0.2  # seconds an exec waits for arguments still in another CPU's buffer
FOLD = 1.0  # seconds of sends folded into one record
LINGER = 5.0  # seconds a process stays in the table after it exited (its late records)
SWEEP = 0.02  # seconds between looks at what is held back (not once a line on a busy host)
MAX_TABLE = 65_536
_BPF_LINE = msgspec.json.Decoder(dict[str, object])
V = TypeVar("V")


@dataclass(slots=True)
class _Proc:
    exe: str | None
    argv: tuple[str, ...] | None
    ppid: int | None = None
    uid: int | None = None
    truncated: bool = False
    exited: float | None = None


@dataclass(slots=True)
class _Starting:
    """An execve seen starting: its arguments as they arrive."""

    filename: str
    args: dict[int, str] = field(default_factory=dict)
    complete: bool = False
    truncated: bool = False


@dataclass(slots=True)
class _Exec:
    """An exec that succeeded, waiting for its arguments."""

    nsecs: int
    pid: int
    old_pid: int
    uid: int
    cgroup_id: int
    filename: str
    deadline: float


@dataclass(slots=True)
class _Fold:
    nsecs: int
    cgroup_id: int
    first: float  # monotonic time of the first send, for FOLD
    bytes: int = 0
    sends: int = 0


@dataclass
class Counters:
    records: int = 0
    lost: int = 0  # events bpftrace reported lost (its ring buffers overflowed)
    unreadable: int = 0  # lines that were not what program.bt prints
    sends_without_destination: int = 0


class Assembler:
    def __init__(
        self,
        emit: Callable[[SensorRecord], None],
        resolver: CgroupResolver,
        host: str,
        clock_offset: float | None = None,
        *,
        containers_only: bool = False,
        ignore_pids: frozenset[int] = frozenset(),
        strlen: int = 200,
        proc: Path = Path("/proc"),
    ) -> None:
        self._emit = emit
        self._resolver = resolver
        self._host = host
        # bpf_ktime_get_ns is CLOCK_MONOTONIC, as time.monotonic_ns is on Linux.
        self._offset = clock_offset if clock_offset is not None else time.time() - time.monotonic()
        self._containers_only = containers_only
        self._ignore = ignore_pids
        self._strlen = strlen
        self._proc = proc
        self._table: OrderedDict[int, _Proc] = OrderedDict()
        self._parents: OrderedDict[int, int] = OrderedDict()
        self._starting: OrderedDict[int, _Starting] = OrderedDict()
        self._waiting: list[_Exec] = []
        self._flows: OrderedDict[int, tuple[int, str, int]] = OrderedDict()  # sk -> destination
        self._folds: dict[tuple[int, int], _Fold] = {}
        self.counters = Counters()
        self._swept = float("-inf")
        self.attached = 0  # probes bpftrace reported attached; 0 until then

    # --- input ------------------------------------------------------------------------------

    def feed(self, line: bytes, now: float | None = None) -> None:
        """One line of `bpftrace -f json` output."""
        now = time.monotonic() if now is None else now
        try:
            message = decode_keeping_bad_utf8(_BPF_LINE.decode, line)
        except msgspec.DecodeError:
            self.counters.unreadable += 1
            return
        kind = message.get("type")
        data = message.get("data")
        if kind == "printf" and isinstance(data, str):
            try:
                self._record(data.rstrip("\n"), now)
            except (ValueError, IndexError):
                self.counters.unreadable += 1
        elif kind == "attached_probes" and isinstance(data, dict):
            probes = data.get("probes")
            self.attached = probes if isinstance(probes, int) else 1
        elif kind == "lost_events" and isinstance(data, dict):
            lost = data.get("events")
            self.counters.lost += lost if isinstance(lost, int) else 0
        self.tick(now)

    def tick(self, now: float | None = None) -> None:
        """Emit what has waited long enough: execs past their grace, sends past FOLD."""
        now = time.monotonic() if now is None else now
        if now - self._swept < SWEEP:
            return
        self._swept = now
        if self._waiting:
            due = [e for e in self._waiting if e.deadline <= now]
            for done in due:
                self._waiting.remove(done)
                self._finish_exec(done)
        for key in [k for k, f in self._folds.items() if now - f.first >= FOLD]:
            self._flush_fold(key)

    def flush(self) -> None:
        """End of input, or a sync point: everything held back goes out now."""
        for waiting in list(self._waiting):
            self._finish_exec(waiting)
        self._waiting.clear()
        for key in list(self._folds):
            self._flush_fold(key)

    # --- records ----------------------------------------------------------------------------

    def _record(self, text: str, now: float) -> None:
        letter, _, rest = text.partition(" ")
        self.counters.records += 1
        if letter == "X":
            _, tid, _, filename = rest.split(" ", 3)
            self._starting[int(tid)] = _Starting(filename)
            self._starting.move_to_end(int(tid))
            _bound(self._starting)  # execs that failed outright never see their E
        elif letter == "A":
            tid, index, arg = _split(rest, 2)
            starting = self._starting.get(int(tid))
            if starting is not None:
                starting.args[int(index)] = arg
                if len(arg) >= self._strlen - 1:
                    starting.truncated = True
        elif letter == "M":
            tid, more = rest.split(" ")
            starting = self._starting.get(int(tid))
            if starting is not None:
                starting.complete = True
                starting.truncated = starting.truncated or more == "1"
                self._release(int(tid))
        elif letter == "E":
            nsecs, pid, old_pid, uid, cgroup_id, filename = _split(rest, 5)
            waiting = _Exec(
                int(nsecs), int(pid), int(old_pid), int(uid), int(cgroup_id), filename, now + GRACE
            )
            starting = self._starting.get(waiting.old_pid)
            if starting is not None and starting.complete:
                self._finish_exec(waiting)
            else:
                self._waiting.append(waiting)
        elif letter == "K":
            parent, child = rest.split(" ")
            self._forked(int(parent), int(child))
        elif letter == "Q":
            _nsecs, pid = rest.split(" ")
            self._exited(int(pid), now)
        elif letter in ("F", "R"):
            self._file(letter, rest)
        elif letter == "C":
            self._connect(rest)
        elif letter == "N":
            sk, family, dport, daddr = rest.split(" ")
            self._flows[int(sk, 16)] = (int(family), daddr, int(dport))
            _bound(self._flows)
        elif letter == "S":
            self._send(rest, now)
        else:
            self.counters.unreadable += 1

    def _release(self, tid: int) -> None:
        for waiting in self._waiting:
            if waiting.old_pid == tid:
                self._waiting.remove(waiting)
                self._finish_exec(waiting)
                return

    def _finish_exec(self, done: _Exec) -> None:
        starting = self._starting.pop(done.old_pid, None)
        if starting is not None and starting.args:
            argv: tuple[str, ...] | None = tuple(starting.args[i] for i in sorted(starting.args))
            truncated = starting.truncated or not starting.complete
        else:  # its arguments were lost: the kernel still has them while the process lives
            argv = _read_cmdline(self._proc, done.pid)
            truncated = argv is None
        ppid = self._parents.get(done.pid)
        if ppid is None:
            ppid = _read_ppid(self._proc, done.pid)
        entry = _Proc(done.filename, argv, ppid, done.uid, truncated)
        self._table[done.pid] = entry
        self._table.move_to_end(done.pid)
        _bound(self._table)
        if done.pid in self._ignore:
            return
        parent = self._parent_info(ppid)
        self._out(
            "exec",
            done.nsecs,
            done.pid,
            done.cgroup_id,
            ppid=ppid,
            uid=done.uid,
            exe=done.filename,
            argv=argv,
            argv_truncated=truncated,
            parent=parent,
        )

    def _forked(self, parent: int, child: int) -> None:
        self._parents[child] = parent
        _bound(self._parents)
        image = self._table.get(parent)
        if image is not None and child not in self._table:
            self._table[child] = _Proc(image.exe, image.argv, parent, image.uid, image.truncated)
            _bound(self._table)

    def _exited(self, pid: int, now: float) -> None:
        for key in [k for k in self._folds if k[0] == pid]:
            self._flush_fold(key)
        entry = self._table.get(pid)
        if entry is not None:
            entry.exited = now
        self._resolver.forget(pid)
        # Forget processes that exited long enough ago that no late record can still name them.
        while self._table:
            oldest_pid, oldest = next(iter(self._table.items()))
            if oldest.exited is None or now - oldest.exited < LINGER:
                break
            del self._table[oldest_pid]
            self._parents.pop(oldest_pid, None)

    def _file(self, letter: str, rest: str) -> None:
        if letter == "F":
            nsecs, pid, cgroup_id, flags, path = _split(rest, 4)
            kind: RecordKind = "create"
            open_flags: int | None = int(flags)
        else:
            nsecs, pid, cgroup_id, path = _split(rest, 3)
            kind, open_flags = "rename", None
        self._out(kind, int(nsecs), int(pid), int(cgroup_id), path=path, flags=open_flags)

    def _connect(self, rest: str) -> None:
        nsecs, pid, cgroup_id, family, port, ret, address = rest.split(" ")
        self._out(
            "connect",
            int(nsecs),
            int(pid),
            int(cgroup_id),
            family=int(family),
            daddr=_address(int(family), address),
            dport=int(port),
            ret=int(ret),
        )

    def _send(self, rest: str, now: float) -> None:
        nsecs, pid, cgroup_id, sent, sk = rest.split(" ")
        key = (int(pid), int(sk, 16))
        fold = self._folds.get(key)
        if fold is None:
            fold = self._folds[key] = _Fold(int(nsecs), int(cgroup_id), now)
        fold.bytes += int(sent)
        fold.sends += 1

    def _flush_fold(self, key: tuple[int, int]) -> None:
        fold = self._folds.pop(key)
        pid, sk = key
        flow = self._flows.get(sk)
        if flow is None:  # connected before the sensor started, or not TCP
            self.counters.sends_without_destination += 1
            return
        family, daddr, dport = flow
        self._out(
            "send",
            fold.nsecs,
            pid,
            fold.cgroup_id,
            family=family,
            daddr=daddr,
            dport=dport,
            bytes=fold.bytes,
            sends=fold.sends,
        )

    # --- output -----------------------------------------------------------------------------

    def _out(
        self,
        kind: RecordKind,
        nsecs: int,
        pid: int,
        cgroup_id: int,
        *,
        ppid: int | None = None,
        uid: int | None = None,
        exe: str | None = None,
        argv: tuple[str, ...] | None = None,
        argv_truncated: bool = False,
        parent: ProcessInfo | None = None,
        path: str | None = None,
        flags: int | None = None,
        family: int | None = None,
        daddr: str | None = None,
        dport: int | None = None,
        ret: int | None = None,
        bytes: int | None = None,
        sends: int | None = None,
    ) -> None:
        if pid in self._ignore:
            return
        where = self._resolver.resolve(cgroup_id, pid)
        if self._containers_only and where.container_id is None:
            return
        if kind != "exec":  # the process is whatever it last exec'd (or its parent's image)
            entry = self._table.get(pid)
            if entry is None:
                entry = self._table.get(self._parents.get(pid, -1))
            if entry is not None:
                exe, argv, argv_truncated = entry.exe, entry.argv, entry.truncated
                ppid, uid = entry.ppid, entry.uid
        self._emit(
            SensorRecord(
                sensor=MARKER,
                v=VERSION,
                time=round(nsecs / 1e9 + self._offset, 6),
                event=kind,
                host=self._host,
                pid=pid,
                ppid=ppid,
                uid=uid,
                exe=exe,
                argv=argv,
                argv_truncated=argv_truncated,
                parent=parent,
                cgroup_id=cgroup_id,
                cgroup=where.cgroup,
                container_id=where.container_id,
                runtime=where.runtime,
                path=path,
                flags=flags,
                family=family,
                daddr=daddr,
                dport=dport,
                ret=ret,
                bytes=bytes,
                sends=sends,
            )
        )

    def _parent_info(self, ppid: int | None) -> ProcessInfo | None:
        if ppid is None or ppid <= 0:
            return None
        entry = self._table.get(ppid)
        if entry is not None:
            return ProcessInfo(ppid, entry.exe, entry.argv)
        # A parent that exec'd before the sensor started: the kernel still knows it.
        return ProcessInfo(ppid, _read_exe(self._proc, ppid), _read_cmdline(self._proc, ppid))


def _split(text: str, fields: int) -> list[str]:
    """``fields`` space-separated values, then the free text (which may hold spaces)."""
    parts = text.split(" ", fields)
    if len(parts) == fields:  # an empty free-text field
        parts.append("")
    if len(parts) != fields + 1:
        raise ValueError("short record")
    return parts


def _address(family: int, text: str) -> str:
    if family == 10 and ":" in text and len(text) <= 33 and "::" not in text:
        # Two 64-bit halves read in host (little-endian) order from struct sockaddr_in6.
        high, low = (int(half, 16) for half in text.split(":"))
        return str(ipaddress.IPv6Address(struct.pack("<QQ", high, low)))
    return text


def _bound(table: OrderedDict[int, V]) -> None:
    while len(table) > MAX_TABLE:
        table.popitem(last=False)


def _read_cmdline(proc: Path, pid: int) -> tuple[str, ...] | None:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\x00").split(b"\x00"))


def _read_exe(proc: Path, pid: int) -> str | None:
    try:
        return str((proc / str(pid) / "exe").readlink())
    except OSError:
        return None


def _read_ppid(proc: Path, pid: int) -> int | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and parentheses.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 else None
