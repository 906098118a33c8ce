"""Linux audit logs: auditd's ``audit.log``, ``ausearch --raw`` / ``ausearch`` output, audisp lines.

The kernel writes one audited syscall as several records, one a line, that share a serial:
``type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 ... pid=7 exe="/bin/tar"``,
then EXECVE (argv), CWD, PATH (one per file name the syscall touched), PROCTITLE, SOCKADDR, and
an EOE record that ends the event. The decoder joins the records of one serial into one event:

- execve / execveat (or an EXECVE record alone) → a process launch: argv from EXECVE, else from
  PROCTITLE (truncated by the kernel at 128 bytes), else the executable;
- connect that succeeded or is in progress (EINPROGRESS, -115, is how every non-blocking client
  connects) → a network connect to the SOCKADDR; a connect to a local socket (AF_UNIX, netlink)
  gives nothing, one whose SOCKADDR is missing gives a connect without a destination;
- a PATH with ``nametype=CREATE`` (``objtype=`` on older kernels) under open / creat / openat →
  a file create; under rename → a file rename to that name. Directory, link and socket-file
  creation give nothing.

Strings the kernel does not trust (exe, comm, cwd, name, argv, proctitle) are written quoted
when plain, and as unquoted hex when they hold a space, a quote or a control character; argv
longer than the kernel's chunk size comes as ``a1_len=N a1[0]=... a1[1]=...``, and a long argv
spreads over several EXECVE records. Every form is decoded.

Records of one event are normally adjacent, but forwarders reorder and drop them. So an event is
emitted when its EOE arrives, when no record of it has been seen for ``WINDOW`` records, when
more than ``MAX_PENDING`` events are open (the oldest goes first), or at the end of the input;
each emits what its records allow. A record arriving after its event was emitted is counted as
nothing to use rather than emitted twice.

auditd has no container id. Setups that add one (a ``cgroup`` path field, or the ``contid`` of
the kernel's audit container id patches) are read when the value names a container.

Counting: here a record is a line, and events are per serial. The base line reader counts a line
whose feed returned no event as "nothing to use", which would be wrong for every line but the
last of each event (its events come out when the event closes, often on a later line). So this
source overrides ``read_file``: each line is one record; the lines of an event that produced an
event are used, and only the lines of events that produced nothing (a kill(2), a lone CWD), of
record types never used (logins, daemon and configuration records) and late records are counted
as nothing to use. Every line is thus exactly one of used, nothing to use, or skipped.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import msgspec

from tidewaiter.events import Activity, Container, Endpoint, Event, File, Kind, Process, RawRef
from tidewaiter.identity import container_id_from_cgroup, normalise_container_id
from tidewaiter.sources import register
from tidewaiter.sources.base import (
    Decoder,
    ReadReport,
    RecordError,
    Source,
    guarded,
    guarded_flush,
)
from tidewaiter.sources.fields import BOM, to_int, to_str

WINDOW = 64  # records after which an event without its EOE is taken as complete
MAX_PENDING = 10_000  # open events held at once; beyond this the oldest is emitted as it is
REMEMBERED = 4_096  # emitted serials remembered so that a late record is not a second event
MAX_LINE = 1 << 20  # a longer line is reported, not parsed (the kernel's records are < 9 KiB)
MAX_FAILED = 100  # events that failed to build, held until a reader accounts for them

# Record types an event is built from; every other type (USER_*, CRED_*, DAEMON_*, BPRM_FCAPS,
# MMAP, CONFIG_CHANGE, ...) carries nothing tidewaiter uses.
_USED = frozenset(
    {"SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE", "SOCKADDR", "EOE", "CONTAINER_ID"}
)
_HEADER = re.compile(
    r"(?:^|\s)(?:node=(?P<node>\S+)\s+)?type=(?P<type>\S+)\s+"
    r"msg=audit\((?P<time>\d+(?:\.\d+)?):(?P<serial>\d+)\):?"
)
_TYPE = re.compile(r"(?:^|\s)type=(\S+)")
_FIELD = re.compile(r"""([A-Za-z_][\w\-\[\]]*)=("[^"]*"?|'[^']*'?|\S*)""")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,64}")
_SNIFF = re.compile(
    rb"^(?:[^{<\n][^\n]{0,200}?\s)?(?:node=\S+\s+)?type=[A-Za-z0-9_\[\]]+\s+"
    rb"msg=audit\(\d+(?:\.\d+)?:\d+\)",
    re.MULTILINE,
)
_GS = "\x1d"  # log_format=ENRICHED appends translated fields after this separator

