"""Scenarios run in real containers with the real sensor watching, data sent to a real sink in
its own network namespace; then detection on what the sensor saw. Each run must also leave
nothing behind: no namespace, mount, cgroup, process or folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidewaiter.alerts import alert_container
from tidewaiter.emulate import container as container_module
from tidewaiter.emulate import live as live_module
from tidewaiter.emulate.live import LiveResult, Recorder, run_live
from tidewaiter.emulate.netns import namespaces
from tidewaiter.emulate.scenario import Scenario, get, load_all
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sensor.runner import Sensor

LIVE = [pytest.param(s, id=s.id) for s in load_all() if s.live_capable]
CGROUPS = Path("/sys/fs/cgroup")


def explain(result: LiveResult) -> str:
    lines = [f"{c.label}: {c.what}: {c.detail}" for c in result.verdict.checks]
    lines += [f"problem: {p}" for p in result.problems]
    lines += [f"step {s.phase} {s.executed.status}: {s.command} {s.executed.stderr[-300:]}"
              for s in result.steps]  # fmt: skip
    return "\n".join(lines)


def assert_nothing_left(result: LiveResult) -> None:
    """This run's namespaces, cgroups, mounts and folder are gone (other runs may be going on)."""
    assert result.run_id
    assert result.run_dir is not None
    mine = f"tw-{result.run_id[:8]}-"
    assert not [n for n in namespaces() if n.startswith(mine)], "network namespaces left"
    if result.container_id:
        leftover = [str(p) for p in CGROUPS.glob(f"*/**/*{result.container_id}")]
        assert not leftover, f"cgroups left: {leftover}"
    with open("/proc/self/mounts") as mounts:
        assert str(result.run_dir) not in mounts.read(), "the run's overlay is still mounted"
    assert not result.run_dir.exists(), "the run's folder is still there"


@pytest.mark.parametrize("scenario", LIVE)
def test_scenario_passes_live(scenario: Scenario, shared_sensor: tuple[Sensor, Recorder]) -> None:
    result = run_live(scenario, shared=shared_sensor)
    assert result.passed, explain(result)
    for check in result.verdict.checks:
        if check.gap is not None:
            assert not check.passed, f"gap closed, remove its mark: {check.gap}"
    assert_nothing_left(result)


