"""Baselines per workload: a nightly backup is learned and stays quiet; the same tar followed
by 50x the usual volume to a new destination alerts and says both numbers."""

from __future__ import annotations

from pathlib import Path

from tests.builders import connect, launch
from tidewaiter.detection.analytics import EGRESS_SPIKE, EXFIL, Finding
from tidewaiter.detection.baseline import DAY, Baselines, archive_shape, prefix_key
from tidewaiter.detection.signals import Detector
from tidewaiter.events import Container, Event, Image
from tidewaiter.identity import workload_key
from tidewaiter.pipeline import Engine
from tidewaiter.store import Store

START = 1_790_000_000.0  # a midnight, give or take
BACKUP_DST = "198.51.100.10"
MB = 1 << 20


def pod(night: int) -> Container:
    """A new container every night (CronJob), the same workload."""
    return Container(
        uid=f"{night:012x}" + "b" * 52,
        name="backup",
        image=Image(
            name="registry.example.com/ops/backup:3",
            uid="registry.example.com/ops/backup@sha256:aa",
        ),
        namespace="ops",
        pod_name=f"backup-{night}",
        owner="CronJob/backup",
    )


def night(n: int, dst: str = BACKUP_DST, sent: int = MB, sends: int = 4) -> list[Event]:
    t = START + n * DAY
    ctr = pod(n)
    events = [launch(f"tar czf /backup/{n}.tgz /data", time=t, ctr=ctr)]
    events += [
        connect(dst, time=t + 60 + i, ctr=ctr, sent=sent // sends, pid=300) for i in range(sends)
    ]
    # the rest of the day: small API calls every hour, so egress windows have a history
    events += [
        connect("198.51.100.50", time=t + 3600 * h, ctr=ctr, sent=20_000, pid=301)
        for h in range(1, 24)
    ]
    return events


def run(events: list[Event], baselines: Baselines) -> list[Finding]:
    found: list[Finding] = []
    engine = Engine(found.append, baselines=baselines)
    for event in sorted(events, key=lambda e: e.time):
        engine.process(event)
    engine.flush()
    return found


def learned(days: int = 14) -> Baselines:
    """What `baseline learn` does: a vetted period, learned whole."""
    baselines = Baselines(learn=True, exclude_flagged=False)
    history = [e for n in range(days) for e in night(n)]
    run(history, baselines)
    return baselines


def test_the_nightly_backup_is_learned_per_workload_not_per_container() -> None:
    baselines = learned()
    [profile] = baselines.profiles.values()
    assert profile.workload == workload_key(pod(0)) == workload_key(pod(9))
    assert 13 < profile.days < 15
    assert 9 < profile.executables["tar"] < 14  # 14 nights, decayed with a 14-day half-life
    assert 9 < profile.archive_shapes["tar czf <path> <path>"] < 14
    assert f"{BACKUP_DST} port 443" in profile.destinations
    assert profile.p99() >= MB * 0.9


def test_the_learned_backup_does_not_alert() -> None:
    baselines = learned()
    baselines.learn = False
    found = run(night(15), baselines)
    assert [f for f in found if f.severity_id > 2] == []
    [backup] = [f for f in found if f.analytic.uid == EXFIL]
    assert any("tar runs like this routinely" in r for r in backup.reasons)
    assert any(f"destination {BACKUP_DST}:443 is usual" in r for r in backup.reasons)


def test_the_same_tar_to_a_new_destination_at_50x_alerts_with_both_numbers() -> None:
    baselines = learned()
    baselines.learn = False
    found = run(night(15, dst="203.0.113.66", sent=50 * MB), baselines)
    [alert] = [f for f in found if f.analytic.uid == EXFIL]
    assert alert.severity_id == 5
    text = " | ".join(alert.reasons)
    assert "destination 203.0.113.66:443 never seen" in text
    usual = "50x the p99 of this workload's egress per 10-minute window (1.0 MB)"
    assert f"50.0 MB to the outside, {usual}" in text
    assert any(f.analytic.uid == EGRESS_SPIKE for f in found)  # the volume alone is unusual too


def test_attack_windows_are_not_learned_continuously() -> None:
    baselines = learned(days=3)
    baselines.exclude_flagged = True  # what `detect --learn` does
    before = dict(baselines.profiles[workload_key(pod(0))].destinations)
    run(night(4, dst="203.0.113.66", sent=50 * MB), baselines)
    after = baselines.profiles[workload_key(pod(0))].destinations
    assert "203.0.113.66 port 443" not in after
    assert after.keys() >= before.keys()


def test_a_young_profile_is_not_trusted() -> None:
    baselines = learned(days=1)
    baselines.config = baselines.config.__class__(min_days=2.0)
    baselines.learn = False
    [finding] = [f for f in run(night(2), baselines) if f.analytic.uid == EXFIL]
    assert finding.severity_id == 3  # the static rules alone
    assert not any("routinely" in r for r in finding.reasons)


def test_baselines_survive_a_restart_through_the_store(tmp_path: Path) -> None:
    path = tmp_path / "tw.duckdb"
    with Store(path) as store:
        baselines = store.load_baselines(learn=True)
        run([e for n in range(3) for e in night(n)], baselines)
        store.save_baselines(baselines)
    with Store(path) as store:
        again = store.load_baselines()
    assert again.profiles == baselines.profiles


def test_shapes_and_prefixes() -> None:
    [signal] = Detector().signals(launch("tar czf /backup/2026-11-27.tgz /data"))
    assert archive_shape(signal) == "tar czf <path> <path>"
    assert prefix_key("203.0.113.9 port 443") == "203.0.113.0/24 port 443"
    assert prefix_key("2001:db8::9 port 443") == "2001:db8::/64 port 443"
