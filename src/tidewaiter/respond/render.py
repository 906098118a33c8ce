"""The plan and its outcomes on the console, as JSON, and the Kubernetes manifests as YAML.
Telemetry strings reach rich only as ``Text`` with control characters made visible."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import yaml
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tidewaiter.respond.outcome import Outcome
from tidewaiter.respond.planner import Plan
from tidewaiter.sinks.console import safe

_LONG_HEX = re.compile(r"\b[0-9a-f]{24,64}\b")  # container ids, not policy names
_RESULT_STYLE = {
    "changed": "bold green",
    "unchanged": "green",
    "dry-run": "cyan",
    "manual": "dim",
    "refused": "bold yellow",
    "failed": "bold red",
}


def render_plan(console: Console, plan: Plan) -> None:
    target = plan.target
    header = Text()
    header.append_text(safe(target.label()))
    for label, value in (("image", target.image), ("host", target.host)):
        if value:
            header.append(f"  {label} ")
            header.append_text(safe(value))
    if target.container_id:
        header.append(f"\nid {target.container_id}", style="dim")
    header.append(f"\nplatform {target.platform}", style="dim")
    if plan.protected:
        header.append("\nprotected: ", style="bold yellow")
        header.append_text(safe(plan.protected))
        header.append(" (refused without --force)", style="bold yellow")
    for problem in plan.problems:
        header.append("\ncannot act: ", style="bold red")
        header.append_text(safe(problem))
    if plan.response:
        header.append("\nresponse: ", style="bold")
        header.append(plan.response)
    console.print(
        Panel(header, title=Text("containment plan"), title_align="left", subtitle=plan.finding_uid)
    )
    table = Table(expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("action and target", max_width=34, overflow="fold")
    table.add_column("why", ratio=1, overflow="fold")
    for number, action in enumerate(plan.actions, 1):
        why = safe(action.reason)
        if action.guidance:
            why.append("\n")
            command = safe(action.guidance)
            command.stylize("bold")
            why.append_text(command)
        what = Text(action.kind + (" (manual)" if action.manual else ""), style="bold")
        where = safe(_short_ids(action.target))
        where.stylize("dim")
        what.append("\n")
        what.append_text(where)
        table.add_row(Text(str(number)), what, why)
    console.print(table)
    if plan.manifests:
        console.print(Text(manifests_yaml(plan)), soft_wrap=True)  # never wrap YAML


def render_outcomes(console: Console, outcomes: list[Outcome]) -> None:
    table = Table(title="executed", title_justify="left", expand=True)
    table.add_column("action and target", max_width=34, overflow="fold")
    table.add_column("result", no_wrap=True)
    table.add_column("detail", ratio=1, overflow="fold")
    for outcome in outcomes:
        what = Text(outcome.kind, style="bold")
        where = safe(_short_ids(outcome.target))
        where.stylize("dim")
        what.append("\n")
        what.append_text(where)
        table.add_row(
            what,
            Text(outcome.result, style=_RESULT_STYLE.get(outcome.result, "")),
            safe(outcome.message),
        )
    console.print(table)


def _short_ids(text: str) -> str:
    """Container ids cut to 12 characters for the table; the JSON and audit log keep them whole."""
    return _LONG_HEX.sub(lambda m: m[0][:12], text)


def manifests_yaml(plan: Plan) -> str:
    """The manifests as YAML documents, each under a comment that says how to use it."""
    documents = []
    for manifest in plan.manifests:
        meta = manifest["metadata"]
        if manifest["kind"] == "Pod":
            note = (
                f"# a patch, not a pod: kubectl patch pod -n {meta['namespace']} {meta['name']} "
                "--patch-file THIS_FILE"
            )
        else:
            note = f"# kubectl apply -f THIS_FILE  ({manifest['kind']} {meta['name']})"
        body = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False)
        documents.append(f"{note}\n{body}")
    return "---\n" + "---\n".join(documents)


def plan_json(plan: Plan, outcomes: list[Outcome] | None = None, dry_run: bool = False) -> bytes:
    data: dict[str, Any] = msgspec.to_builtins(plan)
    data.setdefault("manifests", [])
    data["executed"] = outcomes is not None
    if outcomes is not None:
        data["dry_run"] = dry_run
        data["results"] = msgspec.to_builtins(outcomes)
    return msgspec.json.encode(data)
