"""From the eBPF ``cgroup`` builtin to a container id.

The builtin is the cgroup v2 id of the process, which is the inode number of its directory in the
cgroup2 mount (``/sys/fs/cgroup`` on pure v2 hosts, ``/sys/fs/cgroup/unified`` on hybrid ones).
Walking that mount maps ids to paths; a path names a container when it ends in a 64-hex id
(docker, containerd, cri-o, podman's ``libpod-<id>``, runc given such an id). Where the v2 path
says nothing (runtimes on a v1-only host put containers in the v2 root), the process's own
``/proc/PID/cgroup`` is read once while the process lives.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tidewaiter.identity import container_id_from_cgroup

RESCAN_INTERVAL = 0.2  # seconds between walks of the cgroup tree on unknown ids
MAX_CACHE = 65_536
_HEX_ID = re.compile(r"[0-9a-f]{64}")
_RUNTIMES = (
    ("libpod", "podman"),
    ("docker", "docker"),
    ("cri-containerd", "containerd"),
    ("crio", "cri-o"),
)


@dataclass(frozen=True, slots=True)
class Attribution:
    cgroup: str | None  # the v2 path, "/" for the root
    container_id: str | None
    runtime: str | None


HOST = Attribution("/", None, None)
UNKNOWN = Attribution(None, None, None)


def cgroup2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the cgroup2 hierarchy is mounted, if anywhere."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        head, sep, tail = line.partition(" - ")
        if sep and tail.split(" ", 1)[0] == "cgroup2":
            return Path(head.split(" ")[4])
    return None


def runtime_of(path: str) -> str | None:
    for marker, runtime in _RUNTIMES:
        if marker in path:
            return runtime
    return None


def attribution(path: str) -> Attribution:
    container = container_id_from_cgroup(path)
    return Attribution(path, container, runtime_of(path) if container else None)


class CgroupResolver:
    def __init__(self, root: Path | None = None, proc: Path = Path("/proc")) -> None:
        self.root = root if root is not None else cgroup2_mount()
        self._proc = proc
        self._paths: dict[int, str] = {}
        self._by_pid: dict[int, Attribution | None] = {}
        self._scanned = 0.0
        if self.root is not None:
            self._scan()

    def register(self, path: str) -> int | None:
        """Learn one cgroup now (a container the caller just started); returns its id."""
        if self.root is None:
            return None
        try:
            inode = (self.root / path.lstrip("/")).stat().st_ino
        except OSError:
            return None
        self._paths[inode] = "/" + path.strip("/")
        return inode

    def resolve(self, cgroup_id: int, pid: int) -> Attribution:
        path = self._paths.get(cgroup_id)
        if path is None and self.root is not None:
            now = time.monotonic()
            if now - self._scanned >= RESCAN_INTERVAL:
                self._scan()
                path = self._paths.get(cgroup_id)
        if path is not None and path != "/":
            found = attribution(path)
            if found.container_id is not None:
                return found
        by_pid = self._from_proc(pid)
        if by_pid is not None:
            return by_pid
        return HOST if path == "/" else (attribution(path) if path else UNKNOWN)

    def forget(self, pid: int) -> None:
        self._by_pid.pop(pid, None)

    def _from_proc(self, pid: int) -> Attribution | None:
        """The container named by any hierarchy in /proc/PID/cgroup (v1 runtimes)."""
        if pid in self._by_pid:
            return self._by_pid[pid]
        found: Attribution | None = None
        try:
            text = (self._proc / str(pid) / "cgroup").read_text()
        except OSError:
            return None  # the process is gone; nothing to cache
        for line in text.splitlines():
            path = line.split(":", 2)[-1]
            if _HEX_ID.search(path):
                candidate = attribution(path)
                if candidate.container_id is not None:
                    found = candidate
                    break
        if len(self._by_pid) >= MAX_CACHE:
            self._by_pid.clear()
        self._by_pid[pid] = found
        return found

    def _scan(self) -> None:
        self._scanned = time.monotonic()
        if self.root is None:
            return
        if len(self._paths) >= MAX_CACHE:
            self._paths.clear()
        root = str(self.root)
        for directory, _dirs, _files in os.walk(root):
            try:
                inode = os.stat(directory).st_ino
            except OSError:
                continue  # removed while walking
            relative = directory[len(root) :] or "/"
            self._paths[inode] = relative