# Syscall numbers by audit arch; log_format=ENRICHED names the syscall itself (SYSCALL=...).
_X86_64 = "c000003e"
_SYSCALLS: dict[str, dict[int, str]] = {
    _X86_64: {
        59: "execve",
        322: "execveat",
        42: "connect",
        2: "open",
        85: "creat",
        257: "openat",
        437: "openat2",
        82: "rename",
        264: "renameat",
        316: "renameat2",
    },
    "c00000b7": {  # aarch64 (the generic table: no open, creat or rename)
        221: "execve",
        281: "execveat",
        203: "connect",
        56: "openat",
        437: "openat2",
        38: "renameat",
        276: "renameat2",
    },
    "40000003": {  # i386, and 32-bit programs on x86_64
        11: "execve",
        358: "execveat",
        362: "connect",
        102: "socketcall",
        5: "open",
        8: "creat",
        295: "openat",
        437: "openat2",
        38: "rename",
        302: "renameat",
        353: "renameat2",
    },
    "40000028": {  # 32-bit ARM (EABI)
        11: "execve",
        387: "execveat",
        283: "connect",
        5: "open",
        8: "creat",
        322: "openat",
        437: "openat2",
        38: "rename",
        329: "renameat",
        382: "renameat2",
    },
}
_EXEC = frozenset({"execve", "execveat"})
_OPEN = frozenset({"open", "creat", "openat", "openat2"})
_RENAME = frozenset({"rename", "renameat", "renameat2"})
_SYS_CONNECT = 3  # socketcall(2)'s call number for connect
_EINPROGRESS = -115

_AF_INET, _AF_INET6 = 2, 10
_FAMILIES = frozenset({0, 1, _AF_INET, _AF_INET6, 16, 17, 40})  # to tell the byte order apart


@dataclass(slots=True)
class _Record:
    type: str
    node: str | None
    stamp: str  # the time as written: with the serial, the event's identity across reboots
    serial: str
    fields: dict[str, str]
    syscall_name: str | None = None  # from the ENRICHED part of a SYSCALL record


@dataclass(slots=True)
class _Group:
    """The records of one serial seen so far."""

    ref: RawRef  # the first line of the group
    time: float
    node: str | None
    last_seen: int
    lines: int = 0
    syscall: dict[str, str] | None = None
    syscall_name: str | None = None
    execve: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    paths: dict[str, dict[str, str]] = field(default_factory=dict)
    proctitle: str | None = None
    sockaddr: str | None = None
    container: str | None = None

    def add(self, record: _Record) -> None:
        self.lines += 1
        fields = record.fields
        kind = record.type
        if kind == "SYSCALL" and self.syscall is None:
            self.syscall = fields
            self.syscall_name = record.syscall_name
        elif kind == "EXECVE":
            for key, value in fields.items():  # a long argv spans records: merge them
                self.execve.setdefault(key, value)
        elif kind == "CWD" and self.cwd is None:
            self.cwd = fields.get("cwd")
        elif kind == "PATH":
            self.paths.setdefault(fields.get("item", str(len(self.paths))), fields)
        elif kind == "PROCTITLE" and self.proctitle is None:
            self.proctitle = fields.get("proctitle")
        elif kind == "SOCKADDR" and self.sockaddr is None:
            self.sockaddr = fields.get("saddr")
        if self.container is None:
            self.container = _container_id(fields)


@register
class AuditdSource(Source):
    name = "auditd"
    title = "auditd log"

    def sniff(self, head: bytes) -> bool:
        text = head.removeprefix(BOM).lstrip()
        for line in text.split(b"\n", 8)[:8]:
            if not line.strip() or _is_framing(line):
                continue
            return _SNIFF.match(line) is not None
        return False

    def decoder(self, path: str) -> Decoder:
        return AuditDecoder()

    def read_file(self, path: str, stream: BinaryIO, report: ReadReport) -> Iterator[Event]:
        # One record a line; see the module notes for why lines joined into an event are not
        # counted as "nothing to use" (the base reader would count them so).
        decoder = AuditDecoder()
        lineno = 0
        for lineno, line in enumerate(stream, start=1):
            if not line.strip() or _is_framing(line):
                continue
            report.records += 1
            ref = RawRef(self.name, path, line=lineno)
            yield from guarded(decoder.feed, line, ref, report, count=False)
            decoder.account(report)
        yield from guarded_flush(decoder, path, lineno, report)
        decoder.account(report)


