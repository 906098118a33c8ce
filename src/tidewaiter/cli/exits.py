"""Exit statuses, the same in every subcommand, so scripts can tell the cases apart."""

from __future__ import annotations

OK = 0
FINDINGS = 1  # what the command checks for was found: an alert (--fail-on-alert), a failed run
USAGE = 2  # bad flags, unreadable inputs, a precondition not met
REFUSED = 3  # respond: a protected workload, or the plan not confirmed
NOT_FOUND = 4  # the finding, analytic, suppression, scenario, workload or store named is not there
INTERNAL = 70  # EX_SOFTWARE: a bug, said in one line (TIDEWAITER_DEBUG=1 shows the traceback)
