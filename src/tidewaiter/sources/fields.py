"""Coercion shared by the sources: producers drift in types (a pid as int or string, a time as
ISO text or integer nanoseconds), so every source reads fields through these helpers."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from tidewaiter.sources.base import RecordError


def parse_time(value: object) -> float:
    """Epoch seconds (UTC) from ISO 8601 text or an epoch number in s, ms, us or ns."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(_scale_epoch(_float(value)), value)
    if isinstance(value, str) and value:
        text = value.strip()
        if text.replace(".", "", 1).isdigit():
            return _finite(_scale_epoch(_float(text)), value)
        try:
            moment = datetime.fromisoformat(text.replace(" UTC", "Z"))
        except ValueError:
            raise RecordError(f"unreadable time {value[:40]!r}") from None
        if moment.tzinfo is None:  # producers that omit the zone write UTC
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    raise RecordError("record has no time")


BOM = b"\xef\xbb\xbf"  # some exporters (PowerShell, Windows editors) start files with one
T = TypeVar("T")


def decode_keeping_bad_utf8(decode: Callable[[bytes], T], data: bytes) -> T:
    """decode(data), and where that fails on invalid UTF-8, decode again with each bad sequence
    as U+FFFD: a stray byte in an argument an attacker chose must not hide the record. msgspec
    before 0.23 raised UnicodeDecodeError for it and 0.23 raises DecodeError, so the bytes
    themselves decide, not the exception's name."""
    try:
        return decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError):
        repaired = replace_bad_utf8(data)
        if repaired is None:
            raise
    return decode(repaired)


def replace_bad_utf8(data: bytes) -> bytes | None:
    """The bytes with each invalid UTF-8 sequence as U+FFFD, or None where all are valid."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode()
    return None


def decode_json_line(line: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """One JSON record from a line, with msgspec's errors as one-phrase reasons. Invalid UTF-8
    is kept as U+FFFD (see decode_keeping_bad_utf8)."""
    try:
        return decode_keeping_bad_utf8(decoder.decode, line.removeprefix(BOM))
    except msgspec.ValidationError as exc:  # a subclass of DecodeError, so it is caught first
        # The only other validation failure is a number beyond a float's range (1e400).
        if str(exc).startswith("Expected `object`"):
            raise RecordError("JSON is not an object") from None
        raise RecordError("malformed JSON") from None
    except msgspec.DecodeError:
        raise RecordError("malformed JSON") from None


_LATEST = 253402300799.0  # 9999-12-31T23:59:59Z: anything later is not a time


def _float(value: int | float | str) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError):
        return math.inf


def _finite(seconds: float, value: object) -> float:
    if not 0 <= seconds <= _LATEST:
        raise RecordError(f"unreadable time {str(value)[:40]!r}")
    return seconds


def _scale_epoch(number: float) -> float:
    # Seconds stay below 1e11 until the year 5138; each finer unit is 1000x larger.
    if number > 1e17:
        return number / 1e9
    if number > 1e14:
        return number / 1e6
    if number > 1e11:
        return number / 1e3
    return number


def to_int(value: object) -> int | None:
    """An integer from an int or numeric string; None for anything else (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:  # no field tidewaiter reads is that long a number
            return None
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit():  # not "²": isdigit() alone accepts it
            return int(text)
        if text.lower().startswith("0x"):
            try:
                return int(text, 16)
            except ValueError:
                return None
    return None


def to_str(value: object) -> str | None:
    """A non-empty string, or None for null, empty and placeholder values."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if not text or text in ("-", "<NA>", "(empty)"):
        return None
    return text
