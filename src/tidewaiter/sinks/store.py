"""The DuckDB alert table as a sink: each alert stored once by finding uid, so an alert decided
again after a restart is not stored twice. Each insert commits on its own."""

from __future__ import annotations

from typing import Any

from tidewaiter.store import Store


class StoreSink:
    def __init__(self, store: Store) -> None:
        self.store = store

    def write(
        self,
        alert: dict[str, Any],
        workload: str | None = None,
        suppressed_by: str | None = None,
    ) -> None:
        self.store.add_alert(alert, workload, suppressed_by=suppressed_by)

    def commit(self) -> None:
        pass  # every insert is its own transaction

    def close(self) -> None:
        pass  # the store is shared with checkpoints and closed by its owner
