"""One alert by its finding uid (or an unambiguous prefix): from the store, or from a file of
alerts as `tidewaiter detect --json` writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tidewaiter.store import Store

MIN_PREFIX = 4  # a shorter prefix names too many findings to be a deliberate choice


class FindingNotFound(Exception):
    """No single finding answers to the uid; the message says why in one sentence."""


def read_alerts(path: str | Path) -> list[dict[str, Any]]:
    """OCSF alerts from JSON lines, or from one JSON array or object; other lines are skipped."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FindingNotFound(f"cannot read {path} ({exc.strerror or exc})") from exc
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, list):
        return [a for a in whole if _is_alert(a)]
    if _is_alert(whole):
        return [whole]
    alerts = []
    for line in data.splitlines():
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if _is_alert(item):
            alerts.append(item)
    return alerts


def pick(alerts: list[dict[str, Any]], uid: str, where: str) -> dict[str, Any]:
    prefix = uid.strip().lower()
    if len(prefix) < MIN_PREFIX:
        raise FindingNotFound(f"give at least {MIN_PREFIX} characters of the finding uid")
    found = {
        a["finding_info"]["uid"]: a for a in alerts if a["finding_info"]["uid"].startswith(prefix)
    }
    if not found:
        raise FindingNotFound(f"no finding {uid} in {where}")
    if len(found) > 1:
        raise FindingNotFound(f"{uid} names {len(found)} findings in {where}; give more of it")
    return next(iter(found.values()))


def load(uid: str, store: Store | None, alerts_path: str | None) -> dict[str, Any]:
    """The alert from --alerts FILE when given, else from the store."""
    if alerts_path is not None:
        return pick(read_alerts(alerts_path), uid, alerts_path)
    if store is None:
        raise FindingNotFound("name a store (--db) or a file of alerts (--alerts)")
    if len(uid.strip()) < MIN_PREFIX:
        raise FindingNotFound(f"give at least {MIN_PREFIX} characters of the finding uid")
    alert = store.alert(uid.strip().lower())
    if alert is None:
        raise FindingNotFound(f"no single finding {uid} in the store {store.path}")
    return alert


def _is_alert(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("finding_info"), dict)
        and isinstance(item["finding_info"].get("uid"), str)
    )