def test_ads_linux_tar_is_seen_and_detected_for_its_container(
    shared_sensor: tuple[Sensor, Recorder],
) -> None:
    """The issue's definition of done: the sensor saw `tar -czf` in the container and the send
    to the sink, and tw-archive-exfil fired for that container id."""
    result = run_live(get("ads-linux-tar"), shared=shared_sensor)
    assert result.passed, explain(result)
    cid = result.container_id
    assert len(cid) == 64
    tars = [
        r for r in result.records if r.event == "exec" and r.argv and r.argv[:2] == ("tar", "-czf")
    ]
    assert tars
    assert all(r.container_id == cid for r in tars)
    sends = [r for r in result.records if r.event == "send" and r.daddr == "10.213.0.2"]
    assert sends
    assert sum(r.bytes or 0 for r in sends) >= result.sink_bytes > 100_000
    exfil = [a for a in result.alerts if a["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"]
    assert [alert_container(a)["uid"] for a in exfil] == [cid]
    assert exfil[0]["severity_id"] >= 4


def test_a_run_that_fails_half_way_undoes_everything(
    shared_sensor: tuple[Sensor, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[int] = []
    original_stop = live_module._stop_process

    def stop(process: subprocess.Popen[bytes]) -> None:
        stopped.append(process.pid)
        original_stop(process)

    def broken_start(self: container_module.RuncContainer) -> None:
        self.started = True
        raise container_module.ContainerError("runc run failed: injected")

    monkeypatch.setattr(live_module, "_stop_process", stop)
    monkeypatch.setattr(container_module.RuncContainer, "start", broken_start)
    result = run_live(get("upload-tcp-nc-pipe"), shared=shared_sensor)
    assert not result.passed
    assert any("injected" in p for p in result.problems)
    [sink] = stopped  # the sink had started, and was stopped by its pid
    with pytest.raises(ProcessLookupError):
        os.kill(sink, 0)
    assert_nothing_left(result)


def test_the_sensor_command_is_a_line_stream_detection_reads(
    shared_sensor: tuple[Sensor, Recorder], tmp_path: Path
) -> None:
    """`tidewaiter sensor | tidewaiter detect -`: the command's stdout is the sensor format."""
    output = tmp_path / "sensor.jsonl"
    with output.open("wb") as stream:
        sensor = subprocess.Popen(
            [sys.executable, "-m", "tidewaiter", "sensor", "--containers-only"],
            stdout=stream,
            stderr=subprocess.PIPE,
        )
        try:
            assert sensor.stderr is not None
            attached = sensor.stderr.readline().decode()
            assert attached.startswith("sensor attached"), attached
            result = run_live(get("upload-tcp-nc-pipe"), shared=shared_sensor)
            assert result.passed, explain(result)
            time.sleep(1.5)  # the command folds sends for a second before it prints them
        finally:
            sensor.send_signal(signal.SIGINT)
            _, errors = sensor.communicate(timeout=30)
    assert sensor.returncode == 0, errors.decode()
    assert b"sensor stopped:" in errors
    outcome = detect_files([str(output)], EngineConfig(external_cidrs=("10.213.0.2/32",)), [])
    assert outcome.report.files[str(output)] == "sensor"
    assert outcome.report.skipped_total == 0
    mine = [a for a in outcome.alerts if alert_container(a).get("uid") == result.container_id]
    assert [a["finding_info"]["analytic"]["uid"] for a in mine] == ["tw-archive-exfil"]


def test_podman_with_runc_runs_a_scenario(shared_sensor: tuple[Sensor, Recorder]) -> None:
    if not container_module.podman_available():
        pytest.skip("podman is not installed (optional: runc is the runtime the suite needs)")
    result = run_live(get("upload-tcp-nc-pipe"), shared=shared_sensor, runtime="podman")
    assert result.passed, explain(result)
    assert_nothing_left(result)


def test_the_sensor_as_a_watch_input_yields_the_container_s_events(
    shared_sensor: tuple[Sensor, Recorder],
) -> None:
    from tidewaiter.events import Kind
    from tidewaiter.sensor.stream import SensorInput

    live = SensorInput(containers_only=True)
    live.start()
    try:
        result = run_live(get("atomic-t1560.001-tar"), shared=shared_sensor)
        assert result.passed, explain(result)
        live.sensor.flush()
        events = live.poll(budget=1 << 24)
    finally:
        live.close()
    mine = [e for e in events if e.container and e.container.uid == result.container_id]
    commands = [e.process.args for e in mine if e.kind is Kind.PROCESS and e.process]
    assert ("tar", "-cvzf", "/root/data.tar.gz", "/root/atomic") in commands
    assert live.finished


def test_watch_with_the_sensor_alerts_live_for_the_container(
    shared_sensor: tuple[Sensor, Recorder], tmp_path: Path
) -> None:
    """`tidewaiter watch --sensor`: detection runs live on this host and the alert names the
    container the scenario ran in."""
    alerts = tmp_path / "alerts.jsonl"
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidewaiter",
            "watch",
            "--sensor",
            "--sensor-containers-only",
            "--db",
            str(tmp_path / "tw.duckdb"),
            "--out",
            str(alerts),
            "--external",
            "10.213.0.2/32",
            "--idle-flush",
            "2",
            "--checkpoint-interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert watch.stderr is not None
        deadline = time.monotonic() + 60
        seen = b""
        while b"sensor is attached" not in seen and time.monotonic() < deadline:
            line = watch.stderr.readline()
            if not line:
                break
            seen += line
        assert b"sensor is attached" in seen, seen.decode(errors="replace")
        result = run_live(get("ads-linux-tar"), shared=shared_sensor)
        assert result.passed, explain(result)
        mine: list[dict[str, object]] = []
        deadline = time.monotonic() + 90
        while not mine and time.monotonic() < deadline:
            time.sleep(0.5)
            lines = alerts.read_text().splitlines() if alerts.exists() else []
            mine = [
                a
                for a in map(json.loads, lines)
                if alert_container(a).get("uid") == result.container_id
            ]
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.communicate(timeout=60)
    assert [a["finding_info"]["analytic"]["uid"] for a in mine] == ["tw-archive-exfil"]  # type: ignore[index]
    assert watch.returncode == 0
