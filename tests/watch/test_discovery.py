"""Files that appear in a watched folder after start: a new one is read from its first line, a
copy that rotation made of a watched one (renamed, compressed, copied before truncation) is
named once and never replayed."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from tests.watch.harness import Watch, jsonl_alerts, poll
from tidewaiter.alerts import evidence_ref
from tidewaiter.watch.discovery import Discovery
from tidewaiter.watch.inputs import Input

ROOT = Path(__file__).resolve().parents[2]
TETRAGON = ROOT / "src" / "tidewaiter" / "demo" / "linux-tar-upload.tetragon.jsonl"
ECS = ROOT / "tests" / "fixtures" / "ecs" / "auditbeat_auditd_container.ndjson"


class _Named:
    """A stand-in input: Discovery only hands back what make_input built."""

    def __init__(self, name: str) -> None:
        self.name = name


def discovery(folder: Path, said: list[str]) -> tuple[Discovery, list[str]]:
    made: list[str] = []

    def make(path: str) -> Input:
        made.append(path)
        return _Named(path)  # type: ignore[return-value]

    watched = [str(p) for p in sorted(folder.iterdir())]
    return Discovery([str(folder)], make, said.append, watched, interval=0.0), made


def test_new_files_are_watched_and_rotated_copies_are_not(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    export = folder / "export.log"
    export.write_bytes(TETRAGON.read_bytes())
    said: list[str] = []
    found, made = discovery(folder, said)
    assert found.poll(1.0) == []

    # Rotation renames the followed file and starts a new one.
    export.rename(folder / "export.log.1")
    export.write_bytes(ECS.read_bytes())
    # logrotate's delaycompress later compresses the renamed one: a new inode, the same records.
    (folder / "export.log.2.gz").write_bytes(gzip.compress((folder / "export.log.1").read_bytes()))
    # copytruncate copies before truncating: a new inode, the same first record.
    shutil.copy(export, folder / "export.log.copy")
    # A new export whose first record is still being written cannot be told apart yet: followed.
    (folder / "partial.log").write_bytes(b'{"process_exec":')
    # A new, different file dropped into the folder.
    (folder / "other.ndjson.gz").write_bytes(
        gzip.compress(b"\n".join(ECS.read_bytes().splitlines()[1:]))
    )

    found.poll(2.0)
    assert sorted(Path(p).name for p in made) == ["other.ndjson.gz", "partial.log"]
    by_file = {line.split(" appeared: ")[0]: line.split(" appeared: ")[1] for line in said}
    assert by_file[str(folder / "export.log.1")].startswith("the same file as one already watched")
    assert by_file[str(folder / "export.log.2.gz")].startswith("a rotated copy")
    assert by_file[str(folder / "export.log.copy")].startswith("a rotated copy")
    assert found.poll(3.0) == []  # each is judged once
    assert len(said) == 5


def test_a_named_file_needs_no_rescan(tmp_path: Path) -> None:
    named = tmp_path / "export.log"
    named.write_bytes(TETRAGON.read_bytes())
    said: list[str] = []
    found = Discovery([str(named)], _Named, said.append, [str(named)])  # type: ignore[arg-type]
    assert not found.active
    assert found.poll(1.0) == []


def test_watch_reads_a_file_that_appears_and_not_the_rotated_copy(tmp_path: Path) -> None:
    folder = tmp_path / "pods"
    folder.mkdir()
    first = folder / "0.log"
    first.write_bytes(ECS.read_bytes())
    out = tmp_path / "alerts.jsonl"
    args = [str(folder), "--db", str(tmp_path / "tw.duckdb"), "--out", str(out)]
    args += ["--idle-flush", "0.5", "--from-end"]
    with Watch(args, tmp_path).start() as watch:
        watch.wait_for("watching 1 input(s)")
        # The pod restarts: its runtime starts a new log; the old one is compressed beside it.
        (folder / "1.log").write_bytes(TETRAGON.read_bytes())
        (folder / "0.log.20261207-050000.gz").write_bytes(gzip.compress(first.read_bytes()))
        alerts = poll(lambda: jsonl_alerts(out), 60, "the new file's alert")
        watch.wait_for("0.log.20261207-050000.gz appeared: a rotated copy")
        assert watch.stop() == 0
    # --from-end skips what files held at start; a file that appears later is all new.
    assert evidence_ref(alerts[0]["evidences"][0])["path"] == str(folder / "1.log")
    assert len(jsonl_alerts(out)) == 1
