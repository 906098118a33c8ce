"""Golden tests for the Kubernetes audit source: hand-written ``audit.k8s.io/v1`` events as the
API server's log backend writes them (``&`` in requestURI escaped as ``\\u0026`` by Go's encoder):
``kubectl cp`` in both directions and with ``--retries``, SPDY and WebSocket execs, a denied exec,
an attach, and pod creates at the three audit levels."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import FALCO, OCSF, TETRAGON, ZEEK, read
from tidewaiter.events import Activity, Api, Container, Event, Image, Kind, Mount, Process, RawRef
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.k8s_audit  # noqa: E402, F401 - registers the source
from tidewaiter.sources.k8s_audit import K8sAuditDecoder, pod_container  # noqa: E402

T0 = 1709287200.0  # 2024-03-01T10:00:00Z
ALICE = "alice@example.com"
KUBECTL_129 = "kubectl/v1.29.3 (linux/amd64) kubernetes/6813625"
API_POD = "api-7d9f8b6c5-x2k4q"
API = Container(uid=f"pod:shop/{API_POD}/api", name="api", pod_name=API_POD, namespace="shop")


@pytest.fixture(scope="module")
def path(fixtures: Path) -> Path:
    return fixtures / "k8s_audit" / "audit.jsonl"


@pytest.fixture(scope="module")
def by_line(path: Path) -> dict[int, Event]:
    return {event.raw.line or 0: event for event in read(path)[0]}


def ref(path: Path, line: int) -> RawRef:
    return RawRef("k8s-audit", str(path), line=line)


def test_lines_are_sniffed_and_counted(path: Path) -> None:
    events, report = read(path)
    assert report.files == {str(path): "k8s-audit"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (16, 8, 8, 0)
    assert len(events) == 8


def test_kubectl_cp_from_a_pod_is_an_exec_of_tar(path: Path, by_line: dict[int, Event]) -> None:
    command = ("tar", "cf", "-", "/var/lib/postgresql/data")
    assert by_line[1] == Event(
        time=T0 + 0.101234,  # requestReceivedTimestamp, the same at every stage
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        raw=ref(path, 1),
        container=Container(
            uid="pod:payments/db-0/db", name="db", pod_name="db-0", namespace="payments"
        ),
        process=Process(cmd_line="tar cf - /var/lib/postgresql/data", args=command),
        api=Api(
            operation="exec",
            resource="pods/exec",
            user=ALICE,
            source_ips=("203.0.113.40",),
            user_agent=KUBECTL_129,
            response_code=101,
            command=command,
        ),
    )


def test_websocket_exec_with_retries_keeps_the_shell_payload_whole(
    path: Path, by_line: dict[int, Event]
) -> None:
    # kubectl 1.30+ upgrades a GET (verb get); cp --retries wraps tar in sh -c with tail -c+N.
    # First seen at RequestReceived, so there is no response code yet.
    command = ("sh", "-c", "tar cf - /srv/exports | tail -c+0")
    assert by_line[4] == Event(
        time=T0 + 60.5,
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        raw=ref(path, 4),
        container=API,
        process=Process(cmd_line="sh -c 'tar cf - /srv/exports | tail -c+0'", args=command),
        api=Api(
            operation="exec",
            resource="pods/exec",
            user=ALICE,
            source_ips=("203.0.113.40", "10.0.0.12"),
            user_agent="kubectl/v1.31.1 (darwin/arm64) kubernetes/948afe5",
            command=command,
        ),
    )


def test_denied_exec_is_kept_with_its_code(by_line: dict[int, Event]) -> None:
    api = by_line[6].api
    assert api is not None
    assert (api.user, api.response_code, api.command) == (
        "bob@example.com",
        403,
        ("tar", "cf", "-", "/etc/ssl/private"),
    )
    assert by_line[6].time == T0 + 90.0001


def test_attach_has_no_command(path: Path, by_line: dict[int, Event]) -> None:
    assert by_line[7] == Event(
        time=T0 + 105.0,
        kind=Kind.ORCHESTRATOR,
        activity=Activity.EXEC,
        raw=ref(path, 7),
        container=API,
        api=Api(
            operation="attach",
            resource="pods/attach",
            user=ALICE,
            source_ips=("203.0.113.40",),
            user_agent=KUBECTL_129,
            response_code=101,
        ),
    )


def test_kubectl_cp_into_a_pod_is_read_too(by_line: dict[int, Event]) -> None:
    # A source does not judge: the extract side is an exec like any other.
    api = by_line[14].api
    assert api is not None
    assert api.command == (
        "tar",
        "--no-same-permissions",
        "--no-same-owner",
        "-xmf",
        "-",
        "-C",
        "/tmp",
    )
    assert by_line[14].container == API


def test_privileged_host_network_pod_mounting_the_node_root(
    path: Path, by_line: dict[int, Event]
) -> None:
    assert by_line[8] == Event(
        time=T0 + 120.0,
        kind=Kind.ORCHESTRATOR,
        activity=Activity.OTHER,
        raw=ref(path, 8),
        container=Container(
            uid="pod:default/debug-host/shell",
            name="shell",
            image=Image(name="busybox:1.36"),
            pod_name="debug-host",
            namespace="default",
        ),
        api=Api(
            operation="create",
            resource="pods",
            user=ALICE,
            source_ips=("203.0.113.40",),
            user_agent=KUBECTL_129,
            response_code=201,
            mounts=(Mount(source="/", destination="/host"),),
            privileged=True,
            host_network=True,
        ),
    )


def test_controller_pod_named_by_generate_name(path: Path, by_line: dict[int, Event]) -> None:
    # One mount per container mounting a hostPath volume; a hostPath no container mounts is
    # still listed. Service account and emptyDir volumes are not host paths.
    image = "registry.example.com/shop/api:1.4.2"
    assert by_line[9] == Event(
        time=T0 + 180.0,
        kind=Kind.ORCHESTRATOR,
        activity=Activity.OTHER,
        raw=ref(path, 9),
        container=Container(
            uid="pod:shop/api-7d9f8b6c5-/api",
            name="api",
            image=Image(name=image),
            pod_name="api-7d9f8b6c5-",
            namespace="shop",
        ),
        api=Api(
            operation="create",
            resource="pods",
            user="system:serviceaccount:kube-system:replicaset-controller",
            source_ips=("10.0.0.2",),
            user_agent="kube-controller-manager/v1.29.3 (linux/amd64) kubernetes/6813625/"
            "system:serviceaccount:kube-system:replicaset-controller",
            response_code=201,
            mounts=(
                Mount(source="/var/log/pods", destination="/var/log/app", read_only=True),
                Mount(source="/var/log/pods", destination="/logs"),
                Mount(source="/var/cache/shop"),
            ),
            privileged=False,
            host_network=False,
        ),
    )


def test_pod_create_at_metadata_level_has_no_spec(by_line: dict[int, Event]) -> None:
    event = by_line[10]
    assert event.container == Container(
        uid="pod:jobs/batch-1/", pod_name="batch-1", namespace="jobs"
    )
    assert event.api is not None
    assert (event.api.mounts, event.api.privileged, event.api.host_network) == ((), None, None)


def test_one_event_per_request_and_nothing_from_other_calls(by_line: dict[int, Event]) -> None:
    # 2 pods/log, 3 and 5 later stages of requests already emitted, 11 list, 12 a secret,
    # 13 /version (no objectRef), 15 port-forward, 16 a pod create that was only a dry run.
    assert sorted(by_line) == [1, 4, 6, 7, 8, 9, 10, 14]


def test_pod_container_is_the_one_synthetic_id_convention() -> None:
    assert pod_container("shop", "api-0", "api") == "pod:shop/api-0/api"
    assert pod_container(None, "api-0", None) == "pod:/api-0/"


def _exec_line(audit_id: str) -> bytes:
    return (
        b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"' + audit_id.encode() + b'",'
        b'"stage":"ResponseStarted","verb":"create","requestURI":"/api/v1/namespaces/a/pods/p/exec'
        b'?command=id\\u0026container=c","objectRef":{"resource":"pods","namespace":"a",'
        b'"name":"p","subresource":"exec"},"stageTimestamp":"2024-03-01T10:00:00Z"}'
    )


def test_remembered_ids_are_bounded() -> None:
    decoder = K8sAuditDecoder(capacity=3)
    where = RawRef("k8s-audit", "x", line=1)
    assert len(list(decoder.feed(_exec_line("first"), where))) == 1
    for number in range(3):
        assert list(decoder.feed(_exec_line("first"), where)) == []  # still remembered
        decoder.feed(_exec_line(f"id-{number}"), where)
    # Forgotten once the capacity is passed: a very late stage would be emitted again.
    assert len(list(decoder.feed(_exec_line("first"), where))) == 1


def test_malformed_lines_are_counted_and_located(fixtures: Path) -> None:
    path = fixtures / "k8s_audit" / "malformed.jsonl"
    events, report = read(path, fmt="k8s-audit")
    assert report.records == 12  # the blank line 6 is not a record
    assert report.skipped == Counter(
        {
            "malformed JSON": 2,
            "JSON is not an object": 1,
            "an EventList document, not one event a line": 1,
            "not an audit event": 1,
            "objectRef is not an object": 1,
            "record has no time": 1,
            "pods/exec without a pod name": 1,
            "unreadable time 'soon'": 1,
        }
    )
    assert [(p.where, p.reason) for p in report.examples] == [
        ("line 1", "malformed JSON"),
        ("line 2", "JSON is not an object"),
        ("line 3", "an EventList document, not one event a line"),
        ("line 4", "not an audit event"),
        ("line 5", "objectRef is not an object"),
        ("line 7", "record has no time"),
        ("line 9", "pods/exec without a pod name"),
        ("line 10", "unreadable time 'soon'"),
        ("line 12", "malformed JSON"),
    ]
    # Line 8 repeats line 7's auditID: a broken first stage does not swallow the request.
    assert [event.raw.line for event in events] == [8, 11, 13]
    assert (report.events, report.ignored) == (3, 0)
    # Invalid UTF-8, raw in userAgent and percent-encoded in a command, is kept and marked.
    api = events[1].api
    assert api is not None
    assert api.user_agent == "kubectl/v1.29.3 (linux/amd64) \ufffd"
    assert api.command == ("tar", "cf", "-", "/data/caf\ufffd")
    # Types drift: sourceIPs as one string, the code as text, a spec that is not an object.
    assert events[2].api == Api(
        operation="create",
        resource="pods",
        user="carol@example.com",
        source_ips=("10.0.0.1",),
        user_agent=KUBECTL_129,
        response_code=201,
    )
    assert events[2].container == Container(
        uid="pod:shop/odd-pod/", pod_name="odd-pod", namespace="shop"
    )


def test_sniff_accepts_audit_events(path: Path, fixtures: Path) -> None:
    assert get("k8s-audit").sniff(path.read_bytes()[:65536])
    assert get("k8s-audit").sniff((fixtures / "k8s_audit" / "malformed.jsonl").read_bytes())


@pytest.mark.parametrize(
    "head",
    [TETRAGON, FALCO, ZEEK, OCSF, b"", b"\x00\x01binary", b"{}\n"],
    ids=["tetragon", "falco", "zeek-json", "ocsf", "empty", "binary", "empty-object"],
)
def test_sniff_rejects_other_formats(head: bytes) -> None:
    assert not get("k8s-audit").sniff(head)


def test_sniff_rejects_every_other_fixture(fixtures: Path) -> None:
    others = [
        f for f in sorted(fixtures.rglob("*")) if f.is_file() and f.parent.name != "k8s_audit"
    ]
    assert any(f.parent.name == "eslogger" for f in others)
    for other in others:
        assert not get("k8s-audit").sniff(other.read_bytes()[:65536]), other
