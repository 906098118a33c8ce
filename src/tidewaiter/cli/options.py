"""Options shared by the subcommands that run detection, and their translation to config."""

from __future__ import annotations

import argparse
import ipaddress
import math
import sys
from collections.abc import Callable
from pathlib import Path

from tidewaiter.cli import exits
from tidewaiter.detection.analytics import SEVERITY_NAMES
from tidewaiter.detection.correlate import CorrelationConfig
from tidewaiter.detection.suppress import load_suppressions
from tidewaiter.pipeline import EngineConfig, RuleSignals
from tidewaiter.printable import printable
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sources import all_sources
from tidewaiter.store import Store, StoreError, default_path
from tidewaiter.store_socket import connect

_SEVERITY_BY_NAME = {name.lower(): level for level, name in SEVERITY_NAMES.items()}


def severity(text: str) -> int:
    digits = text.isascii() and text.isdigit() and len(text) < 3
    level = _SEVERITY_BY_NAME.get(text.lower()) or (int(text) if digits else None)
    if level is None or level not in SEVERITY_NAMES:
        names = ", ".join(n.lower() for n in SEVERITY_NAMES.values())
        raise argparse.ArgumentTypeError(f"{text!r} is not a severity (one of {names}, or 1-5)")
    return level


def cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address or CIDR range") from None


