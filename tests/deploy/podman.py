"""The tidewaiter image built with Podman on a base made here, and Podman to run manifests.

No registry is reachable from these machines, so the base is the cached Debian minbase root
filesystem the live emulation builds (with python3 and venv), imported with ``podman import``;
and pip inside the build has no network, so the locked wheels are downloaded on the host (by
hash, from the lock files) into the build context and installed with ``--no-index``.

Podman's storage lives under the tidewaiter cache (~/.cache/tidewaiter/podman), so the base
image and unchanged build layers are reused by the next run; ``exclusive`` keeps two runs apart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tidewaiter.emulate.rootfs import cache_dir, debian_key, debian_rootfs, mirror, suite

ROOT = Path(__file__).resolve().parents[2]
BASE_PACKAGES = ("python3", "python3-venv")
IMAGE = "localhost/tidewaiter:test"
LOCKS = (ROOT / "requirements" / "runtime.txt", ROOT / "requirements" / "build.txt")
ULIMITS = 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'


def missing() -> str | None:
    if os.geteuid() != 0:
        return "building and playing the image needs root (rootful podman)"
    absent = [t for t in ("podman", "runc", "catatonit", "debootstrap") if not shutil.which(t)]
    if absent:
        return f"missing {', '.join(absent)}: run .ci/deps/podman.sh and .ci/deps/live.sh"
    return None


def require() -> None:
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and the image tests must run, but: {reason}")
    pytest.skip(reason)


@dataclass
class Podman:
    home: Path

    @property
    def base(self) -> list[str]:
        return [
            "podman",
            "--root", str(self.home / "root"),
            "--runroot", str(self.home / "run"),
            "--tmpdir", str(self.home / "tmp"),
            "--runtime", "runc",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    @property
    def env(self) -> dict[str, str]:
        conf = self.home / "containers.conf"
        if not conf.exists():
            conf.write_text(f"[containers]\n{ULIMITS}\n")
        return {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.base, *args],
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result


@contextmanager
def exclusive() -> Iterator[None]:
    """This cache's Podman storage to one test run at a time (its own lock, not the live tests'
    one, which a run may already hold through flock(1): the same lock would deadlock)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / "podman.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def podman() -> Podman:
    home = cache_dir() / "podman"
    for name in ("root", "run", "tmp"):
        (home / name).mkdir(parents=True, exist_ok=True)
    return Podman(home)


def base_image(pm: Podman) -> str:
    """The Debian base with python3, imported once per root filesystem key."""
    rootfs = debian_rootfs(BASE_PACKAGES)
    tag = f"localhost/tw-debian-python:{debian_key(BASE_PACKAGES, suite(), mirror())}"
    if pm("image", "exists", tag, check=False).returncode != 0:
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--exclude=./.tidewaiter-complete", "-c", "."],
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run(
            [*pm.base, "import", "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=pm.env,
        )
        tar.wait(timeout=60)
        assert imported.returncode == 0, imported.stderr
    return tag


def wheels() -> Path:
    """Every locked wheel, downloaded by hash once per lock content."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in LOCKS)).hexdigest()[:16]
    folder = cache_dir() / f"wheels-{digest}"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--require-hashes", "--only-binary=:all:", "-d", str(folder)]
        for lock in LOCKS:
            command += ["-r", str(lock)]
        subprocess.run(command, check=True, timeout=600, capture_output=True)
        (folder / ".complete").touch()
    return folder


def context(target: Path) -> Path:
    """What the Containerfile's COPY reads, plus the wheels (the build has no network)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Containerfile", ".containerignore", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "requirements", target / "requirements")
    shutil.copytree(ROOT / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(wheels(), target / "wheels", ignore=shutil.ignore_patterns(".complete"))
    return target


def build(pm: Podman, workdir: Path, extra: Sequence[str] = ()) -> str:
    base = base_image(pm)
    ctx = context(workdir / "context")
    pm(
        "build", "--network", "none", "--layers",
        "--build-arg", f"BASE={base}",
        "--build-arg", "PIP_NO_INDEX=1",
        "--build-arg", "PIP_FIND_LINKS=/src/wheels",
        "-t", IMAGE, "-f", str(ctx / "Containerfile"), *extra, str(ctx),
        timeout=900,
    )  # fmt: skip
    pm("image", "prune", "--force", check=False)  # earlier builds' images, now untagged
    return IMAGE