def _is_framing(line: bytes) -> bool:
    """ausearch's separators and time lines around the raw records: not records themselves."""
    text = line.strip()
    return text.startswith(b"----") or text.startswith(b"time->")


class AuditDecoder(Decoder):
    """Joins records by serial.

    A reader that feeds lines itself should call ``account`` after each feed and flush: it moves
    the lines found to carry nothing, and any event that failed to build, into the report. One
    that does not (the base line reader) counts every line that returned no event as nothing to
    use, and sees no failed event."""

    def __init__(
        self, window: int = WINDOW, max_pending: int = MAX_PENDING, remembered: int = REMEMBERED
    ) -> None:
        self._window = window
        self._max_pending = max_pending
        self._remembered = remembered
        # Keyed by node, time and serial: serials restart at boot, and nodes share a log.
        self._pending: OrderedDict[tuple[str, str, str], _Group] = OrderedDict()
        self._emitted: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._seen = 0
        self.unused = 0  # lines found to carry nothing, not yet accounted
        self.failed: list[tuple[RawRef, str]] = []  # events that could not be built

    @property
    def pending(self) -> int:
        return len(self._pending)

    def feed(self, line: bytes, ref: RawRef) -> Iterable[Event]:
        if len(line) > MAX_LINE:
            raise RecordError(f"line longer than {MAX_LINE >> 20} MiB")
        text = line.removeprefix(BOM).decode("utf-8", "replace").strip()
        if not text or text.startswith(("----", "time->")):
            return []
        record = _parse(text)  # raises before any state changes: a bad line leaves no trace
        self._seen += 1
        events: list[Event] = []
        if record is None:
            self.unused += 1
        else:
            key = (record.node or "", record.stamp, record.serial)
            if key in self._emitted:
                self.unused += 1  # its event is out already; a second one would be a duplicate
            else:
                group = self._pending.get(key)
                if group is None:
                    group = _Group(
                        msgspec.structs.replace(ref, record_id=record.serial),
                        float(record.stamp),
                        record.node,
                        self._seen,
                    )
                    self._pending[key] = group
                else:
                    group.last_seen = self._seen
                    self._pending.move_to_end(key)
                group.add(record)
                if record.type == "EOE":
                    events += self._close(key)
        events += self._expire()
        return events

    def flush(self) -> Iterable[Event]:
        events: list[Event] = []
        while self._pending:
            events += self._close(next(iter(self._pending)))
        return events

    def account(self, report: ReadReport) -> None:
        report.ignored += self.unused
        self.unused = 0
        for ref, reason in self.failed:
            report.skip(ref.path, f"line {ref.line}", reason)
        self.failed.clear()

    def _expire(self) -> list[Event]:
        events: list[Event] = []
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            stale = self._seen - oldest.last_seen >= self._window
            if not stale and len(self._pending) <= self._max_pending:
                break
            events += self._close(key)
        return events

    def _close(self, key: tuple[str, str, str]) -> list[Event]:
        group = self._pending.pop(key)
        try:
            events = _events(group)
        except Exception as exc:  # a parser bug must not lose the rest of the run
            if len(self.failed) < MAX_FAILED:  # bounded when no reader drains it
                self.failed.append((group.ref, f"unreadable event ({type(exc).__name__}: {exc})"))
            self.unused += group.lines - 1  # the failure counts as one skipped line
            return []
        if not events:
            self.unused += group.lines
            return []
        self._emitted[key] = None
        if len(self._emitted) > self._remembered:
            self._emitted.popitem(last=False)
        return events


# --- one line --------------------------------------------------------------------------------


