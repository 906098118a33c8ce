"""Live emulation needs a Linux host with root, runc, busybox-static, bpftrace, iproute2 and
debootstrap (.ci/deps/live.sh installs them). Without them the live tests skip, naming what is
missing; with CI set they fail instead, so CI can never pass by skipping them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tidewaiter.emulate.live import Recorder, live_missing, live_sensor
from tidewaiter.emulate.scenario import get
from tidewaiter.sensor.runner import Sensor


def require_live() -> None:
    missing = live_missing(get("upload-tcp-nc-pipe")) or live_missing(get("ads-linux-tar"))
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and the live tests must run, but: {missing}")
    pytest.skip(missing)


@pytest.fixture(scope="session")
def shared_sensor() -> Iterator[tuple[Sensor, Recorder]]:
    """One sensor for the whole live suite: attaching takes seconds, a run about one."""
    require_live()
    with live_sensor() as shared:
        yield shared