def host_address(text: str) -> tuple[str, str]:
    name, _, address = text.partition("=")
    try:
        return name.strip(), str(ipaddress.ip_address(address.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=IP") from None


MAX_SECONDS = 366 * 86_400  # a year: any longer window or timeout is a typo, or nan/inf
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(text: str) -> float:
    """A positive, finite duration: 900, 900s, 15m, 2h or 1d (also 1.5h)."""
    number, unit = text.strip(), "s"
    if number[-1:].lower() in _UNITS:
        number, unit = number[:-1], number[-1].lower()
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_SECONDS:  # false for nan as well
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration above 0 and at most a year (seconds, or with s, m, h "
            "or d: 15m, 2h)"
        )
    return value


def source_format(text: str) -> str:
    """A --format name, checked when the arguments are parsed."""
    names = [s.name for s in all_sources()]
    if text not in names:
        raise argparse.ArgumentTypeError(f"{text!r} is not a format (one of {', '.join(names)})")
    return text


def add_format_option(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument(
        "--format",
        dest="fmt",
        type=source_format,
        metavar="NAME",
        help=help or "force the input format instead of sniffing it (see `detect --help`)",
    )


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    """--quiet and --verbose, for commands that report progress on a terminal."""
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", action="store_true", help="print only results and errors")
    loud.add_argument("-v", "--verbose", action="store_true", help="also print every skip")


def add_detection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--window",
        type=seconds,
        default=900.0,
        metavar="DURATION",
        help="how long an archive stays staged waiting for a transfer: 900, 15m, 2h (default 15m)",
    )
    group.add_argument(
        "--internal",
        type=cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="also treat this range as internal (repeatable)",
    )
    group.add_argument(
        "--external",
        type=cidr,
        action="append",
        default=[],
        metavar="CIDR",
        help="treat this range as the outside even if private (repeatable)",
    )
    group.add_argument(
        "--shared-range",
        choices=("internal", "external"),
        default="internal",
        help="100.64.0.0/10 (carrier NAT, some pod networks, overlay VPNs such as Tailscale): "
        "internal (default) or the outside; traffic there is kept as evidence either way",
    )
    group.add_argument(
        "--min-severity",
        type=severity,
        default=1,
        metavar="LEVEL",
        help="hide findings below this severity (informational, low, medium, high, critical)",
    )

    group.add_argument(
        "--suppressions",
        action="append",
        default=[],
        metavar="FILE",
        help="a YAML file of suppressions (match, reason, author, expires); repeatable",
    )
    group.add_argument(
        "--host-address",
        action="append",
        default=[],
        type=host_address,
        metavar="NAME=IP",
        help="this address is host NAME: flows from it (Zeek, flow logs) join that host",
    )
    group.add_argument(
        "--assume-host",
        metavar="NAME",
        help="records that name no host and no container come from host NAME (eslogger)",
    )
    group.add_argument(
        "--allow-destination",
        action="append",
        default=[],
        metavar="HOST",
        help="a registry or store that build and backup uploads may go to (repeatable)",
    )
    group.add_argument(
        "--sigma",
        action="append",
        default=[],
        metavar="RULE_OR_DIR",
        help="also run these Sigma rules (a .yml file, or a folder of them); repeatable",
    )


def engine_config(args: argparse.Namespace, store: Store | None = None) -> EngineConfig:
    """The engine's configuration from the flags; suppressions from files and the store.
    Raises SuppressionError for a suppressions file that cannot be used, SigmaLoadError for a
    --sigma path that cannot be."""
    rules = [rule for path in args.suppressions for rule in load_suppressions(path)]
    if store is not None:
        rules += store.suppressions()
    return EngineConfig(
        correlation=CorrelationConfig(window=args.window),
        internal_cidrs=tuple(args.internal),
        external_cidrs=tuple(args.external),
        shared_internal=args.shared_range == "internal",
        min_severity=args.min_severity,
        suppressions=tuple(rules),
        allowed_destinations=tuple(args.allow_destination),
        host_addresses=tuple(args.host_address),
        assume_host=args.assume_host,
        rules=sigma_rules(args.sigma),
    )


def sigma_rules(paths: list[str]) -> tuple[RuleSignals, ...]:
    """Users' Sigma rules; each rule that cannot run is reported in one sentence on stderr."""
    if not paths:
        return ()
    try:
        from tidewaiter.sigma.load import load
    except ImportError:
        raise SigmaLoadError("--sigma needs pySigma: pip install 'tidewaiter[sigma]'") from None
    loaded = load(paths)
    for problem in loaded.problems:
        print(f"tidewaiter: sigma: {printable(problem)}", file=sys.stderr)
    print(
        f"tidewaiter: sigma: {len(loaded.rules)} rule(s) loaded, {len(loaded.problems)} not",
        file=sys.stderr,
    )
    return (loaded,)


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"the DuckDB store (default {default_path()})",
    )


def open_store(
    args: argparse.Namespace,
    required: bool = False,
    through_watch: bool = True,
    read_only: bool = False,
) -> Store | None:
    """The store named by --db, or the default one when the command needs a store; through the
    watch that holds it when one does (``through_watch``: not for a detection run, which writes
    what only the holder may). A command that only reads never creates one: it gets
    StoreMissing instead."""
    if args.db is None and not required:
        return None
    if read_only:
        _check_exists(args.db)
    return connect(args.db) if through_watch else Store(args.db)


class StoreMissing(StoreError):
    """A command that only reads was pointed at a store that does not exist."""


def _check_exists(db: str | None) -> None:
    path = Path(db) if db else default_path()
    if not path.exists():
        raise StoreMissing(
            f"there is no store at {path}: `tidewaiter detect --db {path} FILE...` creates one"
        )


StoreCommand = Callable[[Store, argparse.Namespace], int]


def with_store(
    command: StoreCommand, read_only: bool = False
) -> Callable[[argparse.Namespace], int]:
    """A subcommand that needs the store: opened from --db (or the default), refused with one
    sentence when it cannot be, and closed afterwards. A read-only command never creates it."""

    def run(args: argparse.Namespace) -> int:
        try:
            if read_only:
                _check_exists(args.db)
            store = connect(args.db)
        except StoreMissing as exc:
            print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
            return exits.NOT_FOUND
        except StoreError as exc:
            print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
            return exits.USAGE
        with store:
            try:
                return command(store, args)
            except StoreError as exc:  # what a store held by a running watch refuses
                print(f"tidewaiter: {printable(exc)}", file=sys.stderr)
                return 2

    return run
