"""Run a scenario live: a real container, a real sink, the real sensor, then detection.

Order of a run, each step's undo registered before the step so that a failure anywhere still
undoes everything: a run folder; the root filesystem (fresh busybox, or the cached Debian one
through an overlay); the two network namespaces; the sink, listening in its namespace; the
container, joined to its namespace; the scenario's setup, procedure and cleanup, each a
`runc exec` of its shell; then detection over what the sensor saw of that container, from the
first procedure step to a marker exec'd after the last one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tidewaiter.emulate import netns, rootfs
from tidewaiter.emulate.container import (
    Executed,
    PodmanContainer,
    RuncContainer,
    podman_available,
)
from tidewaiter.emulate.scenario import Scenario, Step, fill, load_all
from tidewaiter.emulate.verdict import Check, Target, Verdict, judge
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sensor.prereqs import missing_root, missing_tool, sensor_missing
from tidewaiter.sensor.runner import Sensor
from tidewaiter.sensor.schema import ENCODER, SensorRecord

Runtime = Literal["runc", "podman"]
SHELLS = {"sh": "/bin/sh", "bash": "/bin/bash"}
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LANG": "C.UTF-8",
}
SINK_READY_TIMEOUT = 15.0
SYNC_TIMEOUT = 15.0
SETTLE = 0.3  # seconds after the marker for records still in other CPUs' buffers
STOP_TIMEOUT = 5.0


class LiveUnavailable(Exception):
    """Live emulation cannot run on this host; the message says what is missing."""


@dataclass(frozen=True)
class StepRun:
    phase: str  # setup, procedure, cleanup
    command: str
    executed: Executed


@dataclass
class LiveResult:
    scenario: Scenario
    runtime: str
    run_id: str = ""  # names the run's namespaces (tw-<first 8>-c, -s)
    run_dir: Path | None = None
    container_id: str = ""
    host: str = ""
    verdict: Verdict = field(default_factory=lambda: Verdict(()))
    alerts: list[dict[str, Any]] = field(default_factory=list)
    records: list[SensorRecord] = field(default_factory=list)
    steps: list[StepRun] = field(default_factory=list)
    sink_bytes: int = 0
    sink_connections: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # failed steps, leftovers, a lost sync

    @property
    def passed(self) -> bool:
        return self.verdict.passed and not self.problems


def live_missing(scenario: Scenario, runtime: Runtime = "runc") -> str | None:
    """Why this scenario cannot run live here, in one sentence; None when it can."""
    if not scenario.live_capable:
        where = ", ".join(scenario.platforms)
        return f"{scenario.id} is a {where} scenario: replay it with --write instead"
    problems = [
        p
        for p in (
            missing_root(),
            missing_tool("runc") if runtime == "runc" else None,
            missing_tool("podman") if runtime == "podman" else None,
            missing_tool("ip", "iproute2"),
            missing_tool("mount", "mount"),
        )
        if p
    ]
    if scenario.rootfs == "busybox" and rootfs.static_busybox() is None:
        problems.append("a static busybox is not installed (apt-get install busybox-static)")
    if scenario.rootfs == "debian" and not _cached_debian(scenario):
        problem = missing_tool("debootstrap")
        if problem:
            problems.append(problem)
    if not problems:
        sensor = sensor_missing()
        if sensor:
            problems.append(sensor.removeprefix("The sensor cannot run: ").rstrip("."))
    if not problems:
        return None
    return "Live emulation cannot run here: " + "; ".join(problems) + "."


def debian_packages(scenarios: tuple[Scenario, ...]) -> tuple[str, ...]:
    """One Debian rootfs serves every scenario: the union of their packages."""
    return tuple(sorted({p for s in scenarios if s.rootfs == "debian" for p in s.packages}))


def _cached_debian(scenario: Scenario) -> bool:
    packages = debian_packages(load_all()) or scenario.packages
    key = rootfs.debian_key(packages, rootfs.suite(), rootfs.mirror())
    return (rootfs.cache_dir() / f"debian-{key}" / ".tidewaiter-complete").is_file()


class Recorder:
    """Routes a (possibly shared) sensor's records to the runs watching their containers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, list[SensorRecord]] = {}

    def __call__(self, record: SensorRecord) -> None:
        if record.container_id is None:
            return
        with self._lock:
            bucket = self._open.get(record.container_id)
            if bucket is not None:
                bucket.append(record)

    def watch(self, container_id: str) -> None:
        with self._lock:
            self._open[container_id] = []

    def take(self, container_id: str) -> list[SensorRecord]:
        with self._lock:
            return self._open.pop(container_id, [])


@contextmanager
def live_sensor() -> Iterator[tuple[Sensor, Recorder]]:
    """One sensor for many runs (attaching costs seconds; a run costs about one)."""
    recorder = Recorder()
    sensor = Sensor(recorder, containers_only=True)
    sensor.start()
    try:
        yield sensor, recorder
    finally:
        sensor.stop()


