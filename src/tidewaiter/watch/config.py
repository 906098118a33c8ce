"""Settings of `tidewaiter watch`, from flags and a YAML file that can say everything they can.

The file is a mapping whose keys are the long flag names (``checkpoint-interval`` or
``checkpoint_interval``) and ``paths`` for the inputs. A repeatable flag takes a list; a
``NAME=VALUE`` flag also takes a mapping. Each value goes through the flag's own parser, so the
file is checked exactly as the command line is. Every setting can also be given in the
environment as TIDEWAITER_<SETTING> (``TIDEWAITER_CHECKPOINT_INTERVAL=2``), as containers expect.
Precedence: a flag on the command line, then the environment, then the file, then the default.
Since the keys come from the parser itself, a detection flag added later is a config key, and an
environment variable, at once.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tidewaiter.sinks.outputs import Outputs
from tidewaiter.store import default_path

_NOT_IN_FILE = frozenset({"help", "config", "check_config", "run"})
ENV_PREFIX = "TIDEWAITER_"
_OTHER_VARIABLES = frozenset({"TIDEWAITER_CACHE", "TIDEWAITER_CONFIG"})
_SWITCH = {"true": True, "1": True, "yes": True, "on": True}
_SWITCH |= {"false": False, "0": False, "no": False, "off": False}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


class ConfigError(Exception):
    """Settings that cannot be used; the message says which and why."""


# --- flag types ---------------------------------------------------------------------------------


def byte_size(text: str) -> int:
    """ "4194304", "4MiB", "512k": a positive number of bytes."""
    match = _SIZE.match(text)
    if match is None or not 0 < float(match.group(1)) < 2**53:  # and not inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in bytes (e.g. 4MiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


def listen_address(text: str) -> tuple[str, int]:
    """ "PORT", "HOST:PORT" or "[IPv6]:PORT"; the host is loopback unless named."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not [HOST:]PORT")
    return host, number


def name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value.strip()


# --- the file -----------------------------------------------------------------------------------


def load_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, found {type(values).__name__}")
    return values


