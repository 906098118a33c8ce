"""The console view of an investigation. Every string from telemetry reaches rich as ``Text``
with control characters made visible (see sinks.console.safe): never markup, never escapes."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tidewaiter.alerts import alert_container
from tidewaiter.investigate import Investigation
from tidewaiter.investigate.context import ProcessNode
from tidewaiter.investigate.verify import came_close
from tidewaiter.printable import printable
from tidewaiter.sinks.console import safe

_SEVERITY_STYLE = {1: "dim", 2: "cyan", 3: "yellow", 4: "bold red", 5: "bold white on red"}
_EVIDENCE = "bold yellow"


def render(console: Console, result: Investigation) -> None:
    console.print(_header(result))
    console.print(_timeline(result))
    console.print(_tree(result.context.process_tree))
    console.print(_files(result))
    console.print(_connections(result))
    console.print(_related(result))
    console.print(_baseline(result))
    console.print(_verify(result))
    context = result.context
    for problem in context.unreadable:
        console.print(safe(f"could not read {problem}"), style="red")
    console.print(safe(context.summary), style="dim")


def _header(result: Investigation) -> Panel:
    alert = result.alert
    info = alert["finding_info"]
    context = result.context
    lines = Text()
    lines.append_text(safe(info.get("desc", "")))
    lines.append("\n\n")
    container = alert_container(alert)
    if container:
        lines.append("container ")
        lines.append_text(safe(container.get("uid", "?")))
        for label, value in (
            ("name", container.get("name")),
            ("image", (container.get("image") or {}).get("name")),
        ):
            if value:
                lines.append(f"  {label} ")
                lines.append_text(safe(value))
        lines.append("\n")
    host = (alert.get("device") or {}).get("hostname")
    if host:
        lines.append("host ")
        lines.append_text(safe(host))
        lines.append("\n")
    if result.workload:
        lines.append("workload ")
        lines.append_text(safe(result.workload))
        lines.append("\n")
    lines.append(
        f"context {_clock(context.start)} to {_clock(context.end)} UTC "
        f"(alert {_clock(info['first_seen_time'] / 1000)} to "
        f"{_clock(info['last_seen_time'] / 1000)})",
        style="dim",
    )
    if result.response:
        lines.append("\nresponse: ", style="bold")
        lines.append(result.response)
    title = Text.assemble(
        (f"{alert.get('severity', '?')} ", _SEVERITY_STYLE.get(alert.get("severity_id", 0), "")),
        safe(info.get("title", "")),
    )
    return Panel(lines, title=title, title_align="left", subtitle=Text(info["uid"]))


def _timeline(result: Investigation) -> Table:
    context = result.context
    stamp = _Stamp(context.start, context.end)
    table = Table(title=f"timeline ({stamp.zone})", title_justify="left", expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("pid", justify="right", no_wrap=True)
    table.add_column("process", no_wrap=True, max_width=16)
    table.add_column("what", ratio=1, min_width=24, overflow="fold")
    for entry in context.timeline:
        style = _EVIDENCE if entry.evidence else ""
        what = safe(entry.what)
        record = safe(entry.record)
        record.stylize("dim italic")
        what.append("\n")
        what.append_text(record)
        table.add_row(
            Text(stamp(entry.time), style=style),
            Text(f"{entry.kind} {entry.activity}", style=style),
            Text(str(entry.pid) if entry.pid is not None else ""),
            safe(entry.process or ""),
            what,
        )
    if not context.timeline:
        table.add_row("", "", "", "", Text("no events of this entity in the telemetry read"))
    if context.timeline_omitted:
        table.caption = f"{context.timeline_omitted} more events not shown (--limit)"
    else:
        table.caption = "highlighted: the finding's own evidence"
    return table


def _tree(roots: list[ProcessNode]) -> Tree:
    tree = Tree(Text("process tree", style="bold"))
    if not roots:
        tree.add(Text("no process records", style="dim"))

    def label(node: ProcessNode) -> Text:
        text = Text(style=_EVIDENCE if node.evidence else "")
        text.append_text(safe(node.name))
        if node.pid is not None:
            text.append(f" (pid {node.pid})")
        if node.cmd_line:
            text.append(": ", style="dim")
            command = safe(node.cmd_line)
            command.stylize("dim")
            text.append_text(command)
        if node.first_seen is not None:
            text.append(f"  {_clock(node.first_seen, millis=True)[11:]}", style="dim")
        return text

    def add(branch: Tree, node: ProcessNode, depth: int) -> None:
        child = branch.add(label(node))
        if depth < 64:
            for sub in node.children:
                add(child, sub, depth + 1)

    for root in roots:
        add(tree, root, 0)
    return tree


def _files(result: Investigation) -> Table:
    stamp = _Stamp(result.context.start, result.context.end)
    table = Table(title=f"files created ({stamp.zone})", title_justify="left", expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("path", ratio=1, min_width=24, overflow="fold")
    table.add_column("by", max_width=20, overflow="fold")
    table.add_column("size", justify="right", overflow="fold")
    for entry in result.context.files:
        style = _EVIDENCE if entry.evidence else ""
        by = f"{entry.process or '?'}" + (f" (pid {entry.pid})" if entry.pid is not None else "")
        table.add_row(
            Text(stamp(entry.time) if entry.time else "", style=style),
            _with_note(safe(entry.path), _seen(entry.seen, entry.records)),
            safe(by),
            Text(_size(entry.size)),
        )
    if not result.context.files:
        table.add_row("", Text("none seen", style="dim"), "", "")
    return table


def _connections(result: Investigation) -> Table:
    connections = result.context.connections
    stamp = _Stamp(result.context.start, result.context.end)
    table = Table(title=f"connections ({stamp.zone})", title_justify="left", expand=True)
    table.add_column("first", no_wrap=True)
    table.add_column("destination", ratio=1, min_width=24, overflow="fold")
    table.add_column("by", max_width=20, overflow="fold")
    table.add_column("bytes out", justify="right", overflow="fold")
    table.add_column("bytes in", justify="right", overflow="fold")
    for flow in connections:
        where = flow.ip or flow.hostname or "?"
        if flow.port is not None:
            where = f"[{where}]:{flow.port}" if ":" in where else f"{where}:{flow.port}"
        if flow.internal is not None:
            where += " (internal)" if flow.internal else " (outside)"
        destination = Text(printable(where), style=_EVIDENCE if flow.evidence else "")
        by = f"{flow.process or '?'}" + (f" (pid {flow.pid})" if flow.pid is not None else "")
        table.add_row(
            Text(stamp(flow.first_seen) if flow.first_seen else ""),
            _with_note(destination, _seen(flow.seen, flow.records)),
            safe(by),
            Text(_size(flow.bytes_out, unknown="n/a")),
            Text(_size(flow.bytes_in, unknown="n/a")),
        )
    if not connections:
        table.add_row("", Text("none seen", style="dim"), "", "", "")
    else:
        table.caption = "n/a: the source did not report bytes for this flow"
    return table


def _seen(how: str, records: int) -> str:
    return how if records <= 1 else f"{how}, {records} records"


def _with_note(text: Text, note: str) -> Text:
    """A cell's value with a dim second line (where it was seen), both inert."""
    line = safe(note)
    line.stylize("dim italic")
    text.append("\n")
    text.append_text(line)
    return text


