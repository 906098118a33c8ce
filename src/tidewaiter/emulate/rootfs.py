"""Root filesystems for live emulation, built locally because no image registry is reachable.

- busybox: the distribution's static busybox and one relative symlink per applet; instant, so it
  is built fresh for every run.
- debian: ``debootstrap --variant=minbase`` with the packages scenarios need (zip, gnupg,
  python3, ...), built once and cached under a key made of its suite, mirror and package list.
  Each run sees it through an overlay mount, so no run changes the cache.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tidewaiter.emulate.scenario import FileSpec

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
DEBOOTSTRAP_TIMEOUT = 900
_PT_INTERP = 3
_DIRS = ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "srv", "var/log", "usr/bin", "opt")


class RootfsError(Exception):
    """A root filesystem could not be built; the message says what is missing."""


# --- busybox ---------------------------------------------------------------------------------


def static_busybox() -> Path | None:
    """The busybox binary that runs with no libraries around it (busybox-static), if any."""
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file() and not _dynamic(candidate):
            return candidate
    found = shutil.which("busybox")
    if found and not _dynamic(Path(found)):
        return Path(found)
    return None


def _dynamic(binary: Path) -> bool:
    """Whether an ELF binary names an interpreter (the dynamic loader)."""
    with binary.open("rb") as stream:
        header = stream.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # only 64-bit ELF is expected here
            return True
        order = "<" if header[5] == 1 else ">"
        (phoff,) = struct.unpack_from(order + "Q", header, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        stream.seek(phoff)
        table = stream.read(phentsize * phnum)
    return any(
        struct.unpack_from(order + "I", table, i * phentsize)[0] == _PT_INTERP for i in range(phnum)
    )


def build_busybox(target: Path) -> None:
    busybox = static_busybox()
    if busybox is None:
        raise RootfsError("a static busybox is not installed (apt-get install busybox-static)")
    for name in _DIRS:
        (target / name).mkdir(parents=True, exist_ok=True)
    (target / "tmp").chmod(0o1777)
    shutil.copy2(busybox, target / "bin" / "busybox")
    listed = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30
    )
    for applet in listed.stdout.split():
        link = target / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")  # relative: the rootfs has no /usr/bin/busybox
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (target / "etc" / "group").write_text("root:x:0:\n")
    (target / "etc" / "hostname").write_text("tw-emulation\n")


# --- debian ----------------------------------------------------------------------------------


def cache_dir() -> Path:
    override = os.environ.get("TIDEWAITER_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tidewaiter"


def mirror() -> str:
    """The distribution's own Debian mirror, from the apt sources (deb822 or one-line)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            urls = words[1:] if words[0] == "URIs:" else words[1:2] if words[0] == "deb" else []
            for url in urls:
                if url.startswith("http") and url.rstrip("/").endswith("/debian"):
                    return url
    return DEFAULT_MIRROR


def suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME=") and line.split("=", 1)[1].strip('"'):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return DEFAULT_SUITE


def debian_key(packages: tuple[str, ...], suite_name: str, mirror_url: str) -> str:
    material = "\n".join(["minbase", suite_name, mirror_url, *sorted(set(packages))])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def debian_rootfs(packages: tuple[str, ...], cache: Path | None = None) -> Path:
    """The cached Debian minbase rootfs with these packages, built on first use.

    A lock file serialises builds across processes; a build that fails leaves nothing behind."""
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed (apt-get install debootstrap)")
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    suite_name, mirror_url = suite(), mirror()
    key = debian_key(packages, suite_name, mirror_url)
    final = cache / f"debian-{key}"
    with _locked(cache / f"debian-{key}.lock"):
        if (final / ".tidewaiter-complete").is_file():
            return final
        staging = cache / f"debian-{key}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)  # an interrupted earlier build
        command = ["debootstrap", "--variant=minbase"]
        if packages:
            command.append("--include=" + ",".join(sorted(set(packages))))
        command += [suite_name, str(staging), mirror_url]
        started = time.monotonic()
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            raise RootfsError(f"debootstrap took longer than {DEBOOTSTRAP_TIMEOUT} s") from None
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise RootfsError(f"debootstrap failed: {' '.join(tail)}")
        (staging / ".tidewaiter-complete").write_text(
            f"{' '.join(command)}\nbuilt in {time.monotonic() - started:.0f} s\n"
        )
        staging.rename(final)
    return final


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mount_overlay(lower: Path, run_dir: Path) -> Path:
    """A writable view of ``lower`` for one run; unmount it with ``unmount``."""
    upper, work, merged = run_dir / "upper", run_dir / "work", run_dir / "rootfs"
    for folder in (upper, work, merged):
        folder.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise RootfsError(f"overlay mount failed: {result.stderr.strip()}")
    return merged


def unmount(path: Path, attempts: int = 20) -> None:
    """Unmount, waiting out a mount kept busy for a moment by processes still exiting; as a
    last resort detach it lazily, so nothing can reach the lower (cached) tree through it."""
    for _ in range(attempts):
        if not os.path.ismount(path):
            return
        subprocess.run(["umount", str(path)], capture_output=True, check=False, timeout=30)
        time.sleep(0.1)
    if os.path.ismount(path):
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)


# --- the scenario's files --------------------------------------------------------------------


def place_files(rootfs: Path, files: tuple[FileSpec, ...]) -> None:
    """Write a scenario's files into the rootfs from the host, before the container starts, so
    that preparing them (packing a package to install) is not part of what the sensor sees."""
    for spec in files:
        target = rootfs / spec.path.lstrip("/")
        if not target.resolve().is_relative_to(rootfs.resolve()):
            raise RootfsError(f"file {spec.path} is outside the root filesystem")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_content(spec))


def _content(spec: FileSpec) -> bytes:
    if spec.archive == "tar.gz":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, text in sorted(spec.members.items()):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o755, 1_700_000_000
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
    if spec.archive == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in sorted(spec.members.items()):
                archive.writestr(name, text)
        return buffer.getvalue()
    if spec.archive == "gz":
        return gzip.compress((spec.text or "").encode(), mtime=0)
    if spec.archive == "deb":
        return _deb(spec.members)
    if spec.random_bytes is not None:
        return os.urandom(spec.random_bytes)
    return (spec.text or "").encode()


def _deb(members: dict[str, str]) -> bytes:
    """A Debian binary package: an ar archive of debian-binary, control.tar.gz, data.tar.gz.
    Members named ``DEBIAN/<file>`` go to the control archive, the rest are installed."""
    control = {k.removeprefix("DEBIAN/"): v for k, v in members.items() if k.startswith("DEBIAN/")}
    data = {k: v for k, v in members.items() if not k.startswith("DEBIAN/")}
    parts = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", _tar_gz(control)),
        ("data.tar.gz", _tar_gz(data)),
    ]
    out = bytearray(b"!<arch>\n")
    for name, body in parts:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        out += body + (b"\n" if len(body) % 2 else b"")
    return bytes(out)


def _tar_gz(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as archive:
        folders = sorted({str(p) for n in members for p in Path(n).parents} - {"."})
        for folder in folders:
            info = tarfile.TarInfo(f"./{folder}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            archive.addfile(info)
        for name, text in sorted(members.items()):
            body = text.encode()
            info = tarfile.TarInfo(f"./{name}")
            info.size, info.mtime = len(body), 1_700_000_000
            info.mode = 0o755 if "/bin/" in f"/{name}" else 0o644
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()
