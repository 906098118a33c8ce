"""Telemetry is attacker-controlled: before any of it reaches a terminal, characters that act
instead of showing are made visible as escapes: control characters (escape sequences, carriage
returns, line breaks), Unicode line and paragraph separators, bidirectional overrides and
isolates (which reorder what is shown: `exe.gpj` displayed as `jpg.exe`), zero-width and other
invisible format characters (which hide or split words), and lone surrogates (which some
terminals' encoders refuse outright)."""

from __future__ import annotations

import re

_ACTIVE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f"  # C0 (tab kept) and C1 controls, DEL
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"  # soft hyphen, invisible fillers, marks
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f"  # zero width, LRM/RLM, separators, bidi, invisibles
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"  # fillers, variation selectors, BOM, anchors
    "\U000e0000-\U000e007f"  # tag characters (invisible text)
    "\ud800-\udfff]"  # lone surrogates (from surrogateescape decoding)
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object) -> str:
    return _ACTIVE.sub(_escape, str(value))
