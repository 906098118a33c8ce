"""Hostile input for the Kubernetes audit source: random bytes, random JSON in the audit Event's
vocabulary, and 10,000 seeded mutations of the fixture records. No input may escape as an
exception, and every record must be accounted for as events, nothing to use (including a later
stage of a request already emitted), or a skip located by its line."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import robustness
from tests.robustness import (
    SETTINGS,
    account_mutations,
    json_values,
    mutated_lines,
    mutated_records,
    nonblank_lines,
    scalars,
)
from tidewaiter.sources import all_sources, get

all_sources()
import tidewaiter.sources.k8s_audit  # noqa: E402, F401 - registers the source

SOURCE = get("k8s-audit")
account = partial(robustness.account, SOURCE)  # test bodies as before: same derandomized examples
KEYS = (
    "kind", "auditID", "stage", "requestURI", "verb", "user", "username", "sourceIPs",
    "userAgent", "objectRef", "resource", "subresource", "namespace", "name", "responseStatus",
    "code", "requestObject", "responseObject", "metadata", "generateName", "spec", "containers",
    "initContainers", "image", "volumes", "hostPath", "path", "volumeMounts", "mountPath",
    "readOnly", "securityContext", "privileged", "hostNetwork", "stageTimestamp",
)  # fmt: skip
SCALARS = scalars("pods", "exec", "attach", "create", "get", "Event", "/", "api")
VALUES = json_values(SCALARS, KEYS)
QUERIES = st.lists(
    st.tuples(st.sampled_from(["command", "container", "stdout", "x"]), st.text(max_size=10)),
    max_size=5,
).map(lambda pairs: "/api/v1/namespaces/a/pods/p/exec?" + "&".join(f"{k}={v}" for k, v in pairs))
REFS = st.fixed_dictionaries(
    {},
    optional={
        "resource": st.sampled_from(["pods", "secrets"]) | SCALARS,
        "subresource": st.sampled_from(["exec", "attach", "log"]) | SCALARS,
        "namespace": SCALARS,
        "name": SCALARS,
    },
)
AUDITS = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["Event", "EventList"]) | SCALARS,
        "auditID": st.sampled_from(["a", "b", "c"]) | SCALARS,  # repeats, as stages do
        "stage": st.sampled_from(["RequestReceived", "ResponseStarted", "ResponseComplete"]),
        "requestURI": QUERIES | SCALARS,
        "verb": st.sampled_from(["create", "get", "list"]) | SCALARS,
        "user": st.fixed_dictionaries({"username": SCALARS}) | SCALARS,
        "sourceIPs": st.lists(SCALARS, max_size=3) | SCALARS,
        "objectRef": REFS | VALUES,
        "responseStatus": st.fixed_dictionaries({"code": SCALARS}) | SCALARS,
        "requestObject": VALUES,
        "responseObject": st.fixed_dictionaries({"metadata": VALUES}) | SCALARS,
        "stageTimestamp": st.just("2024-03-01T10:00:00.123456Z") | SCALARS,
        "requestReceivedTimestamp": SCALARS,
    },
)


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    account(data)


@SETTINGS
@given(st.lists(st.text(max_size=60), max_size=8))
def test_random_text_lines(lines: list[str]) -> None:
    account("\n".join(lines).encode("utf-8", "surrogatepass"))


@settings(SETTINGS, max_examples=50)
@given(st.lists(AUDITS, min_size=1, max_size=4))
def test_random_events_in_audit_vocabulary(audits: list[dict[str, object]]) -> None:
    account(b"".join(json.dumps(audit).encode() + b"\n" for audit in audits))


def test_ten_thousand_mutated_records(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = mutated_lines(fixtures / "k8s_audit" / "audit.jsonl", seed=1560)
    # The lines are fed to one decoder in turn: whether a line is bad does not depend on the
    # lines before it (only a good one is remembered).
    report, bad = account_mutations(SOURCE, lines, monkeypatch)
    # The mutations reach every side: records read, rejected, and dropped as a request already
    # emitted (the fixture's audit ids repeat every 15 lines, so most good copies are repeats).
    assert report.events > 50
    assert report.ignored > 2_000
    assert len(bad) > 2_000


def mutated_envelopes(paths: list[Path], seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """AKS, EKS and GKE envelopes mutated at every depth: the envelope and the event in it."""
    lines = mutated_records(nonblank_lines(*paths), seed=seed)
    report, bad = account_mutations(SOURCE, lines, monkeypatch)
    assert report.foreign.total() > 100  # passed over: other categories, services, messages
    assert len(bad) > 1_000
    assert report.events + report.ignored > 1_000


def test_ten_thousand_mutated_managed_cloud_records(
    fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ("aks_diagnostic", "eks_cloudwatch", "gke_cloud_audit")
    mutated_envelopes(
        [fixtures / "k8s_audit" / f"{n}_exec.jsonl" for n in names], 1561, monkeypatch
    )


@pytest.mark.corpus
def test_ten_thousand_mutated_real_managed_cloud_records(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sorted((corpus / "realworld" / "k8s_audit_managed").glob("*.log"))
    assert len(paths) == 3
    mutated_envelopes(paths, 1562, monkeypatch)
