"""`tidewaiter ads`: the analytics as Palantir ADS documents, committed under docs/ads/ and
checked here against a fresh rendering."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tidewaiter.ads import render_all
from tidewaiter.cli.main import build_parser, main
from tidewaiter.detection.catalog import load
from tidewaiter.emulate import results
from tidewaiter.emulate.results import RunRecord

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ads"
SECTIONS = [
    "Goal",
    "Categorization",
    "Strategy Abstract",
    "Technical Context",
    "Blind Spots and Assumptions",
    "False Positives",
    "Validation",
    "Priority",
    "Response",
    "Additional Resources",
]


def test_the_committed_documents_are_current() -> None:
    rendered = render_all()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")}
    stale = sorted(
        n for n in rendered.keys() | committed.keys() if rendered.get(n) != committed.get(n)
    )
    assert stale == [], "docs/ads is stale: run `tidewaiter ads --out docs/ads` and commit it"


def test_every_analytic_has_every_ads_section_in_order() -> None:
    rendered = render_all()
    for uid in load().analytics:
        text = rendered[f"{uid}.md"]
        assert re.findall(r"^## (.+)$", text, flags=re.MULTILINE) == SECTIONS, uid
        assert "Not stated in the catalog." not in text, uid


def test_validation_names_emulate_commands_that_the_cli_accepts() -> None:
    text = render_all()["tw-archive-exfil.md"]
    validation = text.split("## Validation", 1)[1].split("## Priority", 1)[0]
    commands = re.findall(r"^\s+(tidewaiter emulate run .+)$", validation, flags=re.MULTILINE)
    assert "tidewaiter emulate run ads-linux-tar --live" in commands
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.command == "emulate", command


def test_the_cli_renders_one_analytic_with_its_last_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = tmp_path / "results.json"
    results.store(stored, [RunRecord("ads-linux-tar", "live", "linux", True, time=1.0)])
    assert main(["ads", "tw-archive-exfil", "--results", str(stored)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# ADS: Archive staged and exfiltrated")
    assert "Last runs: live on linux passed." in out
    assert "# ADS: Archive created" not in out  # only the one asked for
    assert main(["ads", "tw-no-such"]) == 4
    assert "no analytic 'tw-no-such'" in capsys.readouterr().err
    assert main(["ads", "--out", str(tmp_path / "ads")]) == 0
    assert {p.name for p in (tmp_path / "ads").iterdir()} == set(render_all())
