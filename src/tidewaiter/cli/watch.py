"""`tidewaiter watch`: continuous detection over growing files, standard input and Falco's
http_output, with checkpoints that survive a crash and sinks that deliver what they are given."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from tidewaiter.cli import exits
from tidewaiter.cli.options import (
    add_detection_options,
    add_format_option,
    add_store_option,
    engine_config,
    seconds,
)
from tidewaiter.detection.catalog import CatalogError, load
from tidewaiter.detection.suppress import SuppressionError
from tidewaiter.pipeline import Engine
from tidewaiter.printable import printable
from tidewaiter.sigma import SigmaLoadError
from tidewaiter.sinks import Sink
from tidewaiter.sinks.batch import OutputError
from tidewaiter.sinks.jsonl import JsonLinesSink
from tidewaiter.sinks.outputs import add_output_options
from tidewaiter.sinks.spool import Spool, SpooledSink
from tidewaiter.sinks.store import StoreSink
from tidewaiter.sinks.syslog import SyslogError, SyslogTransport, facility, parse_target
from tidewaiter.sinks.webhook import WebhookError, WebhookTransport, check_url, header_values
from tidewaiter.sources import UnknownFormat, all_sources, get
from tidewaiter.sources.base import ReadReport
from tidewaiter.sources.opening import expand, split_member
from tidewaiter.store import Store, StoreError
from tidewaiter.store_socket import TIMEOUT as SOCKET_TIMEOUT
from tidewaiter.store_socket import StoreServer
from tidewaiter.watch import logs
from tidewaiter.watch.checkpoint import Checkpoints
from tidewaiter.watch.config import (
    ConfigError,
    WatchSettings,
    byte_size,
    env_name,
    from_environment,
    listen_address,
    load_file,
    merged,
    name_value,
    unknown_environment,
)
from tidewaiter.watch.delivery import Delivery
from tidewaiter.watch.discovery import Discovery
from tidewaiter.watch.expiry import Expiry
from tidewaiter.watch.follow import FileFollower
from tidewaiter.watch.health import HealthServer
from tidewaiter.watch.http_input import HttpInput
from tidewaiter.watch.inputs import Input
from tidewaiter.watch.metrics import Readiness, WatchCollector
from tidewaiter.watch.once import OnceInput, is_compressed
from tidewaiter.watch.runner import Control, EngineFactory, OnFinding, Runner, Timing
from tidewaiter.watch.status import Status
from tidewaiter.watch.stream import StreamInput, open_fifo


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "watch",
        help="detect continuously in growing files, standard input and Falco's http_output",
        description="Follow telemetry files as they grow (across rotation and truncation), "
        "standard input (-) and Falco http_output POSTs (--listen); deliver alerts as they fire. "
        "Checkpoints in the store let a restarted watch carry on where it stopped. SIGTERM/SIGINT "
        "checkpoint and exit; SIGHUP reloads the configuration (detection settings, suppressions, "
        "catalog, header secrets) keeping the detection state.",
    )
    add_watch_options(parser)
    parser.set_defaults(run=run)


def add_watch_options(parser: argparse.ArgumentParser) -> None:
    formats = ", ".join(s.name for s in all_sources() if s.line_framed)
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files to follow; - for stdin")
    parser.add_argument("--config", metavar="FILE", help="YAML file of settings (flag names)")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the settings, then exit"
    )
    add_format_option(parser, help=f"input format ({formats}); sniffed when left out")
    add_store_option(parser)
    out = parser.add_argument_group("alerts")
    out.add_argument("--out", metavar="FILE", help="append alerts as JSON lines (OCSF) to FILE")
    out.add_argument("--json", action="store_true", help="also write alerts to stdout as JSON")
    out.add_argument("--webhook", metavar="URL", help="POST each alert (OCSF JSON) to URL")
    out.add_argument(
        "--webhook-header-env",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=VAR",
        help="a webhook header whose value is in environment variable VAR (repeatable)",
    )
    out.add_argument(
        "--webhook-header-file",
        type=name_value,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a webhook header whose value is in file PATH (repeatable)",
    )
    out.add_argument("--webhook-timeout", type=seconds, default=10.0, metavar="SECONDS")
    out.add_argument(
        "--syslog", metavar="URL", help="send alerts by syslog: udp://, tcp://HOST:PORT, unix://"
    )
    out.add_argument("--syslog-facility", default="auth", metavar="NAME", type=_facility)
    out.add_argument(
        "--retry-max",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="longest wait between retries of a failing webhook or syslog (default 30)",
    )
    out.add_argument(
        "--spool-max",
        type=byte_size,
        default=256 << 20,
        metavar="BYTES",
        help="undelivered alerts kept per network sink (default 256MiB)",
    )
    add_output_options(parser)
    run = parser.add_argument_group("operation")
    run.add_argument(
        "--sensor",
        action="store_true",
        help="also run the live bpftrace sensor on this host (Linux, root)",
    )
    run.add_argument(
        "--sensor-containers-only",
        action="store_true",
        help="with --sensor: only what runs in containers",
    )
    run.add_argument(
        "--listen",
        type=listen_address,
        metavar="[HOST:]PORT",
        help="accept Falco http_output POSTs here (host defaults to 127.0.0.1)",
    )
    run.add_argument(
        "--journal-max",
        type=byte_size,
        default=256 << 20,
        metavar="BYTES",
        help="received HTTP records not yet read before requests are refused (default 256MiB)",
    )
    run.add_argument("--checkpoint-interval", type=seconds, default=5.0, metavar="SECONDS")
    run.add_argument(
        "--idle-flush",
        type=seconds,
        default=120.0,
        metavar="SECONDS",
        help="decide waiting findings after this long without input (default 120)",
    )
    run.add_argument(
        "--container-ttl",
        type=seconds,
        default=3600.0,
        metavar="SECONDS",
        help="forget a container idle this long in event time (default 3600)",
    )
    run.add_argument(
        "--exit-grace",
        type=seconds,
        default=60.0,
        metavar="SECONDS",
        help="forget a container this long after it stops (default 60)",
    )
    run.add_argument(
        "--max-record",
        type=byte_size,
        default=4 << 20,
        metavar="BYTES",
        help="skip records longer than this, with the reason (default 4MiB)",
    )
    run.add_argument(
        "--from-end", action="store_true", help="start files seen for the first time at their end"
    )
    run.add_argument(
        "--metrics",
        type=listen_address,
        metavar="[HOST:]PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz here (host defaults to "
        "127.0.0.1; off unless given)",
    )
    run.add_argument(
        "--ready-sink-failing",
        type=seconds,
        default=300.0,
        metavar="SECONDS",
        help="/readyz fails when a sink has been failing this long (default 300)",
    )
    run.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        help="messages as JSON lines or text (default: json unless stderr is a terminal)",
    )
    run.add_argument(
        "--status-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="when stderr is not a terminal, print the status line this often (0: at exit only)",
    )
    add_detection_options(parser)


def _facility(text: str) -> str:
    try:
        facility(text)
    except SyslogError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.lower()


def _options_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidewaiter watch", add_help=False)
    add_watch_options(parser)
    return parser


def resolve(
    given: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[argparse.Namespace, WatchSettings]:
    """The settings from the command line, the environment and the --config file, in that
    order of precedence. Raises ConfigError."""
    args, _ = _layered(given, os.environ if environ is None else environ)
    return args, WatchSettings.from_args(args)


def _layered(
    given: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[argparse.Namespace, dict[str, str]]:
    parser = _options_parser()
    config = given.config or environ.get(env_name("config"))
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config:
        layers.append((config, load_file(config)))
    layers.append(("environment", from_environment(parser, environ)))
    return merged(parser, given, layers)


def run(given: argparse.Namespace) -> int:
    console = Console(stderr=True, highlight=False)
    try:
        args, settings = resolve(given)
        if args.check_config:
            _, sources = _layered(given, os.environ)
            return check(args, settings, console, sources)
        _check_sinks(settings)
        store = Store(settings.db)
    except (ConfigError, StoreError, WebhookError, SyslogError, OutputError) as exc:
        console.print(f"tidewaiter: {printable(exc)}", markup=False, soft_wrap=True)
        return exits.USAGE
    try:
        return _watch(given, args, settings, store, console)
    finally:
        store.close()


def _watch(
    given: argparse.Namespace,
    args: argparse.Namespace,
    settings: WatchSettings,
    store: Store,
    console: Console,
) -> int:
    log_format = settings.log_format or logs.default_format(sys.stderr)
    status = Status(console, settings.status_interval, log_format)
    report = ReadReport()
    inputs: list[Input] = []
    sinks: list[tuple[str, Sink]] = []
    try:
        make_engine = _engine_factory(args, store)
        sinks = _sinks(settings, status.say)
        inputs = _inputs(settings, report, status.say)
    except (
        ConfigError,
        SuppressionError,
        CatalogError,
        WebhookError,
        SyslogError,
        SigmaLoadError,
        OutputError,
    ) as exc:
        status.say(str(exc))
        _close(inputs, sinks)
        status.close_quietly()
        return exits.USAGE
    except OSError as exc:
        status.say(f"cannot start: {exc.strerror or exc}")
        _close(inputs, sinks)
        status.close_quietly()
        return exits.USAGE
    delivery = Delivery(sinks, StoreSink(store), status.say)
    collector = WatchCollector() if settings.metrics else None
    runner = Runner(
        make_engine,
        inputs,
        delivery,
        Checkpoints(store),
        status,
        report,
        Expiry(settings.container_ttl, settings.exit_grace),
        Timing(settings.checkpoint_interval, settings.idle_flush),
        notes=lambda: _notes(sinks, inputs),
        collector=collector,
        discovery=_discovery(settings, inputs, report, status.say),
    )

    def reloader() -> EngineFactory:
        new_args, new_settings = resolve(given)
        later = _needs_restart(settings, new_settings)
        if later:
            status.say(f"changed settings that take effect at restart: {', '.join(later)}")
        _refresh_headers(sinks, new_settings)
        load.cache_clear()
        load()  # raises CatalogError for a catalog that does not load: nothing changes then
        return _engine_factory(new_args, store)

    control = Control()
    services: list[StoreServer | HealthServer] = []
    # The handlers stay until shutdown is over: a second SIGTERM or Ctrl-C while the last
    # checkpoint and the sinks are closing asks to stop again; it does not kill the process
    # half-way (SIGKILL still does, and the checkpoint and spools are made for that).
    with _signals(control):
        try:
            services.append(_store_server(store, control, status))
            if collector is not None and settings.metrics is not None:
                host, port = settings.metrics
                ready = Readiness(settings.checkpoint_interval, settings.ready_sink_failing)
                health = HealthServer(host, port, collector, ready)
                services.append(health)
                status.say(f"serving /metrics, /healthz and /readyz on {health.address}")
            runner.run(control, reloader)
        except OSError as exc:
            status.say(f"cannot start: {exc.strerror or exc}")
            return exits.USAGE
        finally:
            for service in services:
                service.close()
            for source in inputs:
                source.close()
            delivery.close()
            status.close(runner.figures())
    return exits.OK


def _store_server(store: Store, control: Control, status: Status) -> StoreServer:
    """The store for the analyst's commands while this watch holds it; a suppression added or
    removed through it is in the engine before the command returns."""

    def changed() -> None:
        control.reload_and_wait(SOCKET_TIMEOUT - 10)

    server = StoreServer(store, changed, status.say)
    status.say(f"serving the store to other tidewaiter commands on {server.path}")
    return server


def _engine_factory(args: argparse.Namespace, store: Store) -> EngineFactory:
    config = engine_config(args, store)
    catalog = load()

    def make(on_finding: OnFinding, on_suppressed: OnFinding) -> Engine:
        return Engine(on_finding, config, catalog, on_suppressed=on_suppressed)

    return make


def _check_sinks(settings: WatchSettings) -> None:
    if settings.webhook:
        check_url(settings.webhook)
        header_values(settings.webhook_headers_env, settings.webhook_headers_file)
    if settings.syslog:
        parse_target(settings.syslog)
    settings.outputs.transports()  # URLs and secrets


def _sinks(settings: WatchSettings, say: Callable[[str], None]) -> list[tuple[str, Sink]]:
    sinks: list[tuple[str, Sink]] = []
    if settings.out:
        try:
            sinks.append(("out", JsonLinesSink.to_path(settings.out, sync=False, dedupe=True)))
        except OSError as exc:
            raise ConfigError(f"cannot write {settings.out}: {exc.strerror or exc}") from None
    if settings.json:
        sinks.append(("stdout", JsonLinesSink(sys.stdout.buffer)))
    spools = settings.state_dir
    backoff = (min(0.5, settings.retry_max), settings.retry_max)
    if settings.webhook:
        headers = header_values(settings.webhook_headers_env, settings.webhook_headers_file)
        transport = WebhookTransport(settings.webhook, headers, settings.webhook_timeout)
        spool = Spool(spools / "webhook", settings.spool_max)
        sinks.append(("webhook", SpooledSink("webhook", spool, transport, say, backoff)))
    if settings.syslog:
        syslog = SyslogTransport(settings.syslog, settings.syslog_facility)
        spool = Spool(spools / "syslog", settings.spool_max)
        sinks.append(("syslog", SpooledSink("syslog", spool, syslog, say, backoff)))
    for siem in settings.outputs.transports(settings.webhook_timeout):
        spool = Spool(spools / siem.label, settings.spool_max)
        sinks.append((siem.label, SpooledSink(siem.label, spool, siem, say, backoff)))
    sinks.extend(settings.outputs.csv_sinks())
    return sinks


def _inputs(settings: WatchSettings, report: ReadReport, say: Callable[[str], None]) -> list[Input]:
    if settings.fmt:
        try:
            get(settings.fmt)
        except UnknownFormat as exc:
            raise ConfigError(str(exc)) from None
    inputs: list[Input] = []
    expanded = expand(settings.paths)  # folders and globs as they are now
    for problem in expanded.problems:
        say(problem)
    for path in expanded.files:
        inputs.append(_file_input(path, settings, report, say, settings.from_end))
    if settings.listen is not None:
        host, port = settings.listen
        receiver = HttpInput(
            host,
            port,
            settings.state_dir,
            report,
            say,
            settings.max_record,
            settings.journal_max,
        )
        say(f"listening for Falco http_output on {receiver.address}")
        inputs.append(receiver)
    if settings.sensor:
        inputs.append(_sensor(settings, say))
    return inputs


def _file_input(
    path: str, settings: WatchSettings, report: ReadReport, say: Callable[[str], None], end: bool
) -> Input:
    """The input for one path: standard input, a FIFO, a finished (compressed) file or a
    followed one, from its end with ``end`` (--from-end, for files there at start)."""
    if path == "-":
        return StreamInput(sys.stdin.fileno(), "-", report, say, settings.max_record)
    if (fifo := open_fifo(path)) is not None:
        return StreamInput(fifo, path, report, say, settings.max_record, settings.fmt, owned=True)
    if is_compressed(path) or split_member(path) is not None:
        # a rotated .gz or a zip's member: finished, so read once and not followed
        return OnceInput(path, report, say, settings.max_record, settings.fmt)
    return FileFollower(path, report, say, settings.max_record, settings.fmt, from_end=end)


def _discovery(
    settings: WatchSettings, inputs: list[Input], report: ReadReport, say: Callable[[str], None]
) -> Discovery | None:
    """New files in the watched folders and globs; one appearing after start is new, so it is
    read from its first line whatever --from-end says."""
    discovery = Discovery(
        settings.paths,
        lambda path: _file_input(path, settings, report, say, end=False),
        say,
        watched=[i.name for i in inputs],
    )
    return discovery if discovery.active else None


def _sensor(settings: WatchSettings, say: Callable[[str], None]) -> Input:
    """The live sensor as one more input: not resumable (a restart watches from now on)."""
    from tidewaiter.sensor.prereqs import sensor_missing
    from tidewaiter.sensor.runner import SensorError
    from tidewaiter.sensor.stream import SensorInput

    missing = sensor_missing()
    if missing is not None:
        raise ConfigError(missing)
    sensor = SensorInput(containers_only=settings.sensor_containers_only)
    try:
        sensor.start()
    except SensorError as exc:
        raise ConfigError(str(exc)) from None
    say("the live sensor is attached")
    return sensor


def _notes(sinks: list[tuple[str, Sink]], inputs: list[Input]) -> list[str]:
    notes: list[str] = []
    for name, sink in sinks:
        if isinstance(sink, SpooledSink):
            waiting = sink.spool.pending
            if sink.failing is not None:
                notes.append(f"{name} failing, {waiting} queued")
            elif waiting:
                notes.append(f"{name} {waiting} queued")
            if sink.lost:
                notes.append(f"{name} {sink.lost} alerts LOST (spool full or unwritable)")
            if sink.refused:
                notes.append(f"{name} {sink.refused} alerts refused by the receiver")
    for source in inputs:
        if isinstance(source, HttpInput):
            stats = source.stats
            if stats.refused:
                notes.append(f"http {stats.refused} requests refused (behind)")
            if stats.rejected:
                notes.append(f"http {stats.rejected} records rejected")
            if stats.too_large:
                notes.append(f"http {stats.too_large} requests too large (413)")
            if stats.busy:
                notes.append(f"http {stats.busy} requests refused (too many at once)")
            if stats.failed:
                notes.append(f"http {stats.failed} requests failed (journal not writable)")
    return notes


def _needs_restart(running: WatchSettings, new: WatchSettings) -> list[str]:
    """Inputs, sinks and timings are built once; a reload changes detection and secrets only."""
    reloaded = {"webhook_headers_env", "webhook_headers_file"}
    return [
        name.replace("_", "-")
        for name in running.__dataclass_fields__
        if name not in reloaded and getattr(running, name) != getattr(new, name)
    ]


def _refresh_headers(sinks: list[tuple[str, Sink]], settings: WatchSettings) -> None:
    for _, sink in sinks:
        if isinstance(sink, SpooledSink) and isinstance(sink.transport, WebhookTransport):
            sink.transport.headers = header_values(
                settings.webhook_headers_env, settings.webhook_headers_file
            )
        elif isinstance(sink, SpooledSink):
            settings.outputs.refresh(sink.transport)


def _close(inputs: list[Input], sinks: list[tuple[str, Sink]]) -> None:
    for source in inputs:
        source.close()
    for _, sink in sinks:
        sink.close()


@contextmanager
def _signals(control: Control) -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        control.request_stop()

    def reload(signum: int, frame: FrameType | None) -> None:
        control.request_reload()

    wanted = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
    previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def check(
    args: argparse.Namespace,
    settings: WatchSettings,
    console: Console,
    sources: Mapping[str, str] | None = None,
) -> int:
    """--check-config: everything that can be checked without starting, then exit."""
    problems: list[str] = []
    for step in (
        lambda: engine_config(args),
        load,
        lambda: _check_sinks(settings),
        lambda: get(settings.fmt) if settings.fmt else None,
    ):
        try:
            step()
        except (
            SuppressionError,
            CatalogError,
            WebhookError,
            SyslogError,
            UnknownFormat,
            SigmaLoadError,
            OutputError,
        ) as exc:
            problems.append(str(exc))
    problems += expand(settings.paths).problems
    if settings.db.parent.is_dir() and not os.access(settings.db.parent, os.W_OK):
        problems.append(f"the store's folder {settings.db.parent} is not writable")
    for problem in problems:
        console.print(f"tidewaiter: {printable(problem)}", markup=False, soft_wrap=True)
    if problems:
        return exits.USAGE
    summary = ", ".join(settings.paths) or "no files"
    if settings.listen:
        summary += f"; listening on {settings.listen[0]}:{settings.listen[1]}"
    sinks = [
        n
        for n, on in (
            ("out", settings.out),
            ("webhook", settings.webhook),
            ("syslog", settings.syslog),
        )
        if on
    ]
    console.print(
        f"tidewaiter: configuration OK: watching {summary}; store {settings.db}; "
        f"sinks: {', '.join(['store', *sinks, *settings.outputs.names])}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "the effective settings (flag > environment > file > default):",
        markup=False,
        highlight=False,
    )
    for line in effective(args, sources or {}, os.environ):
        console.print(printable(line), markup=False, highlight=False, soft_wrap=True)
    return exits.OK


def effective(
    args: argparse.Namespace, sources: Mapping[str, str], environ: Mapping[str, str]
) -> list[str]:
    """One line per setting: name, value (secrets masked) and where it came from."""
    lines = []
    keys = sorted(_keys(_options_parser()).items())
    width = max(len(key) for key, _ in keys)
    for key, dest in keys:
        value = mask(key, getattr(args, dest), environ)
        lines.append(f"  {key:<{width}}  {value}  ({sources.get(dest, 'default')})")
    for name in unknown_environment(_options_parser(), environ):
        lines.append(f"  note: {name} is set but names no setting of watch; it is ignored")
    return lines


def _keys(parser: argparse.ArgumentParser) -> dict[str, str]:
    keys: dict[str, str] = {}
    for action in parser._actions:
        if action.dest in ("help", "config", "check_config"):
            continue
        longs = [o[2:] for o in action.option_strings if o.startswith("--")]
        keys[longs[0] if longs else action.dest] = action.dest
    return keys


def mask(key: str, value: Any, environ: Mapping[str, str]) -> str:
    """A setting as --check-config shows it: never a secret. A webhook URL's path and query
    (which carry the token of many webhook services) are masked; a header from the environment
    shows the variable's name and whether it is set, never its value."""
    if value is None or value in ([], ()):
        return "-"
    if key == "webhook":
        parts = urlsplit(str(value))
        hidden = "/****" if parts.path.strip("/") or parts.query else parts.path
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{hidden}"
    if key == "webhook-header-env":
        return ", ".join(
            f"{name} from ${var} ({'set' if var in environ else 'NOT SET'})" for name, var in value
        )
    if key == "webhook-header-file":
        return ", ".join(f"{name} from {path}" for name, path in value)
    if isinstance(value, tuple) and len(value) == 2 and key in ("listen", "metrics"):
        return f"{value[0]}:{value[1]}"
    if isinstance(value, list):
        return ", ".join("=".join(i) if isinstance(i, tuple) else str(i) for i in value)
    return str(value)