def run_live(
    scenario: Scenario,
    *,
    shared: tuple[Sensor, Recorder] | None = None,
    runtime: Runtime = "runc",
    keep: Path | None = None,
    packages: tuple[str, ...] | None = None,
) -> LiveResult:
    """Run one scenario live. Raises LiveUnavailable when the host cannot; any other failure
    is reported in the result's problems, after everything the run started was undone."""
    missing = live_missing(scenario, runtime)
    if missing:
        raise LiveUnavailable(missing)
    if runtime == "podman" and not podman_available():
        raise LiveUnavailable("Live emulation cannot run here: podman is not installed.")
    result = LiveResult(scenario, runtime)
    started = time.monotonic()
    with ExitStack() as stack:
        if shared is None:
            shared = stack.enter_context(live_sensor())
        sensor, recorder = shared
        result.host = sensor.host
        try:
            _run(scenario, stack, sensor, recorder, result, runtime, keep, packages)
        except Exception as exc:  # undone by the stack; reported, never hidden
            result.problems.append(f"{type(exc).__name__}: {exc}")
    result.timings["total"] = time.monotonic() - started
    return result


def _run(
    scenario: Scenario,
    stack: ExitStack,
    sensor: Sensor,
    recorder: Recorder,
    result: LiveResult,
    runtime: Runtime,
    keep: Path | None,
    packages: tuple[str, ...] | None,
) -> None:
    clock = _Clock(result.timings)
    run_id = secrets.token_hex(32)
    run_dir = Path(tempfile.mkdtemp(prefix="tidewaiter-emulate-"))
    result.run_id, result.run_dir = run_id, run_dir
    stack.callback(_remove_run_dir, run_dir, result)
    with clock("rootfs"):
        root = _rootfs(scenario, run_dir, stack, packages)
        rootfs.place_files(root, scenario.files)
    with clock("network"):
        network = netns.create(run_id, stack)
    sink_report = run_dir / "sink.jsonl"
    with clock("sink"):
        _start_sink(scenario, network, sink_report, run_dir, stack)
    env = {**BASE_ENV, **scenario.env}
    container: RuncContainer | PodmanContainer
    if runtime == "podman":
        container = PodmanContainer(
            run_id, root, run_dir / "podman", network.container_ns_path, env
        )
    else:
        container = RuncContainer(run_id, root, run_dir / "bundle", network.container_ns_path, env)
    stack.callback(_stop_container, container, result)
    with clock("container"):
        container.start()
    result.container_id = container.id
    sensor.register_cgroup(container.cgroup)
    recorder.watch(container.id)
    values = {"sink": network.sink_ip}
    if scenario.sink is not None:
        values["port"] = str(scenario.sink.port)
        values["url"] = f"http://{network.sink_ip}:{scenario.sink.port}/upload"
    with clock("setup"):
        _steps("setup", scenario.setup, container, env, values, result)
    marker = f"tw-sync-{secrets.token_hex(8)}"
    seen = sensor.expect(marker)
    with clock("procedure"):
        _steps("procedure", scenario.commands, container, env, values, result)
        container.exec(["/bin/echo", marker], env)
        if not seen.wait(SYNC_TIMEOUT):
            result.problems.append("the sensor never saw the end-of-procedure marker")
        time.sleep(SETTLE)
        sensor.flush()
    result.records = _before_marker(recorder.take(container.id), marker)
    with clock("cleanup"):
        _steps("cleanup", scenario.cleanup, container, env, values, result)
    if scenario.sink is not None:
        result.sink_bytes, result.sink_connections = _sink_totals(sink_report)
    with clock("detection"):
        _detect(scenario, result, values, run_dir, keep)


class _Clock:
    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self._timings[phase] = time.monotonic() - started


def _rootfs(
    scenario: Scenario, run_dir: Path, stack: ExitStack, packages: tuple[str, ...] | None
) -> Path:
    if scenario.rootfs == "busybox":
        target = run_dir / "rootfs"
        rootfs.build_busybox(target)
        return target
    lower = rootfs.debian_rootfs(packages or debian_packages(load_all()) or scenario.packages)
    merged = run_dir / "rootfs"
    stack.callback(rootfs.unmount, merged)
    return rootfs.mount_overlay(lower, run_dir)


