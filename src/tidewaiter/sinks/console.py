"""The console view: a table of alerts, then each alert's evidence chain in time order.

Every string from telemetry is attacker-controlled, so it reaches rich only as ``Text`` (never
parsed as markup) and with control characters made visible.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tidewaiter.alerts import alert_container, evidence_ref, evidence_time
from tidewaiter.layout import print_records
from tidewaiter.printable import printable

_SEVERITY_STYLE = {1: "dim", 2: "cyan", 3: "yellow", 4: "bold red", 5: "bold white on red"}


def safe(value: object) -> Text:
    """Telemetry text for display: no markup, no terminal escapes, no line breaks."""
    return Text(printable(value))


class ConsoleSink:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.alerts: list[dict[str, Any]] = []

    def write(self, alert: dict[str, Any]) -> None:
        self.alerts.append(alert)

    def close(self) -> None:
        render(self.console, final_states(self.alerts))


def final_states(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding once, in its latest state (an update replaces what it updates)."""
    latest: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        uid = alert["finding_info"]["uid"]
        known = latest.get(uid)
        revision = (alert.get("metadata") or {}).get("sequence") or 0
        if known is None or revision >= ((known.get("metadata") or {}).get("sequence") or 0):
            latest[uid] = alert
    return list(latest.values())


def render(console: Console, alerts: list[dict[str, Any]]) -> None:
    """The alerts, most severe first. Nothing is printed for none: the caller, which knows
    whether anything was read, says so."""
    ordered = sorted(alerts, key=lambda a: (-a["severity_id"], a["time"]))
    rows = [
        [
            Text(alert["severity"], style=_SEVERITY_STYLE.get(alert["severity_id"], "")),
            _clock(alert["time"]),
            safe(alert["finding_info"]["title"]),
            safe(_where(alert, short=True)),
            ", ".join(a["technique"]["uid"] for a in alert["finding_info"]["attacks"]),
            alert["finding_info"]["uid"][:12],
        ]
        for alert in ordered
    ]
    if rows:
        print_records(console, "tidewaiter alerts", _COLUMNS, rows)
    for alert in ordered:
        steps = [_step(evidence) for evidence in alert["evidences"]]
        if _chain_fits(console, steps):
            console.print(_chain(alert, steps))
        else:
            _print_chain(console, alert, steps)


_COLUMNS = ("severity", "time (UTC)", "analytic", "where", "ATT&CK", "finding")
_STEP_LEFT = 30  # panel borders, the time and the signal columns: what the details do not get


def _step(evidence: dict[str, Any]) -> tuple[str, str, list[Text]]:
    """(time, signal, detail lines) of one evidence item."""
    lines = [safe(evidence["data"]["explanation"])]
    process = evidence.get("process")
    if process:
        command = process.get("cmd_line") or process.get("file", {}).get("path", "")
        lines.append(safe(f"pid {process.get('pid', '?')}: {command}"))
        lines[-1].stylize("dim")
    lines.append(Text(_record(evidence_ref(evidence)), style="dim italic"))
    return _clock(evidence_time(evidence) or 0)[11:], str(evidence["data"]["signal"]), lines


def _chain_fits(console: Console, steps: list[tuple[str, str, list[Text]]]) -> bool:
    """Whether every word of the details fits the panel's column whole (no token folded)."""
    room = console.width - _STEP_LEFT
    return all(len(word) <= room for *_, lines in steps for t in lines for word in t.plain.split())


def _chain(alert: dict[str, Any], steps: list[tuple[str, str, list[Text]]]) -> Panel:
    info = alert["finding_info"]
    table = Table(show_header=False, box=None, pad_edge=False, expand=True)
    table.add_column("time", no_wrap=True, style="dim")
    table.add_column("signal", no_wrap=True)
    table.add_column("what", ratio=1, overflow="fold")
    for clock, signal, lines in steps:
        table.add_row(Text(clock), Text(signal), Text("\n").join(lines))
    title = Text.assemble(
        (f"{alert['severity']} ", _SEVERITY_STYLE.get(alert["severity_id"], "")),
        safe(info["title"]),
    )
    header = Text.assemble(safe(_where(alert)), "\n", safe(info["desc"]))
    return Panel(
        Group(header, Text(""), table), title=title, title_align="left", subtitle=Text(info["uid"])
    )


def _print_chain(
    console: Console, alert: dict[str, Any], steps: list[tuple[str, str, list[Text]]]
) -> None:
    """The narrow layout of one chain: plain lines the terminal wraps between words."""
    info = alert["finding_info"]
    out = [
        Text.assemble(
            (f"{alert['severity']} ", _SEVERITY_STYLE.get(alert["severity_id"], "")),
            safe(info["title"]),
            "  ",
            (info["uid"], "dim"),
        ),
        safe(_where(alert)),
        safe(info["desc"]),
    ]
    for clock, signal, lines in steps:
        out.append(Text.assemble((clock, "dim"), f"  {signal}"))
        out += [Text.assemble("    ", line) for line in lines]
    console.rule(style="dim")
    for line in out:
        console.print(line, soft_wrap=True)


def _record(ref: dict[str, Any]) -> str:
    """Where the evidence came from: file name and line (or record id); the JSON has the path."""
    where = str(ref.get("path", "?")).replace("\\", "/").rsplit("/", 1)[-1]
    if "line" in ref:
        where += f":{ref['line']}"
    if "record_id" in ref:
        where += f" record {ref['record_id']}"
    return where


def _where(alert: dict[str, Any], short: bool = False) -> str:
    container = alert_container(alert)
    host = alert.get("device", {}).get("hostname")
    if container and short:
        name = container.get("name")
        return f"container {container['uid'][:12]}" + (f" ({name})" if name else "")
    if container:
        image = container.get("image", {}).get("name")
        name = container.get("name")
        label = f"container {container['uid'][:12]}"
        label += f" ({name})" if name else ""
        label += f" image {image}" if image else ""
        return label + (f" on {host}" if host else "")
    return f"host {host}" if host else "unknown host"


def _clock(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
