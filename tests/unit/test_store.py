"""The DuckDB store: versioned migrations, alerts stored once, atomic checkpoints."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tidewaiter.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError


def alert(uid: str, time: int = 1000) -> dict[str, object]:
    return {
        "time": time,
        "severity_id": 4,
        "finding_info": {"uid": uid, "analytic": {"uid": "tw-archive-exfil"}},
        "container": {"uid": "abc"},
        "device": {"hostname": "node-1"},
    }


def test_a_new_store_is_at_the_current_version_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "tw.duckdb"
    with Store(path) as store:
        assert store.version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.add_alert(alert("f1"))
    with Store(path) as again:
        assert again.version() == SCHEMA_VERSION
        assert [a["finding_info"]["uid"] for a in again.alerts()] == ["f1"]


def test_alerts_are_stored_once_and_found_by_prefix(tmp_path: Path) -> None:
    with Store(tmp_path / "tw.duckdb") as store:
        assert store.add_alert(alert("abcdef01"))
        assert not store.add_alert(alert("abcdef01"))
        store.add_alert(alert("abcdef02"), suppressed_by="nightly backup")
        assert store.alert("abcdef01") is not None
        assert store.alert("abcdef0") is None  # ambiguous
        assert store.alert("%") is None  # LIKE wildcards in input are not wildcards
        assert [a["finding_info"]["uid"] for a in store.alerts(suppressed=True)] == ["abcdef02"]


def test_a_later_migration_is_applied_once(tmp_path: Path) -> None:
    path = tmp_path / "tw.duckdb"
    Store(path).close()
    extended = (*MIGRATIONS, ("CREATE TABLE extra (x INTEGER)",))
    store = Store.__new__(Store)
    store.path = path
    store.db = duckdb.connect(str(path))
    store.migrate(extended)
    store.migrate(extended)
    assert store.version() == len(extended)
    store.close()
    with pytest.raises(StoreError, match="newer than this tidewaiter understands"):
        Store(path)


def test_checkpoints_keep_positions_and_state_together(tmp_path: Path) -> None:
    with Store(tmp_path / "tw.duckdb") as store:
        assert store.load_checkpoint("watch") is None
        store.save_checkpoint("watch", {"/var/log/a.jsonl": [1, 2, 300]}, b"\x00state")
        store.save_checkpoint("watch", {"/var/log/a.jsonl": [1, 2, 400]}, b"\x01state")
        assert store.load_checkpoint("watch") == ({"/var/log/a.jsonl": [1, 2, 400]}, b"\x01state")


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    def crash_between_writes(store: Store) -> None:
        with store.transaction() as db:
            db.execute("INSERT INTO checkpoints (name, positions) VALUES ('x', '{}')")
            raise RuntimeError("crash between the two writes")

    with Store(tmp_path / "tw.duckdb") as store:
        with pytest.raises(RuntimeError):
            crash_between_writes(store)
        assert store.load_checkpoint("x") is None
