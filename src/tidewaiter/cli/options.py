"""Options shared by the subcommands that run detection, and their translation to config."""

from __future__ import annotations

import argparse
import ipaddress

from tidewaiter.detection.analytics import SEVERITY_NAMES
from tidewaiter.detection.correlate import CorrelationConfig
from tidewaiter.pipeline import EngineConfig

_SEVERITY_BY_NAME = {name.lower(): level for level, name in SEVERITY_NAMES.items()}


def severity(text: str) -> int:
    level = _SEVERITY_BY_NAME.get(text.lower()) or (int(text) if text.isdigit() else None)
    if level is None or level not in SEVERITY_NAMES:
        names = ", ".join(n.lower() for n in SEVERITY_NAMES.values())
        raise argparse.ArgumentTypeError(f"{text!r} is not a severity (one of {names}, or 1-5)")
    return level


def cidr(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address or CIDR range") from None


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def add_detection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--window",
        type=seconds,
        default=900.0,
        metavar="SECONDS",
        help="how long an archive stays staged waiting for a transfer (default 900)",
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
        "--min-severity",
        type=severity,
        default=1,
        metavar="LEVEL",
        help="hide findings below this severity (informational, low, medium, high, critical)",
    )


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        correlation=CorrelationConfig(window=args.window),
        internal_cidrs=tuple(args.internal),
        external_cidrs=tuple(args.external),
        min_severity=args.min_severity,
    )
