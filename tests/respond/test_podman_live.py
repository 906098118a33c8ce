"""`tidewaiter respond --execute` against a real runtime: Podman's Docker-compatible API service,
real containers on a real (namespaced) bridge network. What is asserted is read back through the
API and from the kernel (/proc/PID/net/dev of the container's process), not from tidewaiter's
own report. Skipped with the reason when Podman or root is missing; required when CI is set."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.respond import telemetry
from tests.respond.podman import IMAGE, Podman, missing_requirements, podman_service
from tidewaiter.alerts import alert_container
from tidewaiter.cli.main import main
from tidewaiter.store import Store


@pytest.fixture(scope="module")
def podman() -> Iterator[Podman]:
    why = missing_requirements()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {why}")
        pytest.skip(why)
    with podman_service() as service:
        yield service


def _alert_for(
    podman: Podman, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, dict[str, Any], Path]:
    container_id = podman.start_container(name)
    db = tmp_path / "tw.duckdb"
    records = telemetry.write(tmp_path / "tetragon.jsonl", telemetry.chain(container_id))
    alert = telemetry.detect_into(db, records, capsys)
    assert container_id.startswith(alert_container(alert)["uid"])
    return container_id, alert, db


def _respond(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["respond", *args, "--json"])
    out = capsys.readouterr().out
    return code, orjson.loads(out)


def _interfaces(pid: int) -> list[str]:
    """The network interfaces the kernel shows inside the process's network namespace."""
    lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def _results(payload: dict[str, Any]) -> dict[str, str]:
    return {r["kind"]: r["result"] for r in payload["results"]}


def test_execute_pauses_and_disconnects_a_real_container_and_a_second_run_changes_nothing(
    podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, alert, db = _alert_for(podman, "tw-victim", tmp_path, capsys)
    api = podman.client()
    before = api.inspect_container(cid)
    pid = before["State"]["Pid"]
    assert before["State"]["Running"]
    assert list(before["NetworkSettings"]["Networks"]) == [podman.network]
    assert "eth0" in _interfaces(pid)
    uid = alert["finding_info"]["uid"]
    args = [uid[:12], "--db", str(db), "--execute", "--yes", "--docker-host", podman.url]

    code, first = _respond(capsys, *args)

    assert code == 0, first
    assert [a["kind"] for a in first["actions"]] == ["disconnect", "pause", "stop"]
    assert _results(first) == {"disconnect": "changed", "pause": "changed", "stop": "manual"}
    after = api.inspect_container(cid)
    assert after["State"]["Paused"] is True
    assert not after["NetworkSettings"]["Networks"]
    assert _interfaces(pid) == ["lo"]  # the kernel agrees: only loopback is left

    code, second = _respond(capsys, *args)

    assert code == 0, second
    assert _results(second) == {"disconnect": "unchanged", "pause": "unchanged", "stop": "manual"}
    again = api.inspect_container(cid)
    assert again["State"]["Paused"] is True
    assert again["State"]["Pid"] == pid  # same process, still frozen, not restarted
    with Store(db) as store:
        audit = store.audit(uid)
    assert [(e["action"], e["result"]) for e in audit] == [
        ("disconnect", "changed"),
        ("pause", "changed"),
        ("stop", "manual"),
        ("disconnect", "unchanged"),
        ("pause", "unchanged"),
        ("stop", "manual"),
    ]
    assert all(e["target"] == f"container {cid}" for e in audit)
    assert all(e["actor"] and e["detail"]["runtime"] == podman.url for e in audit)
    lines = (tmp_path / "tw.audit.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["seq"] for line in lines] == [e["seq"] for e in audit]


def test_protected_image_is_refused_until_forced(
    podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, alert, db = _alert_for(podman, "tw-protected", tmp_path, capsys)
    protected = tmp_path / "protected.yaml"
    # The alert names no image: only the runtime's answer can say the workload is protected.
    protected.write_text(f"images: ['{IMAGE.split(':')[0]}*']\n")
    uid = alert["finding_info"]["uid"]
    args = [uid, "--db", str(db), "--execute", "--yes", "--docker-host", podman.url]
    args += ["--protected", str(protected)]

    code, refused = _respond(capsys, *args)

    assert code == 3
    assert _results(refused) == {"disconnect": "refused", "pause": "refused", "stop": "manual"}
    state = podman.client().inspect_container(cid)
    assert state["State"]["Running"]
    assert not state["State"]["Paused"]
    assert list(state["NetworkSettings"]["Networks"]) == [podman.network]

    code, forced = _respond(capsys, *args, "--force")

    assert code == 0
    assert _results(forced)["pause"] == "changed"
    assert podman.client().inspect_container(cid)["State"]["Paused"] is True


def test_evidence_is_taken_while_frozen_then_the_container_is_stopped(
    podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, alert, db = _alert_for(podman, "tw-evidence", tmp_path, capsys)
    evidence = tmp_path / "evidence"
    uid = alert["finding_info"]["uid"]
    args = [uid, "--db", str(db), "--execute", "--yes", "--docker-host", podman.url]
    args += ["--evidence", str(evidence), "--stop"]

    code, first = _respond(capsys, *args)

    assert code == 0, first
    assert [r["kind"] for r in first["results"]] == [
        "disconnect",
        "pause",
        "export",
        "inspect",
        "stop",
    ]
    assert set(_results(first).values()) == {"changed"}
    with tarfile.open(evidence / f"{cid}.tar") as tar:
        assert "./bin/busybox" in tar.getnames() or "bin/busybox" in tar.getnames()
    inspected = orjson.loads((evidence / f"{cid}.inspect.json").read_bytes())
    assert inspected["Id"] == cid
    assert inspected["State"]["Paused"] is True  # taken while frozen, before the stop
    assert podman.client().inspect_container(cid)["State"]["Running"] is False

    code, second = _respond(capsys, *args)

    assert code == 0
    assert set(_results(second).values()) == {"unchanged"}


def test_a_container_gone_before_the_response_fails_per_action_and_keeps_the_plan(
    podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, alert, db = _alert_for(podman, "tw-gone", tmp_path, capsys)
    podman.client().remove_container(cid, force=True)
    uid = alert["finding_info"]["uid"]

    code, payload = _respond(
        capsys, uid, "--db", str(db), "--execute", "--yes", "--docker-host", podman.url
    )

    assert code == 1
    assert [a["kind"] for a in payload["actions"]] == ["disconnect", "pause", "stop"]
    failed = [r for r in payload["results"] if r["result"] == "failed"]
    assert [r["kind"] for r in failed] == ["disconnect", "pause"]
    assert all("container gone" in r["message"] for r in failed)


def test_a_dry_run_reads_the_runtime_and_changes_nothing(
    podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cid, alert, db = _alert_for(podman, "tw-dry-run", tmp_path, capsys)
    uid = alert["finding_info"]["uid"]

    code, payload = _respond(
        capsys, uid, "--db", str(db), "--execute", "--dry-run=server", "--docker-host", podman.url
    )

    assert code == 0
    assert _results(payload) == {"disconnect": "dry-run", "pause": "dry-run", "stop": "manual"}
    assert podman.network in payload["results"][0]["message"]
    state = podman.client().inspect_container(cid)
    assert state["State"]["Running"]
    assert not state["State"]["Paused"]
    assert list(state["NetworkSettings"]["Networks"]) == [podman.network]