def merged(
    parser: argparse.ArgumentParser,
    given: argparse.Namespace,
    layers: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[argparse.Namespace, dict[str, str]]:
    """The command line's settings, completed by ``layers`` (label, values) for what the command
    line left at its default: a later layer wins over an earlier one, the command line over all.
    Also where each setting came from: "flag", a layer's label, or "default"."""
    actions = _actions_by_key(parser)
    untouched = parser.parse_args([])  # every setting as the command line leaves it
    args = copy.deepcopy(given)
    sources = {
        a.dest: "flag" if getattr(given, a.dest) != getattr(untouched, a.dest) else "default"
        for a in actions.values()
    }
    for label, values in layers:
        for key, value in values.items():
            action = actions.get(str(key).replace("_", "-"))
            if action is None:
                known = ", ".join(sorted(actions))
                raise ConfigError(f"{label}: unknown setting {key!r}; the settings are: {known}")
            if sources[action.dest] == "flag":
                continue
            try:
                setattr(args, action.dest, _convert(action, value))
            except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
                raise ConfigError(f"{label}: {key}: {exc}") from None
            sources[action.dest] = label
    return args, sources


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


def from_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as TIDEWAITER_<SETTING> variables. A list is comma-separated
    (``TIDEWAITER_PATHS=/a.json,/b.json``, ``TIDEWAITER_WEBHOOK_HEADER_ENV=Authorization=TOKEN``);
    a switch is true/false, 1/0, yes/no or on/off."""
    values: dict[str, Any] = {}
    for key, action in _actions_by_key(parser).items():
        text = environ.get(env_name(key))
        if text is None:
            continue
        if action.nargs == 0:
            switch = _SWITCH.get(text.strip().lower())
            if switch is None:
                raise ConfigError(f"{env_name(key)}: {text!r} is not true or false")
            values[key] = switch
        elif isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):
            values[key] = [item.strip() for item in text.split(",") if item.strip()]
        else:
            values[key] = text
    return values


def unknown_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> list[str]:
    """TIDEWAITER_* variables that name no setting (a typo, or another command's variable)."""
    known = {env_name(key) for key in _actions_by_key(parser)} | _OTHER_VARIABLES
    return sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known)


def _actions_by_key(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in _NOT_IN_FILE or action.dest == argparse.SUPPRESS:
            continue
        longs = [o[2:] for o in action.option_strings if o.startswith("--")]
        for key in longs or [action.dest]:
            actions[key] = action
    return actions


def _convert(action: argparse.Action, value: Any) -> Any:
    if value is None:
        return action.default
    if action.nargs == 0:  # a switch
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value if action.const is True else not value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    if not many:
        if isinstance(value, list | dict):
            raise TypeError("expected a single value")
        return _typed(action, value)
    if isinstance(value, dict):  # NAME: VALUE pairs for a NAME=VALUE flag
        value = [f"{k}={v}" for k, v in value.items()]
    if not isinstance(value, list):
        value = [value]
    return [_typed(action, item) for item in value]


def _typed(action: argparse.Action, value: Any) -> Any:
    if isinstance(value, list | dict):
        raise TypeError("expected a single value in the list")
    text = str(value).lower() if isinstance(value, bool) else str(value)
    convert = action.type
    if convert is None:
        return text
    if not callable(convert):
        raise TypeError(f"no way to read {action.dest}")
    result = convert(text)
    if action.choices is not None and result not in action.choices:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {list(action.choices)}")
    return result


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    paths: tuple[str, ...]
    fmt: str | None
    db: Path
    out: str | None
    json: bool
    webhook: str | None
    webhook_headers_env: dict[str, str]
    webhook_headers_file: dict[str, str]
    webhook_timeout: float
    syslog: str | None
    syslog_facility: str
    retry_max: float
    listen: tuple[str, int] | None
    checkpoint_interval: float
    idle_flush: float
    container_ttl: float
    exit_grace: float
    max_record: int
    spool_max: int
    journal_max: int
    from_end: bool
    status_interval: float
    sensor: bool = False
    sensor_containers_only: bool = False
    metrics: tuple[str, int] | None = None
    log_format: str | None = None
    ready_sink_failing: float = 300.0
    outputs: Outputs = field(default_factory=Outputs)

    @property
    def state_dir(self) -> Path:
        """Beside the store: the webhook and syslog spools, the HTTP journal."""
        return self.db.with_name(self.db.name + ".watch")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WatchSettings:
        sensor = bool(getattr(args, "sensor", False))
        if not args.paths and args.listen is None and not sensor:
            raise ConfigError(
                "nothing to watch: name a PATH (- for standard input), --listen or --sensor"
            )
        if len(set(args.paths)) != len(args.paths):
            raise ConfigError("a PATH is named twice")
        return cls(
            paths=tuple(args.paths),
            fmt=args.fmt,
            db=Path(args.db) if args.db else default_path(),
            out=args.out,
            json=args.json,
            webhook=args.webhook,
            webhook_headers_env=dict(args.webhook_header_env),
            webhook_headers_file=dict(args.webhook_header_file),
            webhook_timeout=args.webhook_timeout,
            syslog=args.syslog,
            syslog_facility=args.syslog_facility,
            retry_max=args.retry_max,
            listen=args.listen,
            checkpoint_interval=args.checkpoint_interval,
            idle_flush=args.idle_flush,
            container_ttl=args.container_ttl,
            exit_grace=args.exit_grace,
            max_record=args.max_record,
            spool_max=args.spool_max,
            journal_max=args.journal_max,
            from_end=args.from_end,
            status_interval=args.status_interval,
            sensor=sensor,
            sensor_containers_only=bool(getattr(args, "sensor_containers_only", False)),
            metrics=getattr(args, "metrics", None),
            log_format=getattr(args, "log_format", None),
            ready_sink_failing=getattr(args, "ready_sink_failing", 300.0),
            outputs=Outputs.from_args(args),
        )
