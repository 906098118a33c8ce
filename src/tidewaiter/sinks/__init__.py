"""Where alerts go. A sink takes OCSF alert dicts one at a time and never filters them."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    def write(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