def _parse(text: str) -> _Record | None:
    """The record on one line; None for a record type carrying nothing used here."""
    header = _HEADER.search(text)
    if header is None:
        kind = _TYPE.search(text)
        if kind is None:
            raise RecordError("not an audit record (no type=)")
        if kind.group(1) not in _USED:
            return None
        if "msg=audit(" in text and "/" in text.partition("msg=audit(")[2][:12]:
            raise RecordError("interpreted audit time (ausearch -i); read the raw log instead")
        raise RecordError(f"{kind.group(1)} record without a msg=audit(time:serial) header")
    kind_name = header.group("type")
    if kind_name not in _USED:
        return None
    raw, _, enriched = text[header.end() :].partition(_GS)
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(raw):
        fields.setdefault(key, value)
    name = None
    if enriched and kind_name == "SYSCALL":
        translated = dict(_FIELD.findall(enriched))
        name = translated.get("SYSCALL")
    return _Record(
        kind_name,
        header.group("node"),
        header.group("time"),
        header.group("serial"),
        fields,
        name,
    )


def _decode(raw: str | None) -> bytes | None:
    """The bytes of an untrusted string field: quoted text, or unquoted hex; None if unset."""
    if raw is None or raw in ("", "(null)", "?", '""'):
        return None if raw != '""' else b""
    if raw[0] == '"':
        return raw[1:-1].encode() if raw.endswith('"') and len(raw) > 1 else raw[1:].encode()
    if _HEX.fullmatch(raw):
        return bytes.fromhex(raw)
    return raw.encode()  # neither form: kept as written


def _text(raw: str | None) -> str | None:
    value = _decode(raw)
    return value.decode("utf-8", "replace") if value else None


def _container_id(fields: dict[str, str]) -> str | None:
    cgroup = _text(fields.get("cgroup"))
    if cgroup:
        found = container_id_from_cgroup(cgroup)
        if found:
            return found
    contid = normalise_container_id(_text(fields.get("contid")))
    if contid and _CONTAINER_ID.fullmatch(contid):
        return contid
    return None


# --- one event -------------------------------------------------------------------------------


def _syscall(group: _Group) -> str | None:
    call = group.syscall
    if call is None:
        return None
    if group.syscall_name:
        return group.syscall_name.lower()
    number = to_int(call.get("syscall"))
    table = _SYSCALLS.get((call.get("arch") or _X86_64).lower())
    name = table.get(number) if table is not None and number is not None else None
    if name == "socketcall":
        return "connect" if to_int("0x" + call.get("a0", "")) == _SYS_CONNECT else name
    return name


def _events(group: _Group) -> list[Event]:
    call = group.syscall or {}
    name = _syscall(group)
    failed = call.get("success") == "no"
    if group.execve or name in _EXEC:
        return [] if failed else [_launch(group)]
    if name == "connect":
        return _connect(group, call)
    creates = [
        item
        for item in group.paths.values()
        if "CREATE" in (item.get("nametype"), item.get("objtype"))
    ]
    if not creates or failed:
        return []
    if name in _RENAME:
        activity = Activity.RENAME
    elif name in _OPEN or group.syscall is None:  # no SYSCALL: a new name is still a create
        activity = Activity.CREATE
    else:
        return []  # mkdir, link, symlink, mknod, bind of a socket file
    cwd = _text(group.cwd)
    events = []
    for item in creates:
        path = _text(item.get("name"))
        if path is None:
            continue
        if not path.startswith("/") and cwd:
            path = posixpath.normpath(posixpath.join(cwd, path))
        events.append(_event(group, Kind.FILE, activity, _actor(group), file=File(path=path)))
    return events


def _launch(group: _Group) -> Event:
    call = group.syscall or {}
    argv = _execve_argv(group.execve) or _proctitle(group.proctitle)
    path = _text(call.get("exe")) or _exec_path(group)
    process = Process(
        pid=to_int(call.get("pid")),
        path=path,
        cmd_line=_join(argv) if argv else path,
        args=tuple(argv) if argv else None,
        cwd=_text(group.cwd),
        user=to_str(call.get("uid")),
        session=_session(call),
        parent=_parent(call),
    )
    return _event(group, Kind.PROCESS, Activity.LAUNCH, process)


