"""`tidewaiter` entry point: parses arguments and dispatches to a subcommand module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from tidewaiter import __version__
from tidewaiter.cli import (
    ads,
    alerts,
    backup,
    baseline,
    completion,
    coverage,
    demo,
    detect,
    emulate,
    evaluate,
    exits,
    hunt,
    investigate,
    report,
    respond,
    sensor,
    sigma,
    suppress,
    watch,
)
from tidewaiter.printable import printable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidewaiter",
        description="Find archive staging and exfiltration from containers in telemetry.",
    )
    parser.add_argument("--version", action="version", version=f"tidewaiter {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    detect.add_parser(commands)
    hunt.add_parser(commands)
    demo.add_parser(commands)
    evaluate.add_parser(commands)
    alerts.add_parser(commands)
    backup.add_parser(commands)
    suppress.add_parser(commands)
    baseline.add_parser(commands)
    watch.add_parser(commands)
    investigate.add_parser(commands)
    respond.add_parser(commands)
    emulate.add_parser(commands)
    sensor.add_parser(commands)
    coverage.add_parser(commands)
    sigma.add_parser(commands)
    ads.add_parser(commands)
    report.add_parser(commands)
    completion.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tidewaiter detect --json ... | head`
        return exits.OK
    except Exception as exc:
        # The last line of defence: records and flags are handled where they are read, but a
        # bug must not print a traceback quoting attacker text to the terminal.
        if os.environ.get("TIDEWAITER_DEBUG"):
            raise
        what = printable(f"{type(exc).__name__}: {exc}")[:300]
        print(
            f"tidewaiter: internal error ({what}); please report it "
            "(TIDEWAITER_DEBUG=1 shows where)",
            file=sys.stderr,
        )
        return exits.INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
