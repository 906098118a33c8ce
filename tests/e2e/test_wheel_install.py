"""tidewaiter installed the way a user installs a Python tool: a wheel built from this tree,
put in a fresh virtual environment outside the repository, with the runtime dependencies the lock
pins. The demo and `detect` must work there: the catalog, the demo telemetry and the console
entry point all travel in the wheel, and nothing reaches back into the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv outside the repository holding only the wheel and its locked dependencies."""
    work = tmp_path_factory.mktemp("wheel-install")
    dist = work / "dist"
    # Build with the hatchling the lock installed, so no build backend is fetched unpinned.
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", dist, ROOT, cwd=work)  # fmt: skip
    [wheel] = dist.glob("tidewaiter-*.whl")
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=work)
    pip = venv / "bin" / "pip"
    lock = ROOT / "requirements" / "runtime.txt"
    _run(pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", lock, cwd=work)
    _run(pip, "install", "--quiet", "--no-deps", wheel, cwd=work)
    return venv


def test_the_wheel_holds_the_catalog_demo_license_and_types(tmp_path: Path) -> None:
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", tmp_path, ROOT, cwd=tmp_path)  # fmt: skip
    [wheel] = tmp_path.glob("tidewaiter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "tidewaiter/detection/catalog/archivers.yaml",
        "tidewaiter/demo/linux-tar-upload.tetragon.jsonl",
        "tidewaiter/sensor/program.bt",
        "tidewaiter/py.typed",
    ):
        assert expected in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "scenarios/")) for n in names)


def test_demo_and_detect_run_from_a_fresh_venv_outside_the_repository(
    installed: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    tidewaiter = installed / "bin" / "tidewaiter"
    location = _run(
        installed / "bin" / "python",
        "-c",
        "import tidewaiter, pathlib; print(pathlib.Path(tidewaiter.__file__).parent)",
        cwd=tmp_path,
        env=env,
    ).strip()
    package = Path(location)
    assert installed in package.parents, "the venv's copy, not the checkout, is imported"

    demo = _run(tidewaiter, "demo", cwd=tmp_path, env=env)
    assert "Archive staged and exfiltrated" in demo

    telemetry = package / "demo" / "linux-tar-upload.tetragon.jsonl"
    out = _run(tidewaiter, "detect", "--json", telemetry, cwd=tmp_path, env=env)
    [alert] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert alert["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    assert alert["severity"] == "Critical"
    assert not list(tmp_path.glob("*.duckdb")), "detect without --db writes no store"
