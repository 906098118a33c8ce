"""`tidewaiter report` opened in headless Chromium: the findings are on the page, the page reads
(a screenshot is taken), and script payloads planted in real telemetry stay inert text.

Chromium comes from Debian (.ci/deps/chromium.sh). Without it the browser tests skip, naming
what is missing; with CI set they fail instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tidewaiter.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
SCRIPT = "<script>document.title='XSS-SCRIPT'</script>"
IMG = '"><img src=x onerror="document.title=\'XSS-IMG\'">'
JS_URL = "javascript:document.title='XSS-URL'"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "chromium is not installed (.ci/deps/chromium.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and the report tests must run, but {reason}")
    pytest.skip(reason)


def browse(page: Path, *flags: str) -> str:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={page.parent / 'chromium-profile'}",
            *flags,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def planted_telemetry(folder: Path) -> Path:
    """The demo's tar-then-curl chain with payloads in command lines, file names and the
    container name, each still a record the tetragon reader and detection take."""

    def plant(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plant(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plant(v) for v in value]
        if isinstance(value, str):
            value = value.replace("/sensitive/data", f"/sensitive/{SCRIPT}")
            value = value.replace("/tmp/archive.tar.gz", f"/tmp/{IMG}.tar.gz")
            return JS_URL if value == "api" else value
        return value

    lines = [json.dumps(plant(json.loads(line))) for line in DEMO.read_text().splitlines()]
    path = folder / "planted.tetragon.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


class Elements(HTMLParser):
    """Every element and attribute of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((k, v or "") for k, v in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


@pytest.fixture
def planted_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    db = tmp_path / "tw.duckdb"
    telemetry = planted_telemetry(tmp_path)
    assert main(["detect", str(telemetry), "--db", str(db), "--json"]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(alerts) == 1, "the planted chain must still be detected"
    page = tmp_path / "report.html"
    assert main(["report", "--db", str(db), "--out", str(page)]) == 0
    return page, alerts[0]["finding_info"]["uid"]


def test_planted_payloads_are_escaped_text_never_markup(planted_report: tuple[Path, str]) -> None:
    page, _ = planted_report
    html = page.read_text()
    elements = parse(html)
    assert "script" not in elements.tags
    assert "img" not in elements.tags
    assert not any(v.strip().lower().startswith("javascript:") for _, v in elements.attributes)
    assert not any(k.startswith("on") for k, _ in elements.attributes)
    text = "".join(elements.text)
    for payload in (SCRIPT, IMG, JS_URL):
        assert payload in text  # shown to the reader, as text
    assert "&lt;script&gt;document.title=&#x27;XSS-SCRIPT&#x27;&lt;/script&gt;" in html
    policy = next(v for k, v in elements.attributes if k == "content" and "default-src" in v)
    assert "default-src 'none'" in policy
    assert "script-src 'none'" in policy


def test_chromium_shows_the_findings_and_runs_no_payload(
    planted_report: tuple[Path, str], tmp_path: Path
) -> None:
    page, uid = planted_report
    dom = browse(page, "--virtual-time-budget=3000", "--dump-dom")
    # a payload that ran would have renamed the page
    assert "<title>tidewaiter report</title>" in dom
    assert "XSS" not in dom.split("</title>")[0]
    elements = parse(dom)
    assert "img" not in elements.tags
    assert "script" not in elements.tags
    text = "".join(elements.text)
    assert uid in text
    assert "Archive staged and exfiltrated from a container" in text
    assert "T1560.001" in text
    assert "Exfiltration" in text
    assert f"/tmp/{IMG}.tar.gz" in text  # the evidence file name, as text
    assert "Process tree" in text
    assert "Verify: profiles and suppressions" in text
    assert "svg" in elements.tags
    assert "rect" in elements.tags
    screenshot = tmp_path / "report.png"
    browse(page, "--window-size=1280,1800", f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_the_chart_puts_archive_before_egress(tmp_path: Path) -> None:
    out, page = tmp_path / "alerts.jsonl", tmp_path / "r.html"
    assert main(["detect", str(DEMO), "--out", str(out)]) == 0
    assert main(["report", "--alerts", str(out), "--out", str(page)]) == 0
    svg = page.read_text().split("<svg", 1)[1].split("</svg>", 1)[0]
    archive = [
        float(part.split('"', 1)[0]) for part in svg.split('x="')[1:] if 'class="archive"' in part
    ]
    egress = [
        float(part.split('"', 1)[0]) for part in svg.split('x="')[1:] if 'class="egress"' in part
    ]
    assert archive
    assert egress
    assert max(archive) < min(egress)  # left to right: the archive, then the transfer


def test_a_report_never_creates_a_store_and_names_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.duckdb"
    assert main(["report", "--db", str(missing), "--out", str(tmp_path / "r.html")]) == 2
    assert not missing.exists()
    assert "does not exist" in capsys.readouterr().err
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text('not json\n{"a": 1}\n')
    assert main(["report", "--alerts", str(alerts), "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert f"{alerts}:1: not JSON" in err
    assert f"{alerts}:2: not an OCSF finding" in err
    assert "0 finding(s) written" in err


def test_verify_shows_the_suppression_that_came_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tw.duckdb"
    assert main(["detect", str(DEMO), "--db", str(db), "--json"]) == 0
    rule = [
        *("suppress", "add", "nightly-upload", "--db", str(db)),
        *("--reason", "the nightly upload", "--author", "ops"),
        *("--analytic", "tw-archive-exfil", "--image", "registry.example.com/payments/*"),
        *("--destination", "198.51.100.0/24"),  # not where this curl sent the archive
    ]
    assert main(rule) == 0
    capsys.readouterr()
    page = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--out", str(page)]) == 0
    verify = page.read_text().split("Verify: profiles and suppressions", 1)[1]
    assert "nightly-upload" in verify
    assert "% close" in verify
    assert "198.51.100.0/24" in verify
