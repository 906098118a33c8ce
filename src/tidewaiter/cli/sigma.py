"""`tidewaiter sigma export`: the detection catalog as Sigma rules (single-event and
correlation), for SIEMs and detection-as-code repositories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tidewaiter.cli import exits
from tidewaiter.sigma.export import export


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sigma",
        help="Sigma rules: export the catalog as Sigma (run users' rules with detect --sigma)",
        description="Sigma rules in and out. `export` writes each catalog signal as Sigma rules "
        "for Linux, Windows and macOS, and the archive-then-transfer analytic as Sigma "
        "correlation rules. Users' own rules run with `tidewaiter detect --sigma RULE_OR_DIR`.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    out = actions.add_parser(
        "export",
        help="write the catalog as Sigma rules",
        description="Write one Sigma rule per catalog signal and platform (process_creation, "
        "file_event, network_connection) and the tw-archive-exfil correlation rules that refer "
        "to them: into DIR (platform and correlation folders), or as one YAML stream on stdout.",
    )
    out.add_argument("--out", type=Path, metavar="DIR", help="write one .yml file a rule here")
    out.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    rules = export()
    if args.out is None:
        sys.stdout.write("---\n".join(rule.yaml() for rule in rules))
        return exits.OK
    try:
        for rule in rules:
            path = args.out / rule.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rule.yaml(), encoding="utf-8")
    except OSError as exc:
        print(f"tidewaiter: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    print(f"wrote {len(rules)} Sigma rules to {args.out}", file=sys.stderr)
    return exits.OK
