"""Checkpoints: where each input is, and what detection remembers, saved together.

Both go into one row of the store's ``checkpoints`` table in one transaction, so a checkpoint is
never half written: after ``kill -9`` the run resumes from a position and a state that belong
together. The runner saves one only after the sinks have made the alerts of everything before it
durable (``Delivery.commit``): an alert is either delivered, or decided again after the restart
(and then deduplicated by its finding uid).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tidewaiter.store import Store

NAME = "watch"
VERSION = 1


class Checkpoints:
    def __init__(self, store: Store, name: str = NAME) -> None:
        self.store = store
        self.name = name

    def load(self) -> tuple[dict[str, dict[str, Any]], bytes | None, str] | None:
        """(positions by input name, detection state, when it was saved), or None."""
        saved = self.store.load_checkpoint(self.name)
        if saved is None:
            return None
        positions, state = saved
        if positions.get("version") != VERSION:
            return None
        return dict(positions.get("inputs", {})), state, str(positions.get("saved_at", "?"))

    def save(self, positions: dict[str, dict[str, Any]], state: bytes) -> None:
        saved_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.store.save_checkpoint(
            self.name, {"version": VERSION, "saved_at": saved_at, "inputs": positions}, state
        )
