"""What became of each planned action when it was executed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    from tidewaiter.respond.planner import Action

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
GUIDANCE_ONLY = "guidance only: not executed"


class Outcomes:
    """The outcomes of one execution, each reported (to the audit log) as it is recorded."""

    def __init__(self, report: Report) -> None:
        self.recorded: list[Outcome] = []
        self._report = report

    def add(self, outcome: Outcome) -> None:
        self.recorded.append(outcome)
        self._report(outcome)

    def every(self, actions: Sequence[Action], result: Result, message: str) -> list[Outcome]:
        """The same fate for every action (refused, failed), guidance staying guidance."""
        for action in actions:
            if action.manual:
                self.add(Outcome(action.kind, action.target, "manual", GUIDANCE_ONLY))
            else:
                self.add(Outcome(action.kind, action.target, result, message))
        return self.recorded
