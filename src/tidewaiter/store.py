"""The embedded store: one DuckDB file for alerts, baselines, suppressions, checkpoints and the
response audit log. Nothing to start; the schema is versioned and migrated on open.

Each migration is a list of statements applied in one transaction and recorded in
``schema_version``; a file written by a newer tidewaiter is refused rather than guessed at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import orjson

from tidewaiter.alerts import alert_container
from tidewaiter.detection import baseline
from tidewaiter.detection.baseline import Baselines
from tidewaiter.detection.suppress import Match, Suppression

SCHEMA_VERSION = 2

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE alerts (
            uid VARCHAR PRIMARY KEY,
            time_ms BIGINT NOT NULL,
            analytic VARCHAR NOT NULL,
            severity_id INTEGER NOT NULL,
            container_uid VARCHAR,
            workload VARCHAR,
            host VARCHAR,
            suppressed_by VARCHAR,
            alert JSON NOT NULL,
            stored_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        "CREATE INDEX alerts_time ON alerts (time_ms)",
        """CREATE TABLE suppressions (
            id VARCHAR PRIMARY KEY,
            rule JSON NOT NULL,
            reason VARCHAR NOT NULL,
            author VARCHAR NOT NULL,
            expires DATE,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE baselines (
            workload VARCHAR PRIMARY KEY,
            profile BLOB NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE checkpoints (
            name VARCHAR PRIMARY KEY,
            positions JSON NOT NULL,
            state BLOB,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE SEQUENCE audit_seq""",
        """CREATE TABLE audit_log (
            seq BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
            acted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            actor VARCHAR NOT NULL,
            finding_uid VARCHAR,
            action VARCHAR NOT NULL,
            target VARCHAR,
            result VARCHAR NOT NULL,
            detail JSON
        )""",
    ),
    (
        # A finding updated by late evidence: the alerts row holds its latest state, this its
        # earlier ones, oldest first.
        """CREATE TABLE alert_history (
            uid VARCHAR NOT NULL,
            revision INTEGER NOT NULL,
            alert JSON NOT NULL,
            replaced_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
    ),
)


class StoreError(Exception):
    """The store cannot be opened or used; the message says why in one sentence."""


def default_path() -> Path:
    """$TIDEWAITER_DB, else under the user's data directory ($XDG_DATA_HOME, else
    ~/.local/share)."""
    named = os.environ.get("TIDEWAITER_DB")
    if named:
        return Path(named)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tidewaiter" / "tidewaiter.duckdb"


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self.migrate()

    def close(self) -> None:
        self.db.close()

    def cursor(self) -> Store:
        """This store on a connection of its own, for another thread: one DuckDB connection is
        not shared between threads; cursors of one database are, each in its own transactions."""
        other = object.__new__(type(self))
        other.path = self.path
        other.db = self.db.cursor()
        return other

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.db.execute("BEGIN TRANSACTION")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def version(self) -> int:
        self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def migrate(self, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
        current = self.version()
        if current > len(migrations):
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this tidewaiter "
                f"understands ({len(migrations)}); upgrade tidewaiter"
            )
        for version, statements in enumerate(migrations[current:], start=current + 1):
            with self.transaction() as db:
                for statement in statements:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", [version])

    def backup(self, target: str | Path) -> None:
        """A consistent copy of the whole store in a new DuckDB file at ``target``, taken in one
        transaction (also while watch writes: it runs inside watch, through the socket)."""
        path = Path(target).resolve()
        if path.exists():
            raise StoreError(f"{path} exists; name a new file for the backup")
        alias = f"tidewaiter_backup_{os.getpid()}_{id(self):x}"
        literal = str(path).replace("'", "''")
        row = self.db.execute("SELECT current_database()").fetchone()
        source = str(row[0] if row else "memory").replace('"', '""')
        try:
            self.db.execute(f"ATTACH '{literal}' AS {alias}")
        except duckdb.Error as exc:
            raise StoreError(f"cannot create {path}: {exc}") from None
        try:
            self.db.execute(f'COPY FROM DATABASE "{source}" TO {alias}')
        finally:
            self.db.execute(f"DETACH {alias}")

    # --- alerts ----------------------------------------------------------------------------

    def add_alert(
        self, alert: dict[str, Any], workload: str | None = None, suppressed_by: str | None = None
    ) -> bool:
        """Store an alert once (by finding uid); False when it was already there. An update (a
        later revision of the same finding) replaces the row and keeps what it replaces in
        alert_history."""
        info = alert["finding_info"]
        container = alert_container(alert)
        revision = int((alert.get("metadata") or {}).get("sequence") or 0)
        before = self.db.execute("SELECT alert FROM alerts WHERE uid = ?", [info["uid"]])
        row = before.fetchone()
        if row:
            stored = orjson.loads(row[0])
            known = int((stored.get("metadata") or {}).get("sequence") or 0)
            if revision <= known:
                return False
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO alert_history (uid, revision, alert) VALUES (?, ?, ?)",
                    [info["uid"], known, row[0]],
                )
                db.execute(
                    "UPDATE alerts SET time_ms = ?, analytic = ?, severity_id = ?, "
                    "suppressed_by = ?, alert = ? WHERE uid = ?",
                    [
                        alert["time"],
                        info["analytic"]["uid"],
                        alert["severity_id"],
                        suppressed_by,
                        orjson.dumps(alert).decode(),
                        info["uid"],
                    ],
                )
            return True
        self.db.execute(
            "INSERT INTO alerts (uid, time_ms, analytic, severity_id, container_uid, workload, "
            "host, suppressed_by, alert) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                info["uid"],
                alert["time"],
                info["analytic"]["uid"],
                alert["severity_id"],
                container.get("uid"),
                workload,
                (alert.get("device") or {}).get("hostname"),
                suppressed_by,
                orjson.dumps(alert).decode(),
            ],
        )
        return True

    def alert_history(self, uid: str) -> list[dict[str, Any]]:
        """The earlier states of an updated finding, oldest first."""
        rows = self.db.execute(
            "SELECT alert FROM alert_history WHERE uid = ? ORDER BY revision", [uid]
        ).fetchall()
        return [orjson.loads(r[0]) for r in rows]

    def alerts(
        self, suppressed: bool = False, uid_prefix: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        query = "SELECT alert FROM alerts WHERE (suppressed_by IS NOT NULL) = ?"
        params: list[Any] = [suppressed]
        if uid_prefix:
            query += " AND uid LIKE ?"
            params.append(uid_prefix.replace("%", "").replace("_", "") + "%")
        query += " ORDER BY time_ms LIMIT ?"
        params.append(limit)
        return [orjson.loads(r[0]) for r in self.db.execute(query, params).fetchall()]

    def alert(self, uid_prefix: str) -> dict[str, Any] | None:
        """One alert by its finding uid or an unambiguous prefix of it."""
        rows = self.db.execute(
            "SELECT alert FROM alerts WHERE uid LIKE ? LIMIT 2",
            [uid_prefix.replace("%", "").replace("_", "") + "%"],
        ).fetchall()
        if len(rows) != 1:
            return None
        parsed: dict[str, Any] = orjson.loads(rows[0][0])
        return parsed

    def alert_workload(self, uid: str) -> str | None:
        """The workload key detection stored with an alert (it knows the Kubernetes owner)."""
        row = self.db.execute("SELECT workload FROM alerts WHERE uid = ?", [uid]).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def related_alerts(self, uid: str, limit: int = 50) -> list[tuple[dict[str, Any], list[str]]]:
        """Other alerts, held back or not, of the same workload, image or container as this one
        on any host, each with what it shares."""
        rows = self.db.execute(
            """WITH me AS (
                SELECT workload, substr(container_uid, 1, 12) AS container,
                       coalesce(json_extract_string(alert, '$.device.container.image.name'),
                                json_extract_string(alert, '$.evidences[0].container.image.name'),
                                json_extract_string(alert, '$.container.image.name')) AS image
                FROM alerts WHERE uid = ?
            ), other AS (
                SELECT a.alert, a.time_ms,
                       me.workload IS NOT NULL AND a.workload = me.workload AS same_workload,
                       me.image IS NOT NULL
                           AND coalesce(
                               json_extract_string(a.alert, '$.device.container.image.name'),
                               json_extract_string(a.alert, '$.evidences[0].container.image.name'),
                               json_extract_string(a.alert, '$.container.image.name')
                           ) = me.image
                           AS same_image,
                       me.container IS NOT NULL AND substr(a.container_uid, 1, 12) = me.container
                           AS same_container
                FROM alerts a, me WHERE a.uid <> ?
            )
            SELECT alert, same_workload, same_image, same_container FROM other
            WHERE same_workload OR same_image OR same_container
            ORDER BY time_ms LIMIT ?""",
            [uid, uid, limit],
        ).fetchall()
        related = []
        for alert, workload, image, container in rows:
            pairs = (("container", container), ("workload", workload), ("image", image))
            shared = [name for name, flag in pairs if flag]
            related.append((orjson.loads(alert), shared))
        return related

    # --- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, name: str, positions: dict[str, Any], state: bytes | None) -> None:
        """Input positions and correlation state, written together or not at all."""
        with self.transaction() as db:
            db.execute("DELETE FROM checkpoints WHERE name = ?", [name])
            db.execute(
                "INSERT INTO checkpoints (name, positions, state) VALUES (?, ?, ?)",
                [name, orjson.dumps(positions).decode(), state],
            )

    def load_checkpoint(self, name: str) -> tuple[dict[str, Any], bytes | None] | None:
        row = self.db.execute(
            "SELECT positions, state FROM checkpoints WHERE name = ?", [name]
        ).fetchone()
        if row is None:
            return None
        return orjson.loads(row[0]), (bytes(row[1]) if row[1] is not None else None)

    # --- suppressions ------------------------------------------------------------------------

    def add_suppression(self, rule: Suppression) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM suppressions WHERE id = ?", [rule.id])
            db.execute(
                "INSERT INTO suppressions (id, rule, reason, author, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    rule.id,
                    msgspec.json.encode(rule.match).decode(),
                    rule.reason,
                    rule.author,
                    rule.expires,
                ],
            )

    def remove_suppression(self, rule_id: str) -> bool:
        found = self.db.execute(
            "SELECT count(*) FROM suppressions WHERE id = ?", [rule_id]
        ).fetchone()
        self.db.execute("DELETE FROM suppressions WHERE id = ?", [rule_id])
        return bool(found and found[0])

    def suppressions(self) -> tuple[Suppression, ...]:
        rows = self.db.execute(
            "SELECT id, rule, reason, author, expires FROM suppressions ORDER BY created_at, id"
        ).fetchall()
        return tuple(
            Suppression(
                id=row[0],
                match=msgspec.json.decode(row[1], type=Match),
                reason=row[2],
                author=row[3],
                expires=row[4],
            )
            for row in rows
        )

    # --- response audit log ------------------------------------------------------------------

    def add_audit(
        self,
        actor: str,
        finding_uid: str | None,
        action: str,
        target: str | None,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one response action to the audit log (never updated or deleted); its seq."""
        row = self.db.execute(
            "INSERT INTO audit_log (actor, finding_uid, action, target, result, detail) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING seq",
            [
                actor,
                finding_uid,
                action,
                target,
                result,
                orjson.dumps(detail).decode() if detail is not None else None,
            ],
        ).fetchone()
        return int(row[0]) if row else 0

    def audit(self, finding_uid: str | None = None) -> list[dict[str, Any]]:
        """The audit log in the order it was written, for one finding or all."""
        query = (
            "SELECT seq, acted_at, actor, finding_uid, action, target, result, detail "
            "FROM audit_log"
        )
        params: list[Any] = []
        if finding_uid is not None:
            query += " WHERE finding_uid = ?"
            params.append(finding_uid)
        rows = self.db.execute(query + " ORDER BY seq", params).fetchall()
        names = ("seq", "acted_at", "actor", "finding_uid", "action", "target", "result", "detail")
        entries = []
        for row in rows:
            entry = dict(zip(names, row, strict=True))
            entry["acted_at"] = row[1].isoformat()
            entry["detail"] = orjson.loads(row[7]) if row[7] is not None else None
            entries.append(entry)
        return entries

    # --- baselines ---------------------------------------------------------------------------

    def save_baselines(self, baselines: Baselines) -> None:
        """Write the profiles that changed since they were loaded or last saved."""
        with self.transaction() as db:
            for workload in sorted(baselines.changed):
                db.execute("DELETE FROM baselines WHERE workload = ?", [workload])
                db.execute(
                    "INSERT INTO baselines (workload, profile) VALUES (?, ?)",
                    [workload, baseline.encode(baselines.profiles[workload])],
                )
        baselines.changed.clear()

    def load_baselines(self, learn: bool = False, exclude_flagged: bool = True) -> Baselines:
        rows = self.db.execute("SELECT workload, profile FROM baselines").fetchall()
        baselines = Baselines(learn=learn, exclude_flagged=exclude_flagged)
        baselines.profiles = {row[0]: baseline.decode(bytes(row[1])) for row in rows}
        return baselines
