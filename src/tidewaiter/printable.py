"""Telemetry is attacker-controlled: before any of it reaches a terminal, control characters
(escape sequences, carriage returns, line breaks) are made visible instead of acted on."""

from __future__ import annotations

_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if i != 0x09}


def printable(value: object) -> str:
    return str(value).translate(_CONTROL)