def _start_sink(
    scenario: Scenario, network: netns.Network, report: Path, run_dir: Path, stack: ExitStack
) -> None:
    sink = scenario.sink
    if sink is None:
        return
    log = (run_dir / "sink.log").open("wb")
    stack.callback(log.close)
    command = ["ip", "netns", "exec", network.sink_ns, sys.executable, "-m"]
    command += ["tidewaiter.emulate.sink", "--protocol", sink.protocol]
    command += ["--address", network.sink_ip, "--port", str(sink.port), "--report", str(report)]
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    stack.callback(_stop_process, process)
    deadline = time.monotonic() + SINK_READY_TIMEOUT
    while time.monotonic() < deadline:
        if report.is_file() and '"ready": true' in report.read_text():
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    output = (run_dir / "sink.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise RuntimeError(f"the sink did not start: {' '.join(output) or 'no output'}")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this run started, by its pid: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait()


def _stop_container(container: RuncContainer | PodmanContainer, result: LiveResult) -> None:
    left = container.stop()
    if left:
        result.problems.append(f"cgroups left behind: {', '.join(left)}")


def _remove_run_dir(run_dir: Path, result: LiveResult) -> None:
    merged = run_dir / "rootfs"
    if os.path.ismount(merged):  # never delete through a mount that failed to come off
        result.problems.append(f"{merged} is still mounted; left in place")
        return
    shutil.rmtree(run_dir, ignore_errors=True)


def _steps(
    phase: str,
    steps: tuple[Step, ...],
    container: RuncContainer | PodmanContainer,
    env: dict[str, str],
    values: dict[str, str],
    result: LiveResult,
) -> None:
    for step in steps:
        if step.existing is not None or step.shell not in SHELLS:
            continue  # a host-side process (synthetic only): nothing to run in a container
        command = fill(step.run, values)
        executed = container.exec([SHELLS[step.shell], "-c", command], env)
        result.steps.append(StepRun(phase, command, executed))
        if executed.status != 0 and phase != "cleanup":
            error = (executed.stderr.strip().splitlines() or ["no error output"])[-1]
            result.problems.append(
                f"{phase} step exited with status {executed.status}: {command[:80]!r}: {error}"
            )


def _before_marker(records: list[SensorRecord], marker: str) -> list[SensorRecord]:
    """What happened before the marker exec, by event time: records can arrive after it (sends
    folded until the flush, other CPUs' buffers), and still belong to the procedure."""
    end = next((r.time for r in records if r.event == "exec" and r.argv and marker in r.argv), None)
    if end is None:
        return records
    return sorted((r for r in records if r.time < end), key=lambda r: r.time)


def _sink_totals(report: Path) -> tuple[int, int]:
    total = connections = 0
    try:
        lines = report.read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        entry = json.loads(line)
        if "bytes" in entry:
            total += int(entry["bytes"])
            connections += 1
    return total, connections


def _detect(
    scenario: Scenario,
    result: LiveResult,
    values: dict[str, str],
    run_dir: Path,
    keep: Path | None,
) -> None:
    telemetry = run_dir / "telemetry.sensor.jsonl"
    with telemetry.open("wb") as stream:
        for record in result.records:
            stream.write(ENCODER.encode(record) + b"\n")
    public = scenario.sink is not None and scenario.sink.public
    config = EngineConfig(external_cidrs=(f"{values['sink']}/32",) if public else ())
    outcome = detect_files([str(telemetry)], config, [], fmt="sensor")
    result.alerts = outcome.alerts
    if outcome.report.skipped_total:
        result.problems.append(f"unreadable sensor records: {outcome.report.summary()}")
    target = Target(result.container_id, result.host)
    detection = judge(scenario, outcome.alerts, target, "live")
    seen = sensor_checks(scenario, result.records, values, result.sink_bytes)
    result.verdict = Verdict((*seen, *detection.checks))
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy2(telemetry, keep / f"{scenario.id}.sensor.jsonl")
        with (keep / f"{scenario.id}.alerts.jsonl").open("w") as stream:
            for alert in outcome.alerts:
                stream.write(json.dumps(alert) + "\n")


def sensor_checks(
    scenario: Scenario, records: list[SensorRecord], values: dict[str, str], sink_bytes: int
) -> list[Check]:
    """What the sensor must have seen for detection to be judged at all: each procedure step's
    command run in the container and, where a step sends, the bytes leaving for the sink."""
    checks = []
    for step in scenario.commands:
        if step.existing is not None or step.shell not in SHELLS:
            continue
        command = fill(step.run, values)
        seen = any(_runs(record, command) for record in records)
        short = " ".join(command.split())
        short = short if len(short) <= 60 else short[:57] + "..."
        detail = "exec seen" if seen else "no exec of that command line in the container"
        checks.append(Check(f"the sensor saw `{short}` in the container", seen, detail))
    if any(step.sends for step in scenario.commands) and "port" in values:
        sent = sum(
            r.bytes or 0
            for r in records
            if r.event == "send" and r.daddr == values["sink"] and r.dport == int(values["port"])
        )
        # What the container wrote to its sockets includes protocol headers: at least what
        # the sink received.
        good = sent > 0 and sent >= sink_bytes
        checks.append(
            Check(
                f"the sensor saw the data sent to the sink {values['sink']}:{values['port']}",
                good,
                f"{sent} bytes sent by the container, {sink_bytes} received by the sink",
            )
        )
    return checks


def _runs(record: SensorRecord, command: str) -> bool:
    argv = record.argv
    if record.event != "exec" or not argv or len(argv) < 3 or argv[-2] != "-c":
        return False
    if argv[-1] == command:
        return True
    return record.argv_truncated and command.startswith(argv[-1])
