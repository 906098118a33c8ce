"""A real container to run a scenario in: runc on a local rootfs, or podman with runc.

Both are driven with argument lists (never a shell) and stopped by id in ``stop``: kill, delete,
then any cgroup directory the runtime left behind is removed. runc's bundle config follows what
works on hybrid-cgroup hosts: no terminal, a writable root given by its absolute real path, and
the network namespace that netns.py made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tidewaiter.sensor.cgroups import cgroup2_mount

INIT = ("/bin/sleep", "3600")  # the container's pid 1: it only has to stay up
EXEC_TIMEOUT = 120.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Docker's default capabilities: enough for dpkg to chown what it installs, nothing more.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip


class ContainerError(Exception):
    pass


@dataclass(frozen=True)
class Executed:
    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str
    seconds: float


def _run(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)


class RuncContainer:
    runtime = "runc"

    def __init__(
        self, container_id: str, rootfs: Path, bundle: Path, netns_path: str, env: dict[str, str]
    ) -> None:
        self.id = container_id
        self._rootfs = rootfs.resolve()  # runc refuses a root path through a symlink
        self._bundle = bundle
        self._netns = netns_path
        self._env = env
        self.started = False

    @property
    def cgroup(self) -> str:
        """The container's cgroup v2 path (runc's default: /<id>)."""
        return f"/{self.id}"

    def start(self) -> None:
        self._bundle.mkdir(parents=True, exist_ok=True)
        created = _run(["runc", "spec", "--bundle", str(self._bundle)])
        if created.returncode != 0:
            raise ContainerError(f"runc spec failed: {created.stderr.strip()}")
        config_path = self._bundle / "config.json"
        config = json.loads(config_path.read_text())
        configure(config, self._rootfs, self._netns, self._env)
        config_path.write_text(json.dumps(config, indent=1))
        self.started = True  # from here on, stop() has something to clean
        # The detached container inherits runc's stdio: a pipe there would never reach EOF, so
        # its output goes to a file.
        log = self._bundle / "runc-run.log"
        with log.open("wb") as output:
            result = subprocess.run(
                ["runc", "run", "--detach", "--bundle", str(self._bundle), self.id],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                check=False,
                timeout=60,
            )
        if result.returncode != 0:
            raise ContainerError(f"runc run failed: {log.read_text(errors='replace').strip()}")

    def exec(self, argv: list[str], env: dict[str, str], timeout: float = EXEC_TIMEOUT) -> Executed:
        command = ["runc", "exec"]
        for key, value in env.items():
            command += ["--env", f"{key}={value}"]
        started = time.monotonic()
        try:
            result = _run([*command, self.id, *argv], timeout=timeout)
        except subprocess.TimeoutExpired:
            return Executed(tuple(argv), -1, "", f"timed out after {timeout:.0f} s", timeout)
        return Executed(
            tuple(argv),
            result.returncode,
            result.stdout,
            result.stderr,
            time.monotonic() - started,
        )

    def stop(self) -> list[str]:
        """Kill and delete the container, then remove any cgroup it left; what remains is
        returned (empty when everything is gone)."""
        if not self.started:
            return []
        _run(["runc", "kill", self.id, "KILL"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            state = _run(["runc", "state", self.id])
            if state.returncode != 0 or '"stopped"' in state.stdout:
                break
            time.sleep(0.05)
        _run(["runc", "delete", "--force", self.id])
        return remove_cgroups(self.id)


def configure(
    config: dict[str, object], rootfs: Path, netns_path: str, env: dict[str, str]
) -> None:
    """Edit `runc spec`'s default config for an emulation container."""
    process = config["process"]
    linux = config["linux"]
    if not isinstance(process, dict) or not isinstance(linux, dict):
        raise ContainerError("runc spec wrote an unexpected config.json")
    process["terminal"] = False
    process["args"] = list(INIT)
    process["env"] = [f"{k}={v}" for k, v in env.items()]
    process["cwd"] = "/root"
    caps = process.setdefault("capabilities", {})
    if isinstance(caps, dict):
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = list(CAPABILITIES)
    config["root"] = {"path": str(rootfs), "readonly": False}
    config["hostname"] = "tw-emulation"
    namespaces = linux.get("namespaces")
    if isinstance(namespaces, list):
        for namespace in namespaces:
            if isinstance(namespace, dict) and namespace.get("type") == "network":
                namespace["path"] = netns_path


