"""What became of each planned action when it was executed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

# changed: done now; unchanged: already so (a second run changes nothing); failed: could not be
# done, and why; refused: not attempted (protected workload, unresolvable target); dry-run:
# what would change; manual: guidance only, never executed by tidewaiter.
Result = Literal["changed", "unchanged", "failed", "refused", "dry-run", "manual"]


class Outcome(msgspec.Struct, frozen=True):
    kind: str
    target: str  # the runtime's own id once resolved, else the plan's target
    result: Result
    message: str


Report = Callable[[Outcome], None]  # called as each action completes, for the audit log
