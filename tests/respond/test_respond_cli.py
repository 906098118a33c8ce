"""`tidewaiter respond` from the command line, without a runtime: the plan is printed and nothing
is executed without --execute; refusals (protected, unconfirmed) act on nothing and are audited;
an unreachable runtime fails each action and the plan is still shown."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.respond import alerts
from tidewaiter.cli.main import main
from tidewaiter.store import Store

NOWHERE = "unix:///nonexistent/tidewaiter-test.sock"


def _respond(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["respond", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _audit(db: Path) -> list[dict[str, Any]]:
    with Store(db) as store:
        return store.audit()


def test_json_prints_the_plan_with_kind_target_and_reason_and_executes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())

    code, out, _ = _respond(capsys, alerts.FINDING[:8], "--alerts", str(path), "--json")

    assert code == 0
    payload = orjson.loads(out)
    assert payload["finding_uid"] == alerts.FINDING
    assert payload["executed"] is False
    assert [a["kind"] for a in payload["actions"]] == ["disconnect", "pause", "stop"]
    assert all({"kind", "target", "reason"} <= a.keys() for a in payload["actions"])
    assert "results" not in payload


def test_the_console_plan_shows_the_kubernetes_manifests_as_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.pod())

    code, out, err = _respond(capsys, alerts.FINDING, "--alerts", str(path))

    assert code == 0
    assert "kind: NetworkPolicy" in out
    assert "tidewaiter/quarantine:" in out
    assert "nothing executed" in err


def test_the_finding_comes_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    with Store(db) as store:
        store.add_alert(alerts.container())

    code, out, _ = _respond(capsys, alerts.FINDING[:6], "--db", str(db), "--json")

    assert code == 0
    assert orjson.loads(out)["target"]["container_id"] == alerts.CONTAINER[:31]


def test_an_unknown_finding_is_not_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())

    code, _, err = _respond(capsys, "ffffffff", "--alerts", str(path))

    assert code == 4
    assert "no finding ffffffff" in err


def test_a_protected_workload_is_refused_without_force_and_nothing_is_contacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    protected = alerts.pod(namespace="kube-system", name="coredns-5d78c9869d-abcde")
    path = alerts.write(tmp_path / "alerts.jsonl", protected)
    args = [alerts.FINDING, "--alerts", str(path), "--db", str(db), "--execute", "--yes"]

    code, out, err = _respond(capsys, *args, "--json", "--kubeconfig", "/nonexistent")

    assert code == 3
    assert "kube-system is protected" in err
    assert "--force" in err
    assert orjson.loads(out)["results"] == []  # no action was attempted
    entries = _audit(db)
    assert [(e["action"], e["result"]) for e in entries] == [("respond", "refused")]
    assert "kube-system" in entries[0]["detail"]["reason"]

    code, out, _ = _respond(capsys, *args, "--json", "--kubeconfig", "/nonexistent", "--force")

    assert code == 1  # attempted now, and failed: there is no cluster here
    results = orjson.loads(out)["results"]
    assert [r["result"] for r in results] == ["failed", "failed", "manual"]
    assert all(e["detail"].get("forced") for e in _audit(db)[1:])


def test_without_a_terminal_and_without_yes_nothing_is_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tw.duckdb"
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped, not typed

    code, _, err = _respond(
        capsys,
        alerts.FINDING,
        "--alerts",
        str(path),
        "--db",
        str(db),
        "--execute",
        "--docker-host",
        NOWHERE,
    )

    assert code == 3
    assert "standard input is not a terminal" in err
    assert "--yes" in err
    assert [(e["action"], e["result"]) for e in _audit(db)] == [("respond", "refused")]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_person_who_does_not_type_yes_is_not_acted_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tw.duckdb"
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))

    code, _, err = _respond(
        capsys, alerts.FINDING, "--alerts", str(path), "--db", str(db), "--execute",
        "--docker-host", NOWHERE,
    )  # fmt: skip

    assert code == 3
    assert "Type yes to proceed" in err
    assert "not confirmed" in err
    assert _audit(db)[0]["result"] == "refused"


def test_an_unreachable_runtime_fails_each_action_and_the_plan_is_still_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())
    audit = tmp_path / "audit.jsonl"

    code, out, _ = _respond(
        capsys, alerts.FINDING, "--alerts", str(path), "--db", str(db), "--execute", "--yes",
        "--json", "--docker-host", NOWHERE, "--audit-log", str(audit), "--actor", "analyst-7",
    )  # fmt: skip

    assert code == 1
    payload = orjson.loads(out)
    assert [a["kind"] for a in payload["actions"]] == ["disconnect", "pause", "stop"]
    assert [r["result"] for r in payload["results"]] == ["failed", "failed", "manual"]
    assert all("unreachable" in r["message"] for r in payload["results"][:2])
    entries = _audit(db)
    assert [e["action"] for e in entries] == ["disconnect", "pause", "stop"]
    assert {e["actor"] for e in entries} == {"analyst-7"}
    assert all(e["detail"]["os_user"] for e in entries)  # who really ran it, whatever --actor says
    lines = [orjson.loads(line) for line in audit.read_bytes().splitlines()]
    assert [(x["seq"], x["action"], x["result"]) for x in lines] == [
        (e["seq"], e["action"], e["result"]) for e in entries
    ]


def test_a_host_plan_is_guidance_and_execute_runs_none_of_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.host())

    code, out, err = _respond(
        capsys, alerts.FINDING, "--alerts", str(path), "--db", str(db), "--execute", "--yes",
        "--json",
    )  # fmt: skip

    assert code == 0
    assert all(a["manual"] for a in orjson.loads(out)["actions"])
    assert "executes none of it" in err
    assert _audit(db) == []


def test_a_dry_run_needs_no_confirmation_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "tw.duckdb"
    path = alerts.write(tmp_path / "alerts.jsonl", alerts.container())
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    code, out, _ = _respond(
        capsys, alerts.FINDING, "--alerts", str(path), "--db", str(db), "--execute",
        "--dry-run=server", "--json", "--docker-host", NOWHERE,
    )  # fmt: skip

    payload = orjson.loads(out)
    assert payload["dry_run"] is True
    assert code == 1  # the runtime could not even be asked: reported, not hidden
    assert all(e["detail"]["dry_run"] for e in _audit(db))
