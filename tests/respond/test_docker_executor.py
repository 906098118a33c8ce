"""The Docker executor's refusals and error reports, for situations a test cannot arrange on a
real runtime: a container named like another's id, the host's network, a denied request. The
happy path and idempotence run against real Podman in test_podman_live."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from tests.respond import alerts
from tidewaiter.respond.docker_executor import DockerExecutor
from tidewaiter.respond.outcome import Outcome
from tidewaiter.respond.planner import plan
from tidewaiter.respond.protect import Protection

FULL = alerts.CONTAINER


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "error"
        self.url = "http+docker://localhost/v1.41/containers"

    def json(self) -> dict[str, str]:
        return {"message": "denied"}


class _Api:
    """Answers inspect from its attributes and records every call that would change state."""

    def __init__(self, attrs: dict[str, Any], denied: bool = False) -> None:
        self.attrs = attrs
        self.denied = denied
        self.changes: list[str] = []

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return self.attrs

    def _change(self, name: str) -> None:
        if self.denied:
            raise docker.errors.APIError("forbidden", response=_Response(403))
        self.changes.append(name)

    def disconnect_container_from_network(self, *args: Any, **kwargs: Any) -> None:
        self._change("disconnect")

    def pause(self, container_id: str) -> None:
        self._change("pause")
        self.attrs["State"]["Paused"] = True


def _attrs(container_id: str = FULL, mode: str = "bridge", name: str = "/stager") -> dict[str, Any]:
    networks = {} if mode in ("host", "none") else {"bridge": {}}
    return {
        "Id": container_id,
        "Name": name,
        "Config": {"Image": "alpine:3.19", "Labels": {}},
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
        "State": {"Running": True, "Paused": False, "Status": "running"},
    }


def _execute(api: _Api, alert: dict[str, Any] | None = None) -> list[Outcome]:
    executor = DockerExecutor("unix:///fake.sock", Protection(), api=api)
    return executor.execute(plan(alert or alerts.container()), lambda _: None)


def test_a_container_named_like_the_alerts_id_is_not_acted_on() -> None:
    # Docker resolves names before id prefixes: a container *named* with the alert's id prefix
    # would answer the lookup. Its own id does not start with that prefix, so it is refused.
    api = _Api(_attrs(container_id="e" * 64, name=f"/{FULL[:31]}"))

    outcomes = _execute(api)

    assert [o.result for o in outcomes] == ["failed", "failed", "manual"]
    assert "refusing to act" in outcomes[0].message
    assert api.changes == []


def test_the_runtimes_full_id_is_what_is_acted_on_and_audited() -> None:
    api = _Api(_attrs())

    outcomes = _execute(api)

    assert {o.target for o in outcomes} == {f"container {FULL}"}


def test_a_container_on_the_hosts_network_cannot_be_disconnected_but_is_still_paused() -> None:
    api = _Api(_attrs(mode="host"))

    outcomes = _execute(api)

    assert [o.result for o in outcomes] == ["failed", "changed", "manual"]
    assert "host's network" in outcomes[0].message
    assert api.changes == ["pause"]


def test_a_denied_request_is_reported_as_permission_denied_per_action() -> None:
    outcomes = _execute(_Api(_attrs(), denied=True))

    assert [o.result for o in outcomes[:2]] == ["failed", "failed"]
    assert "permission denied" in outcomes[1].message


DENIED = "('Connection aborted.', PermissionError(13, 'Permission denied'))"
REFUSED = "('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (docker.errors.DockerException(DENIED), "permission denied"),
        (docker.errors.DockerException(REFUSED), "unreachable"),
        (docker.errors.NotFound("no such container", response=_Response(404)), "container gone"),
    ],
)
def test_runtime_errors_are_said_in_words(error: Exception, expected: str) -> None:
    executor = DockerExecutor("unix:///fake.sock", Protection())
    assert expected in executor._explain(error, FULL)
