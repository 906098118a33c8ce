"""`tidewaiter investigate`: the context of a finding's container — timeline, process tree, files,
connections — related findings, the baseline, and how close benign profiles and suppressions
came (verify)."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.respond import alerts, telemetry
from tidewaiter.cli.main import main
from tidewaiter.detection.baseline import Baselines, Profile
from tidewaiter.detection.suppress import Match, Suppression, Suppressor
from tidewaiter.investigate.verify import near_matches
from tidewaiter.store import Store

MERLIN = "merlin-agent-*.json"


def _merlin(corpus: Path) -> list[str]:
    return sorted(str(p) for p in (corpus / "tetragon").glob(MERLIN))


def _detect(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["detect", "--json", *args]) == 0
    out = capsys.readouterr().out
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def _investigate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["investigate", *args, "--json"]) == 0
    result: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    return result


def _tree(nodes: list[dict[str, Any]]) -> list[Any]:
    """(name, pid, children) tuples, for comparing shapes."""
    return [(n["name"], n.get("pid"), _tree(n.get("children", []))) for n in nodes]


def test_the_merlin_chain_shows_its_timeline_tree_and_connection(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _merlin(corpus)
    (alert,) = _detect(capsys, *paths)
    alerts_file = alerts.write(tmp_path / "alerts.jsonl", alert)
    uid = alert["finding_info"]["uid"]

    result = _investigate(capsys, uid[:10], "--alerts", str(alerts_file), *paths)

    context = result["context"]
    timeline = context["timeline"]
    assert [t["time"] for t in timeline] == sorted(t["time"] for t in timeline)
    assert [(t["process"], t["activity"]) for t in timeline] == [
        ("7z", "launch"),
        ("7z", "exit"),
        ("ssh", "launch"),
        ("scp", "launch"),
        ("ssh", "connect"),
    ]
    assert [t["process"] for t in timeline if t.get("evidence")] == ["7z", "scp", "ssh"]
    assert _tree(context["process_tree"]) == [
        ("sh", 45779, [("7z", 45780, [])]),
        ("sh", 53766, [("scp", 53767, [("ssh", 53768, [])])]),
    ]
    (connection,) = context["connections"]
    assert (connection["ip"], connection["port"], connection["process"]) == (
        "34.116.205.187",
        22,
        "ssh",
    )
    assert connection["internal"] is False
    assert "bytes_out" not in connection  # Tetragon's connect record carries no byte count
    assert [f["path"] for f in context["files"]] == ["s3nsitiv3.7z"]
    assert result["response"]  # the ADS's response guidance for the analytic


def test_the_console_view_draws_the_tree_and_the_connection(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _merlin(corpus)
    (alert,) = _detect(capsys, *paths)
    alerts_file = alerts.write(tmp_path / "alerts.jsonl", alert)

    assert main(["investigate", alert["finding_info"]["uid"], "--alerts", str(alerts_file)]) == 0
    out = capsys.readouterr().out

    lines = out.splitlines()
    sh_7z = next(i for i, line in enumerate(lines) if "sh (pid 45779)" in line)
    assert "7z (pid 45780)" in lines[sh_7z + 1]
    assert any("scp (pid 53767)" in line for line in lines)
    assert any("ssh (pid 53768)" in line for line in lines)
    assert "34.116.205.187:22" in out
    assert "timeline" in out
    assert "process tree" in out
    assert "connections" in out


def test_from_the_store_the_telemetry_is_found_through_the_alerts_own_records(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    (alert,) = _detect(capsys, "--db", str(db), *_merlin(corpus))

    result = _investigate(capsys, alert["finding_info"]["uid"][:8], "--db", str(db))

    assert len(result["context"]["paths"]) == 3  # the files the evidence came from
    assert result["context"]["connections"][0]["ip"] == "34.116.205.187"


def test_related_findings_and_the_baseline_come_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    image = "registry.example.com/shop/api:1.0"
    mine = alerts.container(image=image)
    elsewhere = alerts.with_uid(alerts.container(uid="9" * 64, image=image), "a" * 32)
    elsewhere["device"] = {**elsewhere["device"], "hostname": "node-9"}
    unrelated = alerts.with_uid(alerts.container(uid="8" * 64, image="nginx:1"), "b" * 32)
    workload = "image:registry.example.com/shop/api"
    with Store(db) as store:
        store.add_alert(mine, workload)
        store.add_alert(elsewhere, workload)
        store.add_alert(unrelated, "image:nginx")
        profile = Profile(workload, 0.0, 30 * 86_400.0, 0.0, events=5000.0)
        profile.executables = {"tar": 40.0, "sh": 900.0}
        profile.destinations = {"10.0.0.5 port 5432": 300.0}
        baselines = Baselines()
        baselines.profiles[workload] = profile
        baselines.changed.add(workload)
        store.save_baselines(baselines)

    result = _investigate(capsys, alerts.FINDING, "--db", str(db), "/nonexistent/events.jsonl")

    (related,) = result["related"]
    assert related["uid"] == "a" * 32
    assert related["where"] == "container 999999999999 on node-9"
    assert set(related["shared"]) == {"workload", "image"}
    baseline = result["baseline"]
    assert baseline["workload"] == workload
    assert baseline["trusted"] is True
    assert "tar runs in this workload (40 times in 30.0 days of history)" in baseline["notes"]
    assert "curl has never run in this workload in 30.0 days of history" in baseline["notes"]
    assert "203.0.113.9 port 443 was never a destination of this workload" in baseline["notes"]
    assert result["context"]["unreadable"]  # the missing file is reported, not fatal


def test_verify_says_how_close_each_profile_came_and_what_did_not_hold() -> None:
    alert = alerts.container(image="alpine:3.19")
    rotated = alert["evidences"][0]
    rotated["process"]["parent_process"] = {"pid": 9, "file": {"path": "/usr/sbin/logrotate"}}
    rotated["file"] = {"path": "/var/log/app.log.1.gz"}
    other = copy.deepcopy(rotated)  # a second archive, made by hand: not log rotation's doing
    other["data"]["tool"] = "7z"
    other["process"] = {"pid": 77, "file": {"path": "/usr/bin/7z"}}
    other["process"]["parent_process"] = {"pid": 76, "file": {"path": "/bin/sh"}}
    other["file"] = {"path": "/tmp/loot.7z"}
    alert["evidences"].insert(1, other)
    rule = Suppression(
        "nightly-export",
        Match(image="alpine:*", destination="198.51.100.0/24"),
        "nightly export",
        "sec@example.com",
    )

    matches = near_matches(alert, Suppressor([rule]))

    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    rotation = next(m for m in matches if m.id == "log-rotation")
    assert rotation.applies is False
    assert 0 < rotation.score < 1
    held = " ".join(c.detail for c in rotation.checks if c.matched)
    missed = " ".join(c.detail for c in rotation.checks if not c.matched)
    assert "logrotate" in held
    assert "7z's parent sh is not one" in missed
    suppression = next(m for m in matches if m.kind == "suppression")
    assert (suppression.applies, suppression.score) == (False, 0.5)
    assert [c.condition for c in suppression.checks if not c.matched] == ["destination"]


def test_verify_reports_a_profile_that_applies() -> None:
    alert = alerts.container()
    alert["evidences"][0]["process"]["file"] = {"path": "/usr/bin/restic"}
    alert["evidences"][0]["data"]["tool"] = "restic"
    alert["evidences"][1]["dst_endpoint"] = {"ip": "10.0.0.5", "port": 443}  # stayed inside

    matches = near_matches(alert, Suppressor())

    assert (matches[0].id, matches[0].applies) == ("backup-tool", True)


def _exec(pid: int, parent: int, arguments: str, container: str) -> dict[str, Any]:
    def process(p: int, up: int, args: str) -> dict[str, Any]:
        return {
            "exec_id": base64.b64encode(f"n:{p}".encode()).decode(),
            "pid": p,
            "binary": "/bin/sh",
            "arguments": args,
            "start_time": "2026-11-27T10:00:00Z",
            "docker": container,
            "parent_exec_id": base64.b64encode(f"n:{up}".encode()).decode(),
        }

    return {
        "process_exec": {
            "process": process(pid, parent, arguments),
            "parent": process(parent, pid, ""),
        },
        "node_name": "n",
        "time": "2026-11-27T10:00:00Z",
    }


def test_hostile_telemetry_is_shown_inert_and_a_parent_loop_does_not_hang(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    container = "c" * 64
    records = telemetry.chain(container)
    records[0]["process_exec"]["process"]["arguments"] += " \x1b[2J\x1b]0;pwned\x07 [red]x[/red]"
    # Two processes, each named as the other's parent.
    records += [_exec(7, 8, "-c true", container[:31]), _exec(8, 7, "-c true", container[:31])]
    path = telemetry.write(tmp_path / "tetragon.jsonl", records)
    (alert,) = _detect(capsys, str(path))
    alerts_file = alerts.write(tmp_path / "alerts.jsonl", alert)

    assert main(["investigate", alert["finding_info"]["uid"], "--alerts", str(alerts_file)]) == 0
    out = capsys.readouterr().out

    assert "\x1b" not in out
    assert "\x07" not in out
    assert "\\x1b[2J" in out
    assert "[red]x[/red]" in out  # printed as written, never read as markup
    result = _investigate(capsys, alert["finding_info"]["uid"], "--alerts", str(alerts_file))
    names = str(_tree(result["context"]["process_tree"]))
    assert "7" in names
    assert "8" in names


def test_verify_agrees_with_detection_about_a_backup_tool_that_ran_just_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = telemetry.chain("d" * 64)
    restic = copy.deepcopy(records[0])
    restic["time"] = "2026-11-27T09:59:00Z"
    restic["process_exec"]["process"].update(
        binary="/usr/bin/restic", arguments="backup /data", pid=90, exec_id="cmVzdGlj"
    )
    path = telemetry.write(tmp_path / "tetragon.jsonl", [restic, *records])
    (alert,) = _detect(capsys, str(path))
    # A binary named restic is text the attacker can write: detection names the profile it
    # did not apply (issue 11), and verify must say the same.
    assert "not lowered as a backup" in alert["finding_info"]["desc"]
    alerts_file = alerts.write(tmp_path / "alerts.jsonl", alert)

    result = _investigate(capsys, alert["finding_info"]["uid"], "--alerts", str(alerts_file))

    [backup] = [m for m in result["verify"] if m["id"] == "backup-tool"]
    assert backup["applies"] is False
    assert any("restic" in c["detail"] and c["matched"] for c in backup["checks"])
    [identity] = [c for c in backup["checks"] if c["condition"] == "workload identity"]
    assert identity["matched"] is False
