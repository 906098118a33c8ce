"""The response audit log: every action taken (or refused), its result, and who ran it. Written
to the store's append-only `audit_log` table and to a JSON lines file, each entry as soon as the
action completes, so a crash mid-plan still leaves a record of what was done."""

from __future__ import annotations

import getpass
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tidewaiter.respond.outcome import Outcome
from tidewaiter.store import Store


def os_user() -> str:
    """The account running tidewaiter, and who became it through sudo."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a bare container)
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    host = socket.gethostname()
    return f"{user}@{host}" + (f" (sudo from {sudo})" if sudo and sudo != user else "")


class AuditLog:
    def __init__(self, store: Store | None, path: str | Path | None, actor: str) -> None:
        self.store = store
        self.path = Path(path) if path is not None else None
        self.actor = actor
        self.os_user = os_user()
        self.written = 0

    def record(
        self,
        finding_uid: str,
        action: str,
        target: str,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail = {**(detail or {}), "os_user": self.os_user}
        seq = None
        if self.store is not None:
            seq = self.store.add_audit(self.actor, finding_uid, action, target, result, detail)
        if self.path is not None:
            entry = {
                "seq": seq,
                "acted_at": datetime.now(UTC).isoformat(),
                "actor": self.actor,
                "finding_uid": finding_uid,
                "action": action,
                "target": target,
                "result": result,
                "detail": detail,
            }
            self._append(orjson.dumps(entry) + b"\n")
        self.written += 1

    def outcome(self, finding_uid: str, outcome: Outcome, detail: dict[str, Any]) -> None:
        self.record(
            finding_uid,
            outcome.kind,
            outcome.target,
            outcome.result,
            {**detail, "message": outcome.message},
        )

    def _append(self, line: bytes) -> None:
        assert self.path is not None  # noqa: S101 - checked by the caller
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent runs interleave whole lines, never overwrite each other.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