def remove_cgroups(name: str) -> list[str]:
    """Remove the cgroup directories named ``name`` in every hierarchy (deepest first); return
    those that could not be removed."""
    left: list[str] = []
    roots = [p for p in CGROUP_ROOT.iterdir() if p.is_dir()] if CGROUP_ROOT.is_dir() else []
    unified = cgroup2_mount()
    if unified is not None and unified not in roots:
        roots.append(unified)
    for root in roots:
        for path in sorted(root.rglob(name), key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and path.name == name:
                try:
                    path.rmdir()
                except OSError:
                    left.append(str(path))
    return left


class PodmanContainer:
    """The same container through podman (runtime runc), with what podman needs on hosts whose
    root lacks CAP_SYS_RESOURCE: explicit ulimits, cgroupfs, file events, and private storage
    with the vfs driver (no mounts, so removing the state folder is safe)."""

    runtime = "podman"

    def __init__(
        self, container_id: str, rootfs: Path, state: Path, netns_path: str, env: dict[str, str]
    ) -> None:
        self._name = f"tw-{container_id[:12]}"
        self._rootfs = rootfs
        self._state = state
        self._netns = netns_path
        self._env = env
        self._image = f"localhost/tidewaiter-emulation:{container_id[:12]}"
        self.id = ""  # podman's own 64-hex id, known once created
        self.started = False

    @property
    def cgroup(self) -> str:
        return f"/libpod_parent/libpod-{self.id}"

    def _podman(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        state = self._state
        base = [
            "podman", "--root", str(state / "root"), "--runroot", str(state / "run"),
            "--tmpdir", str(state / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file", "--storage-driver", "vfs",
        ]  # fmt: skip
        return _run([*base, *args], timeout=timeout)

    def start(self) -> None:
        for folder in ("root", "run", "tmp"):
            (self._state / folder).mkdir(parents=True, exist_ok=True)
        archive = self._state / "rootfs.tar"
        packed = _run(["tar", "-C", str(self._rootfs), "-cf", str(archive), "."], timeout=300)
        if packed.returncode != 0:
            raise ContainerError(f"packing the rootfs failed: {packed.stderr.strip()}")
        imported = self._podman("import", str(archive), self._image, timeout=300)
        if imported.returncode != 0:
            raise ContainerError(f"podman import failed: {imported.stderr.strip()}")
        self.started = True
        env = [f"--env={k}={v}" for k, v in self._env.items()]
        created = self._podman(
            "run", "--detach", "--name", self._name, f"--network=ns:{self._netns}",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
            *env, self._image, *INIT,
        )  # fmt: skip
        if created.returncode != 0:
            raise ContainerError(f"podman run failed: {created.stderr.strip()}")
        self.id = created.stdout.strip().splitlines()[-1]

    def exec(self, argv: list[str], env: dict[str, str], timeout: float = EXEC_TIMEOUT) -> Executed:
        flags = [f"--env={k}={v}" for k, v in env.items()]
        started = time.monotonic()
        try:
            result = self._podman("exec", *flags, self._name, *argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Executed(tuple(argv), -1, "", f"timed out after {timeout:.0f} s", timeout)
        return Executed(
            tuple(argv), result.returncode, result.stdout, result.stderr, time.monotonic() - started
        )

    def stop(self) -> list[str]:
        if not self.started:
            return []
        self._podman("rm", "--force", "--time", "0", self._name)
        self._podman("rmi", "--force", self._image)
        left = remove_cgroups(f"libpod-{self.id}") if self.id else []
        shutil.rmtree(self._state, ignore_errors=True)
        return left


def podman_available() -> bool:
    return shutil.which("podman") is not None and os.geteuid() == 0
