"""An inline SVG of one container's archive and egress activity over time: archive, encryption
and staging evidence as marks on an upper lane, transfers as bars on a lower lane (height by
bytes sent, on a log scale), so archive-then-transfer reads left to right at a glance.

Only numbers and escaped text go into the SVG; no style attributes (the page's CSP forbids
inline styles), no links.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any

from tidewaiter.alerts import evidence_bytes_out, evidence_time

STAGING = frozenset({"archive", "encrypt", "archive_file", "split", "copy_out", "commit"})
TRANSFER = frozenset({"upload", "egress", "push", "api_copy", "runtime"})

WIDTH, HEIGHT = 760, 150
LEFT, RIGHT = 70, 20
ARCHIVE_Y, EGRESS_BASE, EGRESS_TOP = 40, 120, 70


def points(alerts: list[dict[str, Any]]) -> list[tuple[int, str, int | None, str]]:
    """(time ms, lane, bytes out, label) of every evidence of these alerts, by time."""
    found: dict[tuple[int, str, str], int | None] = {}
    for alert in alerts:
        for evidence in alert.get("evidences") or []:
            when = evidence_time(evidence)
            signal = str((evidence.get("data") or {}).get("signal", ""))
            if when is None:
                continue
            lane = "archive" if signal in STAGING else "egress" if signal in TRANSFER else ""
            if not lane:
                continue
            tool = str((evidence.get("data") or {}).get("tool") or signal)
            found[(when, lane, tool)] = evidence_bytes_out(evidence)
    return sorted((when, lane, sent, tool) for (when, lane, tool), sent in found.items())


def svg(title: str, alerts: list[dict[str, Any]]) -> str:
    marks = points(alerts)
    if not marks:
        return ""
    start, end = marks[0][0], marks[-1][0]
    span = max(end - start, 1)

    def x(when: int) -> float:
        return round(LEFT + (WIDTH - LEFT - RIGHT) * (when - start) / span, 1)

    most = max((sent or 0 for _, _, sent, _ in marks), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="{ARCHIVE_Y + 4}" class="lane">archive</text>',
        f'<text x="4" y="{EGRESS_BASE - 4}" class="lane">egress</text>',
        f'<line x1="{LEFT}" y1="{ARCHIVE_Y}" x2="{WIDTH - RIGHT}" y2="{ARCHIVE_Y}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{EGRESS_BASE}" x2="{WIDTH - RIGHT}" y2="{EGRESS_BASE}" '
        'class="axis"/>',
    ]
    for when, lane, sent, tool in marks:
        label = escape(f"{clock(when)} {tool}" + (f" {sent} bytes out" if sent else ""))
        if lane == "archive":
            parts.append(
                f'<rect x="{x(when) - 5}" y="{ARCHIVE_Y - 9}" width="10" height="18" '
                f'class="archive"><title>{label}</title></rect>'
            )
        else:
            scale = math.log10(sent + 1) / math.log10(most + 1) if sent and most else 0.15
            top = round(EGRESS_BASE - (EGRESS_BASE - EGRESS_TOP + 20) * max(scale, 0.15), 1)
            parts.append(
                f'<rect x="{x(when) - 4}" y="{top}" width="8" height="{EGRESS_BASE - top}" '
                f'class="egress"><title>{label}</title></rect>'
            )
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" class="tick">{clock(start)}</text>')
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" class="tick" text-anchor="end">'
        f"{clock(end)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def clock(epoch_ms: object, millis: bool = False) -> str:
    """UTC wall-clock time of epoch milliseconds; "" for what is not a time."""
    if not isinstance(epoch_ms, int) or isinstance(epoch_ms, bool):
        return ""
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    text = moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[:-3] if millis else text[:-7]