def _connect(group: _Group, call: dict[str, str]) -> list[Event]:
    if call.get("success") == "no" and to_int(call.get("exit")) != _EINPROGRESS:
        return []  # refused, unreachable, timed out: nothing left the machine
    dst: Endpoint | None = None
    if group.sockaddr is not None:
        family, dst = _sockaddr(group.sockaddr)
        if family not in (_AF_INET, _AF_INET6):
            return []  # a local socket (AF_UNIX, netlink) or an unspecified address
    return [_event(group, Kind.NETWORK, Activity.CONNECT, _actor(group), dst=dst)]


def _actor(group: _Group) -> Process | None:
    """The process that made a non-exec syscall: its title stands in for argv."""
    call = group.syscall
    if call is None:
        return None
    argv = _proctitle(group.proctitle)
    return Process(
        pid=to_int(call.get("pid")),
        path=_text(call.get("exe")),
        cmd_line=_join(argv) if argv else None,
        args=tuple(argv) if argv else None,
        cwd=_text(group.cwd),
        user=to_str(call.get("uid")),
        session=_session(call),
        parent=_parent(call),
    )


def _session(call: dict[str, str]) -> str | None:
    """The audit session (ses); 4294967295 is "unset" (a daemon, not a login)."""
    ses = call.get("ses")
    return ses if ses and ses != "4294967295" else None


def _parent(call: dict[str, str]) -> Process | None:
    ppid = to_int(call.get("ppid"))
    return Process(pid=ppid) if ppid is not None else None


def _event(
    group: _Group,
    kind: Kind,
    activity: Activity,
    process: Process | None,
    *,
    file: File | None = None,
    dst: Endpoint | None = None,
) -> Event:
    return Event(
        time=group.time,
        kind=kind,
        activity=activity,
        raw=group.ref,
        host=group.node,
        container=Container(uid=group.container) if group.container else None,
        process=process,
        file=file,
        dst_endpoint=dst,
    )


def _execve_argv(fields: dict[str, str]) -> list[str]:
    """argv from merged EXECVE fields: ``aN`` whole, or ``aN_len`` with ``aN[0]``, ``aN[1]``..."""
    argv: list[str] = []
    index = 0
    while True:
        whole = fields.get(f"a{index}")
        if whole is not None:
            argv.append((_decode(whole) or b"").decode("utf-8", "replace"))
        elif f"a{index}_len" in fields or f"a{index}[0]" in fields:
            chunks = bytearray()
            part = 0
            while (chunk := fields.get(f"a{index}[{part}]")) is not None:
                chunks += _decode(chunk) or b""
                part += 1
            argv.append(chunks.decode("utf-8", "replace"))
        else:
            return argv
        index += 1


def _proctitle(raw: str | None) -> list[str]:
    """argv from PROCTITLE: hex with NUL between arguments, or one plain quoted argument."""
    value = _decode(raw)
    if not value:
        return []
    return [arg.decode("utf-8", "replace") for arg in value.rstrip(b"\x00").split(b"\x00")]


def _exec_path(group: _Group) -> str | None:
    """Without SYSCALL's exe, the file execve was given: PATH item 0, when absolute."""
    first = group.paths.get("0")
    path = _text(first.get("name")) if first is not None else None
    return path if path is not None and path.startswith("/") else None


def _join(argv: list[str]) -> str:
    """argv as one command line that splits back into the same argv (shell quoting)."""
    return " ".join(shlex.quote(arg) for arg in argv)


def _sockaddr(raw: str) -> tuple[int | None, Endpoint | None]:
    """(address family, endpoint) from SOCKADDR's hex ``struct sockaddr``."""
    value = _decode(raw)
    if value is None or len(value) < 2:
        return None, None
    family = int.from_bytes(value[:2], "little")  # the host's byte order: little on most
    if family not in _FAMILIES:
        family = int.from_bytes(value[:2], "big")
    port = int.from_bytes(value[2:4], "big") if len(value) >= 4 else None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == _AF_INET and len(value) >= 8:
        address = ipaddress.IPv4Address(value[4:8])
    elif family == _AF_INET6 and len(value) >= 24:
        address = ipaddress.IPv6Address(value[8:24])
        address = address.ipv4_mapped or address  # ::ffff:a.b.c.d is an IPv4 peer
    else:
        return family, None
    return family, Endpoint(ip=str(address), port=port)
