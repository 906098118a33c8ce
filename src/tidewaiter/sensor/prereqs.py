"""What the live sensor needs from the host, checked before anything starts.

Each check answers with None (fine) or one sentence that names what is missing and how to get it,
so a user (or a skipped test) sees the exact gap rather than a bpftrace stack of errors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


def missing_root() -> str | None:
    if os.geteuid() != 0:
        return "it must run as root (loading eBPF programs and creating namespaces need it)"
    return None


def missing_tool(name: str, package: str | None = None) -> str | None:
    if shutil.which(name) is None:
        return f"{name} is not installed (apt-get install {package or name})"
    return None


def tracefs() -> Path | None:
    """The mounted tracefs whose tracepoints bpftrace attaches to, if any."""
    for path in TRACEFS:
        if (path / "events").is_dir():
            return path
    return None


def ensure_tracefs() -> str | None:
    """Mount tracefs where it is missing (it is not mounted at boot on some machines)."""
    if tracefs() is not None:
        return None
    target = TRACEFS[0]
    if os.geteuid() != 0:
        return f"tracefs is not mounted at {target} (as root: mount -t tracefs nodev {target})"
    result = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if result.returncode != 0 or tracefs() is None:
        reason = result.stderr.strip() or f"exit status {result.returncode}"
        return f"tracefs is not mounted at {target} and mounting it failed ({reason})"
    return None


def sensor_missing() -> str | None:
    """Why the sensor cannot run here, in one sentence; None when it can."""
    problems = [p for p in (missing_root(), missing_tool("bpftrace")) if p]
    if not problems:
        mounted = ensure_tracefs()
        if mounted:
            problems.append(mounted)
    if not problems:
        return None
    return "The sensor cannot run: " + "; ".join(problems) + "."


def tracepoint_exists(name: str) -> bool:
    """``syscalls/sys_enter_execve`` → whether this kernel has it (with tracefs mounted)."""
    root = tracefs()
    return root is not None and (root / "events" / name).is_dir()
