"""Kubernetes audit as the managed clouds deliver it: one ``kubectl cp`` out of a pod (an exec of
``tar cf - /data``) as the API server logs it, then the same record inside AKS diagnostic
settings records (``properties.log`` as a string and as an object), EKS CloudWatch Logs exports
(``message``, ``@message``, a subscription's ``logEvents`` batch) and GKE Cloud Audit Logs
entries (``protoPayload``), hand-written from each cloud's documentation. The exec must come
through each with its command, user, source address and response code; then the real AKS, GKE
and EKS records in ../shared/corpus/realworld, read without --format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import read
from tidewaiter.events import Api, Event
from tidewaiter.pipeline import EngineConfig
from tidewaiter.run import detect_files
from tidewaiter.sources import all_sources, get

all_sources()
from tidewaiter.sources.k8s_audit import _decode, _unwrap  # noqa: E402

COMMAND = ("tar", "cf", "-", "/data")
EXEC = Api(
    operation="exec",
    resource="pods/exec",
    user="mallory@example.com",
    source_ips=("203.0.113.77",),
    user_agent="kubectl/v1.29.3 (linux/amd64) kubernetes/6813625",
    response_code=101,
    command=COMMAND,
)


def exec_events(fixtures: Path, name: str) -> tuple[list[Event], Counter[str]]:
    path = fixtures / "k8s_audit" / name
    events, report = read(path)
    assert report.files == {str(path): "k8s-audit"}, "recognised without --format"
    assert report.skipped_total == 0
    return events, report.foreign


def assert_the_exec(event: Event) -> None:
    assert event.api == EXEC
    assert event.container is not None
    assert (event.container.namespace, event.container.pod_name) == ("shop", "api-0")
    assert event.container.name == "api"
    assert event.time == 1717406100.123456


def test_self_managed(fixtures: Path) -> None:
    (event,), _ = exec_events(fixtures, "self_managed_exec.jsonl")
    assert_the_exec(event)


def test_aks_diagnostic_settings(fixtures: Path) -> None:
    events, foreign = exec_events(fixtures, "aks_diagnostic_exec.jsonl")
    assert len(events) == 2  # properties.log as a JSON string, then as an object
    for event in events:
        assert_the_exec(event)
    assert foreign == Counter({"AKS kube-apiserver log": 1})


def test_eks_cloudwatch_logs(fixtures: Path) -> None:
    events, foreign = exec_events(fixtures, "eks_cloudwatch_exec.jsonl")
    # message, @message, and a logEvents batch holding two stages of one request (one event).
    assert len(events) == 3
    for event in events:
        assert_the_exec(event)
    assert foreign == Counter({"CloudWatch Logs control message": 1})


def test_eks_through_firehose_to_s3(fixtures: Path) -> None:
    """Kinesis Data Firehose writes the subscription's batches into an S3 object back to back,
    with no separator: one line holding a control message and two batches."""
    events, foreign = exec_events(fixtures, "eks_firehose_s3_object.json")
    assert len(events) == 2  # two requests; the second stage of the first is a repeat
    for event in events:
        assert_the_exec(event)
    assert foreign == Counter()  # the control message is passed over inside the line


def test_gke_cloud_audit_logs(fixtures: Path) -> None:
    events, foreign = exec_events(fixtures, "gke_cloud_audit_exec.jsonl")
    with_options, without_options, refused = events
    assert_the_exec(with_options)
    # GKE leaves the query string out of resourceName: without the request body, the exec is
    # still there, with who, from where and the outcome, but no command.
    assert without_options.api == Api(
        operation="exec",
        resource="pods/exec",
        user=EXEC.user,
        source_ips=EXEC.source_ips,
        user_agent=EXEC.user_agent,
        response_code=101,  # let through: the upgrade the API server answers an exec with
    )
    assert refused.api is not None
    assert (refused.api.user, refused.api.response_code) == ("eve@example.com", 403)
    assert foreign == Counter({"Google Cloud compute.googleapis.com audit": 1})


def test_the_exec_alerts_from_every_cloud(fixtures: Path) -> None:
    for name in (
        "self_managed_exec.jsonl",
        "aks_diagnostic_exec.jsonl",
        "eks_cloudwatch_exec.jsonl",
        "gke_cloud_audit_exec.jsonl",
    ):
        outcome = detect_files([str(fixtures / "k8s_audit" / name)], EngineConfig(), [])
        analytics = {a["finding_info"]["analytic"]["uid"] for a in outcome.alerts}
        assert analytics == {"tw-k8s-exec-copy"}, name


@pytest.mark.parametrize(
    "line",
    [
        b'{"category":"kube-audit","properties":{"log":"{\\"kind\\":\\"Event\\"'
        b',\\"apiVersion\\":\\"audit.k8s.io/v1\\",\\"auditID\\":\\"x\\"}"}}\n',
        b'{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog",'
        b'"serviceName":"k8s.io"}}\n',
        b'{"messageType":"DATA_MESSAGE","logStream":"kube-apiserver-audit-1","logEvents":[]}\n',
    ],
    ids=["aks", "gke", "eks-batch"],
)
def test_sniff_recognises_each_envelope(line: bytes) -> None:
    assert get("k8s-audit").sniff(line)


# --- the real records ------------------------------------------------------------------------


@pytest.mark.corpus
def test_real_aks_kube_audit(corpus: Path) -> None:
    path = corpus / "realworld" / "k8s_audit_managed" / "aks_diagnostic_kube-audit.log"
    _, report = read(path)
    assert report.files == {str(path): "k8s-audit"}
    # A lease update: read, and nothing in it is a pod exec or create.
    assert (report.records, report.events, report.ignored, report.skipped_total) == (1, 0, 1, 0)
    (audit,) = _unwrap(_decode(path.read_bytes().splitlines()[0]))
    assert audit.user == {
        "username": "aksService",
        "groups": ["system:masters", "system:authenticated"],
    }
    assert audit.verb == "update"
    assert audit.object_ref is not None


@pytest.mark.corpus
def test_real_mixed_eks_gke_aks(corpus: Path) -> None:
    path = corpus / "realworld" / "k8s_audit_managed" / "eks_gke_aks_mixed_audit.log"
    _, report = read(path)
    assert report.files == {str(path): "k8s-audit"}
    assert (report.records, report.events, report.ignored, report.skipped_total) == (5, 0, 5, 0)
    audits = [_unwrap(_decode(line))[0] for line in path.read_bytes().splitlines()]
    assert [a.verb for a in audits] == ["get", "get", "get", "get", "update"]
    gke, aks = audits[3], audits[4]
    assert gke.user == {"username": "system:gke-master-healthcheck"}
    assert gke.source_ips == ["67.43.156.1"]
    assert gke.object_ref is None  # readyz: a non-resource request
    assert isinstance(aks.user, dict)
    assert aks.user["username"] == "aksService"


@pytest.mark.corpus
def test_real_gke_cloud_audit(corpus: Path) -> None:
    path = corpus / "realworld" / "k8s_audit_managed" / "gke_cloud_audit_first11.log"
    events, report = read(path)
    assert report.files == {str(path): "k8s-audit"}
    assert events == []  # no pod exec or create among them
    assert report.records == 11
    assert report.ignored == 5  # the GKE records: read, nothing to use
    assert report.foreign == Counter(
        {
            "Google Cloud compute.googleapis.com audit": 5,
            "Google Cloud cloudbilling.googleapis.com audit": 1,
        }
    )
    assert report.skipped_total == 0
