"""What `tidewaiter watch` reads from: anything that yields events as they arrive.

Files (``follow.FileFollower``), standard input (``stream.StreamInput``) and the HTTP receiver
(``http_input.HttpInput``) implement ``Input``. A new kind of input, such as a live sensor,
implements the same protocol and is added where ``cli/watch.py`` builds the input list; the
runner, checkpoints, status line and sinks then serve it unchanged.
"""

from __future__ import annotations

from typing import Any, Protocol

from tidewaiter.events import Event


class Input(Protocol):
    @property
    def name(self) -> str:
        """Unique among the inputs of a run: the key of its position in a checkpoint."""
        ...

    def poll(self, budget: int) -> list[Event]:
        """The events of what arrived since the last poll, reading at most about ``budget``
        bytes, without blocking. Events are in arrival order."""
        ...

    def position(self) -> dict[str, Any] | None:
        """Where to resume after a restart (JSON-serialisable), or None when this input cannot
        be resumed (a pipe). Asked only between polls, when every event polled so far has been
        processed."""
        ...

    def restore(self, position: dict[str, Any]) -> None:
        """Resume from a checkpointed position; called once, before the first poll."""
        ...

    def behind(self) -> int:
        """Bytes that have arrived and are not read yet (0 when unknown)."""
        ...

    @property
    def finished(self) -> bool:
        """The input has ended and will give nothing more (standard input at EOF)."""
        ...

    def close(self) -> None: ...
