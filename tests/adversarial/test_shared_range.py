"""Class 10, first bullet of issue 11: 100.64.0.0/10 (carrier NAT, some pod networks, overlay
VPNs an attacker can join) is internal only by a documented choice (--shared-range), and the
bytes sent there never vanish from the evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.trace import FORMATS, Trace, analytic, detect

SHARED = "100.100.7.9"  # a Tailscale-style address in the shared range


def archive_then_send() -> Trace:
    trace = Trace()
    tar = trace.run(0, "tar", "czf", "/tmp/a.tgz", "/srv")
    trace.write_file(0.5, tar, "/tmp/a.tgz")
    nc = trace.run(10, "/usr/bin/python3", "-c", "import socket")  # a socket, not a named tool
    trace.send(10.2, nc, SHARED, 7_340_032)
    return trace


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_to_the_shared_range_stay_in_the_evidence_when_it_is_internal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    [alert] = detect(capsys, str(archive_then_send().write(tmp_path, fmt)))
    assert analytic(alert) == "tw-archive-internal"
    assert "7340032 bytes to internal (shared range" in str(alert)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_shared_range_can_be_the_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = archive_then_send().write(tmp_path, fmt)
    [alert] = detect(capsys, str(path), "--shared-range", "external")
    assert analytic(alert) == "tw-archive-exfil"
    assert "7340032 bytes to non-internal" in str(alert)
