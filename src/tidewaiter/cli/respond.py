"""`tidewaiter respond FINDING_UID`: the containment plan for a finding, and — only with
--execute and a confirmation — its execution through the runtime's or the cluster's API, every
action recorded in the audit log."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from tidewaiter.cli import exits
from tidewaiter.cli.options import StoreMissing, add_store_option, open_store
from tidewaiter.findings import FindingNotFound, load
from tidewaiter.printable import printable
from tidewaiter.respond.audit import AuditLog, os_user
from tidewaiter.respond.docker_executor import DockerExecutor, default_host
from tidewaiter.respond.kubernetes_executor import KubernetesExecutor, client_from_config
from tidewaiter.respond.outcome import Outcome
from tidewaiter.respond.planner import Plan, PlanOptions, plan
from tidewaiter.respond.protect import Protection, ProtectionError, load_protection
from tidewaiter.respond.render import plan_json, render_outcomes, render_plan
from tidewaiter.store import Store, StoreError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "respond",
        help="plan (and, with --execute, carry out) the containment of a finding",
        description="Print the containment plan for a finding: for Docker and Podman, "
        "disconnect the container from every network and pause it (optionally export evidence "
        "and stop it); for Kubernetes, a NetworkPolicy that denies the pod's egress and the "
        "label that selects it; for a host, guidance. Nothing is executed without --execute "
        "and a confirmation (or --yes). Exit status: 0 done or planned, 1 an action failed, "
        "2 usage, 3 refused (protected workload, not confirmed).",
    )
    parser.add_argument("finding", metavar="FINDING_UID", help="the finding uid or a prefix")
    add_store_option(parser)
    parser.add_argument("--alerts", metavar="FILE", help="read the finding from this file")
    parser.add_argument("--json", action="store_true", help="the plan (and results) as JSON")
    parser.add_argument("--execute", action="store_true", help="carry out the plan")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--force", action="store_true", help="act on a protected workload all the same"
    )
    parser.add_argument(
        "--dry-run",
        choices=["server"],
        help="server: resolve and check everything, send Kubernetes writes with dryRun=All, "
        "change nothing",
    )
    parser.add_argument(
        "--stop", action="store_true", help="also stop the container (after any evidence)"
    )
    parser.add_argument(
        "--evidence", metavar="DIR", help="export the container's filesystem and inspect here"
    )
    parser.add_argument(
        "--platform",
        choices=["docker", "kubernetes", "host"],
        help="override the platform read from the alert",
    )
    parser.add_argument(
        "--docker-host",
        metavar="URL",
        default=default_host(),
        help="the Docker Engine API; for Podman's service e.g. unix:///run/podman/podman.sock "
        "(default $DOCKER_HOST or unix:///var/run/docker.sock)",
    )
    parser.add_argument("--kubeconfig", metavar="FILE", help="the kubeconfig (default: usual)")
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig context")
    parser.add_argument(
        "--protected",
        metavar="FILE",
        help="YAML with namespaces, images and names (globs) never contained without --force",
    )
    parser.add_argument("--actor", help="who is responding, for the audit log (default: user)")
    parser.add_argument(
        "--audit-log",
        metavar="FILE",
        help="the JSON lines audit log (default: beside the store, <store>.audit.jsonl)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = None
    try:
        store = open_store(
            args, required=args.alerts is None or args.execute, read_only=not args.execute
        )
        alert = load(args.finding, store if args.alerts is None else None, args.alerts)
        protection = load_protection(args.protected)
        options = PlanOptions(platform=args.platform, evidence_dir=args.evidence, stop=args.stop)
        planned = plan(alert, options, protection)
        missing = _missing_client(planned) if args.execute else None
        if missing is not None:
            print(f"tidewaiter: {missing}", file=sys.stderr)
            return exits.USAGE
        return _respond(args, planned, store, protection)
    except (FindingNotFound, StoreMissing) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.NOT_FOUND
    except (StoreError, ProtectionError) as exc:
        print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
        return exits.USAGE
    finally:
        if store is not None:
            store.close()


def _respond(
    args: argparse.Namespace, planned: Plan, store: Store | None, protection: Protection
) -> int:
    console = Console()
    if not args.json:
        render_plan(console, planned)
    if not args.execute:
        if args.json:
            sys.stdout.buffer.write(plan_json(planned) + b"\n")
        else:
            print("nothing executed: --execute carries out this plan", file=sys.stderr)
        return exits.OK
    if planned.target.platform == "host":
        return _done(
            args,
            planned,
            [],
            "a host without a container: the plan is guidance for "
            "a person, tidewaiter executes none of it",
        )
    assert store is not None  # noqa: S101 - --execute always opens the store for the audit log
    audit = AuditLog(store, _audit_path(args, store), args.actor or os_user())
    uid = planned.finding_uid
    label = planned.target.label()
    if planned.protected and not args.force:
        audit.record(uid, "respond", label, "refused", {"reason": planned.protected})
        return _refuse(args, planned, f"refusing to act: {planned.protected}; --force to override")
    dry_run = args.dry_run == "server"
    if not args.yes and not dry_run:
        refusal = _confirm(planned)
        if refusal is not None:
            audit.record(uid, "respond", label, "refused", {"reason": refusal})
            return _refuse(args, planned, refusal)
    executor, detail = _executor(args, planned, protection, dry_run)
    reasons = {a.kind: a.reason for a in planned.actions}

    def report(outcome: Outcome) -> None:
        audit.outcome(uid, outcome, {**detail, "reason": reasons.get(outcome.kind)})

    outcomes = executor.execute(planned, report)
    failed = any(o.result == "failed" for o in outcomes)
    refused = any(o.result == "refused" for o in outcomes)
    _done(args, planned, outcomes, None, dry_run)
    if failed:
        return exits.FINDINGS
    return exits.REFUSED if refused else exits.OK


def _missing_client(planned: Plan) -> str | None:
    """Checked before anything is done: the client library the plan's platform needs."""
    if planned.target.platform == "host":
        return None
    module = "kubernetes" if planned.target.platform == "kubernetes" else "docker"
    try:
        importlib.import_module(module)
    except ImportError:
        pass
    else:
        return None
    return (
        f"respond --execute needs the {module} client library, which is not installed: "
        "pip install 'tidewaiter[respond]'"
    )