def _related(result: Investigation) -> Table:
    table = Table(
        title="other findings for this container, workload or image (any host)",
        title_justify="left",
        expand=True,
    )
    table.add_column("time (UTC)", overflow="fold")
    table.add_column("finding", no_wrap=True)
    table.add_column("severity", overflow="fold")
    table.add_column("title", ratio=1, overflow="fold")
    for column in ("where", "shares", "status"):
        table.add_column(column, overflow="fold")
    for other in result.related:
        table.add_row(
            Text(_clock(other.time / 1000)),
            Text(other.uid[:12]),
            Text(other.severity),
            safe(other.title),
            safe(other.where),
            Text(", ".join(other.shared)),
            Text(other.status),
        )
    if not result.related:
        table.add_row("", Text("none", style="dim"), "", "", "", "", "")
    return table


def _baseline(result: Investigation) -> Panel:
    view = result.baseline
    if view is None:
        why = (
            "no baseline for this workload in the store"
            if result.workload
            else "no workload (not a container)"
        )
        return Panel(Text(why, style="dim"), title="baseline", title_align="left")
    text = Text()
    text.append_text(safe(view.workload))
    text.append(
        f"\n{view.days:g} days of history, {view.events:g} events, "
        f"{'trusted' if view.trusted else 'not trusted yet'}"
    )
    if view.egress_p99_bytes is not None:
        text.append(
            f", egress p99 {_size(int(view.egress_p99_bytes))} per 10 minutes "
            f"over {view.egress_windows} windows"
        )
    for label, rows in (
        ("usual executables", view.executables),
        ("usual archive shapes", view.archive_shapes),
        ("usual destinations", view.destinations),
    ):
        if rows:
            text.append(f"\n{label}: ", style="bold")
            text.append_text(safe(", ".join(f"{k} ({v:g})" for k, v in rows)))
    for note in view.notes:
        text.append("\n- ")
        text.append_text(safe(note))
    return Panel(text, title="baseline: what is usual", title_align="left")


def _verify(result: Investigation) -> Table:
    table = Table(
        title="verify: benign profiles and suppressions held against this finding",
        title_justify="left",
        expand=True,
    )
    for column in ("kind", "id", "verdict", "holds", "does not hold"):
        table.add_column(column, overflow="fold")
    close = [m for m in result.verify if came_close(m)]
    for match in close:
        verdict = (
            Text("applies", style="green") if match.applies else Text(f"{match.score:.0%} close")
        )
        table.add_row(
            Text(match.kind),
            safe(match.id),
            verdict,
            safe("; ".join(c.detail for c in match.checks if c.matched)),
            safe("; ".join(c.detail for c in match.checks if not c.matched)),
        )
    if not close:
        table.add_row(
            "",
            Text("none", style="dim"),
            Text(f"none of {len(result.verify)} profiles and suppressions came close"),
            "",
            "",
        )
    return table


def _size(count: int | None, unknown: str = "") -> str:
    if count is None:
        return unknown
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit} ({count})"
    return f"{count} B"


def _clock(epoch: float, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text + f".{moment.microsecond // 1000:03d}" if millis else text


class _Stamp:
    """Times within one day show the clock only; the day goes in the table's title."""

    def __init__(self, start: float, end: float) -> None:
        first, last = _clock(start)[:10], _clock(end)[:10]
        self.one_day = first == last
        self.zone = f"UTC, {first}" if self.one_day else "UTC"

    def __call__(self, epoch: float) -> str:
        text = _clock(epoch, millis=True)
        return text[11:] if self.one_day else text
