"""The transfer ties' tables: one copy of each id they hold, and bounded."""

from __future__ import annotations

import msgspec

from tests.builders import launch
from tidewaiter.detection import ties
from tidewaiter.detection.ties import Ties
from tidewaiter.events import Event, Process


def _started(uid: str, parent_uid: str | None, time: float) -> Event:
    event = launch("/bin/sh -c true", time=time)
    assert event.process is not None
    parent = Process(uid=parent_uid) if parent_uid else None
    return msgspec.structs.replace(
        event, process=msgspec.structs.replace(event.process, uid=uid, parent=parent)
    )


def test_a_child_holds_its_parents_id_not_a_copy_of_it() -> None:
    """Each record decodes its own copy of its parent's id: the table keeps the one it has."""
    table = Ties()
    parent_id = "".join(["bm9kZToxMjM0", "OjQ1Ng=="])  # built, so not the constant below
    table.observe(_started(parent_id, None, 1.0), "container:a")
    child_parent = "".join(["bm9kZToxMjM0", "OjQ1Ng=="])
    assert child_parent is not parent_id
    table.observe(_started("child", child_parent, 2.0), "container:a")
    procs = table._procs["container:a"]
    assert procs["child"].parent == parent_id
    assert procs["child"].parent is next(k for k in procs if k == parent_id)


def test_the_shared_copies_are_bounded() -> None:
    table = Ties()
    for n in range(ties.MAX_COPIES + 10):
        table.observe(_started(f"p{n}", None, float(n)), "container:a")
    assert len(table._copies) <= ties.MAX_COPIES
    assert len(table._procs["container:a"]) == ties.MAX_PROCESSES
