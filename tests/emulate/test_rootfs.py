"""Root filesystems and the files scenarios put in them, built without starting anything."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tidewaiter.emulate import rootfs
from tidewaiter.emulate.scenario import FileSpec, get


def test_busybox_rootfs_has_one_relative_link_per_applet(tmp_path: Path) -> None:
    if rootfs.static_busybox() is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but busybox-static is not installed (.ci/deps/live.sh)")
        pytest.skip("busybox-static is not installed")
    target = tmp_path / "rootfs"
    rootfs.build_busybox(target)
    tar = target / "bin" / "tar"
    assert tar.is_symlink()
    assert os.readlink(tar) == "busybox"
    assert (target / "tmp").stat().st_mode & 0o1777 == 0o1777
    result = subprocess.run(
        [str(target / "bin" / "busybox"), "echo", "ok"], capture_output=True, text=True, check=True
    )
    assert result.stdout == "ok\n"


def test_a_dynamic_binary_is_not_taken_for_a_static_busybox() -> None:
    python = Path(shutil.which("python3") or "/usr/bin/python3").resolve()
    assert rootfs._dynamic(python)


def test_scenario_files_are_written_from_the_host(tmp_path: Path) -> None:
    rootfs.place_files(tmp_path, get("benign-extraction").files)
    with tarfile.open(tmp_path / "opt" / "release.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["app/bin/server", "app/config.yaml"]
    with zipfile.ZipFile(tmp_path / "opt" / "assets.zip") as archive:
        assert sorted(archive.namelist()) == ["index.html", "style.css"]
    assert (tmp_path / "opt" / "seed.csv.gz").read_bytes()[:2] == b"\x1f\x8b"
    rootfs.place_files(tmp_path, (FileSpec(path="/srv/data.bin", random_bytes=4096),))
    assert len((tmp_path / "srv" / "data.bin").read_bytes()) == 4096


def test_a_package_file_is_a_debian_archive(tmp_path: Path) -> None:
    rootfs.place_files(tmp_path, get("benign-package-install").files)
    package = tmp_path / "var/cache/apt/archives/tw-hello_1.0_all.deb"
    data = package.read_bytes()
    assert data.startswith(b"!<arch>\ndebian-binary   ")
    if shutil.which("dpkg-deb"):
        listing = subprocess.run(
            ["dpkg-deb", "--contents", str(package)], capture_output=True, text=True, check=True
        ).stdout
        assert "./usr/local/bin/tw-hello" in listing
        info = subprocess.run(
            ["dpkg-deb", "--field", str(package), "Package"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert info.strip() == "tw-hello"
    else:  # the data member is still a readable tar
        start = data.index(b"data.tar.gz") + 60
        with tarfile.open(fileobj=io.BytesIO(data[start:])) as archive:
            assert "./usr/local/bin/tw-hello" in archive.getnames()


def test_a_file_outside_the_rootfs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(rootfs.RootfsError, match="outside the root filesystem"):
        rootfs.place_files(tmp_path / "root", (FileSpec(path="/../escape", text="x"),))
    assert not (tmp_path / "escape").exists()


def test_the_debian_cache_key_follows_its_package_list() -> None:
    one = rootfs.debian_key(("zip", "curl"), "bookworm", "http://deb.debian.org/debian")
    assert one == rootfs.debian_key(
        ("curl", "zip", "zip"), "bookworm", "http://deb.debian.org/debian"
    )
    assert one != rootfs.debian_key(("curl",), "bookworm", "http://deb.debian.org/debian")
    assert one != rootfs.debian_key(("zip", "curl"), "trixie", "http://deb.debian.org/debian")


def test_the_mirror_comes_from_the_apt_sources() -> None:
    assert rootfs.mirror().startswith("http")
    assert rootfs.mirror().rstrip("/").endswith("/debian")
