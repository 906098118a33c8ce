"""Each method of the store answers the same through a watch's socket as on the file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_store import alert
from tidewaiter.detection.baseline import Baselines
from tidewaiter.detection.suppress import Match, Suppression
from tidewaiter.store import Store, StoreError
from tidewaiter.store_socket import RemoteStore, StoreServer


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, list[str]]]:
    changes: list[str] = []
    store = Store(tmp_path / "deep" / ("a-long-folder-name-" * 5) / "tw.duckdb")
    server = StoreServer(store, lambda: changes.append("applied"), lambda _: None)
    try:
        yield store, changes
    finally:
        server.close()
        store.close()


def test_every_method_round_trips(served: tuple[Store, list[str]]) -> None:
    store, changes = served
    assert len(str(store.path)) > 108  # longer than a unix socket path may be
    store.add_alert(alert("aaa1"), "k8s:shop/api")
    store.add_alert(alert("aaa2", 2000), "k8s:shop/api", "suppression x: r")
    remote = RemoteStore(store.path)
    assert remote.alerts() == store.alerts()
    assert remote.alerts(suppressed=True) == store.alerts(suppressed=True)
    assert remote.alert("aaa") is None  # ambiguous prefix
    assert remote.alert("aaa1") == store.alert("aaa1")
    assert remote.alert_workload("aaa1") == "k8s:shop/api"
    store.add_alert({**alert("aaa1", 1500), "metadata": {"sequence": 1}}, "k8s:shop/api")
    assert len(store.alert_history("aaa1")) == 1  # an update keeps the state it replaced
    assert remote.alert_history("aaa1") == store.alert_history("aaa1")
    assert remote.related_alerts("aaa1") == store.related_alerts("aaa1")

    rule = Suppression(
        "q3", Match(image="registry.example.com/*"), "export", "sec@x", dt.date(2027, 1, 31)
    )
    remote.add_suppression(rule)
    assert changes == ["applied"]  # watch was asked to apply it before the reply
    assert store.suppressions() == (rule,)
    assert remote.suppressions() == (rule,)
    assert remote.remove_suppression("q3") is True
    assert remote.remove_suppression("q3") is False
    assert changes == ["applied"] * 3

    seq = remote.add_audit("ana", "aaa1", "pause", "docker:abc", "changed", {"n": 1})
    assert remote.audit("aaa1") == store.audit("aaa1")
    assert store.audit()[-1]["seq"] == seq

    assert isinstance(remote.load_baselines(), Baselines)
    with pytest.raises(StoreError, match="cannot be learned while watch holds the store"):
        remote.load_baselines(learn=True)
    with pytest.raises(StoreError, match="held by a running watch"):
        remote.add_alert(alert("aaa3"))
    remote.close()


def test_a_store_nobody_serves_is_reported_as_held(tmp_path: Path) -> None:
    db = tmp_path / "tw.duckdb"
    Store(db).close()
    (tmp_path / "tw.duckdb.watch").mkdir()
    (tmp_path / "tw.duckdb.watch" / "store.sock").touch()  # left behind, nobody listening
    with pytest.raises(StoreError, match="does not answer"):
        RemoteStore(db)
