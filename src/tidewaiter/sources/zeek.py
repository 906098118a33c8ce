"""Zeek conn.log: TSV under its ``#`` header block, or JSON lines (``LogAscii::use_json``).

JSON comes in the spellings pipelines give it: Zeek's own dotted names (``id.orig_h``), the
underscore names of shippers whose stores refuse dots in keys (``id_orig_h``, as in the OTRF
datasets), with the log named by ``_path`` (json-streaming-logs, Corelight) or ``@stream``
(``@system``/``@proc`` beside it). Records of other Zeek logs (ssh, dns, smb_files) are
recognised and passed over: conn.log alone holds the byte counts of every flow.

Zeek sees the wire, not processes: a record is a finished flow with byte counts and no host,
process or container. The TSV header (#separator, #unset_field, #empty_field, #fields) is state
of the stream; a header block met mid-file (rotated logs concatenated) replaces the one before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

from tidewaiter.events import Activity, Endpoint, Event, Kind, RawRef, Traffic
from tidewaiter.printable import printable
from tidewaiter.sources import register
from tidewaiter.sources.base import Decoder, ForeignRecord, RecordError, Source
from tidewaiter.sources.fields import (
    BOM,
    decode_json_line,
    decode_keeping_bad_utf8,
    parse_time,
    to_int,
    to_str,
)


class _Conn(msgspec.Struct):
    """The conn.log columns used here, named as Zeek writes them; ``object`` because types drift
    (TSV gives text, JSON numbers, and ts may be ISO 8601 under JSON::TS_ISO8601)."""

    ts: object = None
    uid: object = None
    orig_h: object = msgspec.field(default=None, name="id.orig_h")
    orig_p: object = msgspec.field(default=None, name="id.orig_p")
    resp_h: object = msgspec.field(default=None, name="id.resp_h")
    resp_p: object = msgspec.field(default=None, name="id.resp_p")
    orig_bytes: object = None
    resp_bytes: object = None
    path: object = msgspec.field(default=None, name="_path")  # added by log shippers, not Zeek
    stream: object = msgspec.field(default=None, name="@stream")  # the same, other shippers


# TSV columns in _Conn's field order, so a row's picked values build a _Conn positionally.
_COLUMNS = tuple(
    f.encode_name for f in msgspec.structs.fields(_Conn) if f.name not in ("path", "stream")
)
_REQUIRED = ("ts", "id.orig_h", "id.resp_h")
_DECODER = msgspec.json.Decoder(_Conn)
# The underscore spelling of the id.* keys (stores that refuse dots in keys), read as Zeek's.
_UNDERSCORED = tuple(
    (f'"{name.replace(".", "_")}"'.encode(), f'"{name}"'.encode())
    for name in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")
)


@register
class ZeekSource(Source):
    name = "zeek"
    title = "Zeek conn.log (TSV or JSON)"
    comment_prefix = b"#"  # the TSV header block: framing, not records

    def sniff(self, head: bytes) -> bool:
        text = head.removeprefix(BOM).lstrip()
        if text.startswith(b"#separator"):
            return _header_path(text) is not None  # any Zeek log; only conn gives events
        line = text.split(b"\n", 1)[0]
        return line.startswith(b"{") and _json_zeek_log(line) is not None

    def near_miss(self, head: bytes) -> str | None:
        line = head.removeprefix(BOM).lstrip().split(b"\n", 1)[0]
        if line.startswith(b"{") and (b'"id.orig_h"' in line or b'"id_orig_h"' in line):
            return (
                "looks like a Zeek log in JSON, but not conn.log (it names no log with _path "
                "or @stream and has no conn_state); tidewaiter reads conn.log"
            )
        return None

    def decoder(self, path: str) -> Decoder:
        return ZeekDecoder()


@dataclass(slots=True)
class _Header:
    separator: str = "\t"
    unset: str = "-"
    empty: str = "(empty)"
    path: str | None = None
    width: int = 0
    columns: tuple[int | None, ...] | None = None  # where each of _COLUMNS is in a row
    missing: str | None = None  # why #fields cannot give a conn record


class ZeekDecoder(Decoder):
    def __init__(self) -> None:
        self._header = _Header()

    @property
    def path(self) -> str | None:
        """The log the current header declares (``conn`` for conn.log)."""
        return self._header.path

    def feed(self, line: bytes, ref: RawRef) -> list[Event]:
        line = line.removeprefix(BOM)
        if line.startswith((b"{", b"[")):
            return [_json_event(line, ref)]
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.startswith("#"):
            self._directive(text)
            return []
        return [self._tsv_event(text, ref)]

    def _directive(self, text: str) -> None:
        if text.startswith("#separator"):  # opens a header block; the only one space-separated
            self._header = _Header(separator=_separator(text[len("#separator") :].strip()))
            return
        header = self._header
        key, _, value = text.partition(header.separator)
        match key:
            case "#unset_field":
                header.unset = value
            case "#empty_field":
                header.empty = value
            case "#path":
                header.path = value
            case "#fields":
                self._set_fields(value.split(header.separator))
            case _:
                pass  # #set_separator (no column read here is a set), #open, #types, #close

    def _set_fields(self, names: list[str]) -> None:
        header = self._header
        index = {name: i for i, name in enumerate(names)}
        header.width = len(names)
        header.columns = tuple(index.get(column) for column in _COLUMNS)
        missing = [column for column in _REQUIRED if column not in index]
        header.missing = f"#fields lacks {', '.join(missing)}" if missing else None

    def _tsv_event(self, text: str, ref: RawRef) -> Event:
        header = self._header
        if header.path not in (None, "conn"):
            raise ForeignRecord(f"Zeek {header.path} log")
        if header.columns is None:
            raise RecordError("record before the #fields header")
        if header.missing is not None:
            raise RecordError(header.missing)
        values = text.split(header.separator)
        if len(values) != header.width:
            raise RecordError(f"TSV line has {len(values)} fields, header declares {header.width}")
        placeholders = (header.unset, header.empty)
        picked = [
            None if i is None or values[i] in placeholders else values[i] for i in header.columns
        ]
        return _event(_Conn(*picked), ref)


_HEX_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")


def _separator(escaped: str) -> str:
    """The separator from its escaped form: "\\x09" is a tab."""
    # Zeek writes the separator as \xNN escapes; anything else is taken literally (decoding
    # arbitrary text with unicode_escape would warn on, and later reject, stray backslashes).
    try:
        separator = _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), escaped)
    except ValueError:
        raise RecordError("unreadable #separator") from None
    if not separator:
        raise RecordError("#separator declares no separator")
    return separator


def _json_event(line: bytes, ref: RawRef) -> Event:
    # Zeek escapes bad bytes; a shipper may not.
    if b'"id_orig_h"' in line and b'"id.orig_h"' not in line:
        for underscored, dotted in _UNDERSCORED:
            line = line.replace(underscored, dotted)
    conn = decode_json_line(line, _DECODER)
    log = conn.path if conn.path is not None else conn.stream
    if log is not None and log != "conn":
        raise ForeignRecord(f"Zeek {printable(str(log))[:40]} log")
    return _event(conn, ref)


def _event(conn: _Conn, ref: RawRef) -> Event:
    orig_h, resp_h = to_str(conn.orig_h), to_str(conn.resp_h)
    if orig_h is None or resp_h is None:
        raise RecordError("conn record has no addresses")
    uid = to_str(conn.uid)  # Zeek's connection id: what an alert cites to find the flow
    return Event(
        time=parse_time(conn.ts),
        kind=Kind.NETWORK,
        activity=Activity.TRAFFIC,
        raw=msgspec.structs.replace(ref, record_id=uid) if uid else ref,
        src_endpoint=Endpoint(ip=orig_h, port=to_int(conn.orig_p)),
        dst_endpoint=Endpoint(ip=resp_h, port=to_int(conn.resp_p)),
        traffic=Traffic(bytes_out=to_int(conn.orig_bytes), bytes_in=to_int(conn.resp_bytes)),
    )


def _header_path(text: bytes) -> str | None:
    """The #path a TSV header declares, read by the decoder itself so the two cannot disagree."""
    decoder = ZeekDecoder()
    ref = RawRef(ZeekSource.name, "<sniff>")
    for line in text.split(b"\n"):
        if not line.startswith(b"#"):
            break
        try:
            decoder.feed(line, ref)
        except RecordError:
            return None
    return decoder.path


def _json_zeek_log(line: bytes) -> str | None:
    """The Zeek log a JSON line is a record of ("conn", "ssh", ...), or None if it is none."""
    if not (b'"id.orig_h"' in line or b'"id_orig_h"' in line):
        return None
    try:
        record = decode_keeping_bad_utf8(msgspec.json.decode, line)
    except msgspec.DecodeError:
        return None
    if not isinstance(record, dict):
        return None
    if not ("id.orig_h" in record or "id_orig_h" in record):
        return None
    for key in ("_path", "@stream"):  # shippers name the log
        if isinstance(record.get(key), str):
            return str(record[key])
    # dns, http and ssl logs share the id.* keys; Zeek writes these two in every conn record.
    return "conn" if "conn_state" in record or "missed_bytes" in record else None