def _executor(
    args: argparse.Namespace, planned: Plan, protection: Protection, dry_run: bool
) -> tuple[DockerExecutor | KubernetesExecutor, dict[str, Any]]:
    """The executor for the plan's platform, and what every audit entry of this run records."""
    detail: dict[str, Any] = {
        "platform": planned.target.platform,
        "dry_run": dry_run,
        "forced": bool(args.force),
    }
    if planned.protected:
        detail["protected"] = planned.protected
    if planned.target.platform == "kubernetes":
        detail["cluster"] = args.context or args.kubeconfig or "default kubeconfig"
        return KubernetesExecutor(
            lambda: client_from_config(args.kubeconfig, args.context),
            protection,
            force=args.force,
            dry_run=dry_run,
        ), detail
    detail["runtime"] = args.docker_host
    return DockerExecutor(
        args.docker_host,
        protection,
        force=args.force,
        dry_run=dry_run,
        evidence_dir=args.evidence,
    ), detail


def _confirm(planned: Plan) -> str | None:
    """None when the person at the terminal typed yes; else the reason nothing was done."""
    if not sys.stdin.isatty():
        return (
            "refusing to act without confirmation: standard input is not a terminal; "
            "pass --yes to confirm"
        )
    steps = ", ".join(a.kind for a in planned.actions if not a.manual)
    sys.stderr.write(
        printable(f"Contain {planned.target.label()} ({steps})? Type yes to proceed: ")
    )
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return None if answer == "yes" else "not confirmed: nothing was done"


def _refuse(args: argparse.Namespace, planned: Plan, why: str) -> int:
    if args.json:
        sys.stdout.buffer.write(plan_json(planned, []) + b"\n")
    print(f"tidewaiter: {printable(why)}", file=sys.stderr)
    return exits.REFUSED


def _done(
    args: argparse.Namespace,
    planned: Plan,
    outcomes: list[Outcome],
    note: str | None,
    dry_run: bool = False,
) -> int:
    if args.json:
        sys.stdout.buffer.write(plan_json(planned, outcomes, dry_run) + b"\n")
    elif outcomes:
        render_outcomes(Console(), outcomes)
    if note:
        print(f"tidewaiter: {note}", file=sys.stderr)
    return exits.OK


def _audit_path(args: argparse.Namespace, store: Store) -> Path:
    if args.audit_log:
        return Path(args.audit_log)
    return store.path.with_name(store.path.stem + ".audit.jsonl")
