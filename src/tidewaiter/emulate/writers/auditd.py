"""auditd's raw log (``audit.log`` with ``node=`` names): execve with EXECVE, CWD, PATH and
PROCTITLE; openat creating a file (PATH ``nametype=CREATE``); connect with its SOCKADDR. auditd
counts no bytes and names no container."""

from __future__ import annotations

import ipaddress
import posixpath
import struct

from tidewaiter.emulate.plan import Connect, Exec, FileCreate, Plan, Proc
from tidewaiter.emulate.writers import Writer, register

_EXECVE, _OPENAT, _CONNECT = 59, 257, 42
_IDS = "auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0"


@register
class AuditdWriter(Writer):
    name = "auditd"
    title = "auditd log"
    source = "auditd"
    suffix = ".audit.log"
    platforms = frozenset({"linux"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = False

    def render(self, plan: Plan) -> bytes:
        lines: list[str] = []
        node = plan.stage.host
        for serial, action in enumerate(sorted(plan.actions, key=lambda a: a.time), start=1000):
            header = f"msg=audit({action.time:.3f}:{serial}):"
            if isinstance(action, Exec):
                records = _exec(action.proc)
            elif isinstance(action, FileCreate):
                records = _create(action.proc, action.path)
            elif isinstance(action, Connect):
                records = _connect(action)
            else:
                continue  # sends: auditd counts no bytes
            records.append(("EOE", ""))
            for kind, body in records:
                lines.append(f"node={node} type={kind} {header} {body}".rstrip())
        return ("\n".join(lines) + "\n").encode()


def encode(value: str) -> str:
    """How the kernel logs an untrusted string: quoted when plain, else upper-case hex."""
    raw = value.encode()
    if any(b < 0x21 or b > 0x7E or b == 0x22 for b in raw):
        return raw.hex().upper()
    return f'"{value}"'


def _syscall(proc: Proc, number: int, items: int, exit_code: int = 0) -> str:
    success = "yes" if exit_code >= 0 else "no"
    ppid = proc.parent.pid if proc.parent is not None else 1
    comm = proc.name[:15]
    return (
        f"arch=c000003e syscall={number} success={success} exit={exit_code} a0=3 a1=0 a2=0 a3=0 "
        f"items={items} ppid={ppid} pid={proc.pid} {_IDS} tty=(none) ses=4294967295 "
        f'comm={encode(comm)} exe={encode(proc.exe)} subj=unconfined key="tidewaiter"'
    )


def _proctitle(proc: Proc) -> tuple[str, str]:
    title = "\x00".join(proc.argv)[:128]  # the kernel keeps at most 128 bytes
    return "PROCTITLE", f"proctitle={title.encode().hex().upper()}"


def _exec(proc: Proc) -> list[tuple[str, str]]:
    args = " ".join(f"a{i}={encode(arg)}" for i, arg in enumerate(proc.argv))
    return [
        ("SYSCALL", _syscall(proc, _EXECVE, 2)),
        ("EXECVE", f"argc={len(proc.argv)} {args}"),
        ("CWD", f"cwd={encode(proc.cwd)}"),
        ("PATH", f"item=0 name={encode(proc.exe)} inode=1310 dev=fd:01 mode=0100755 ouid=0 "
                 "ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"),
        _proctitle(proc),
    ]  # fmt: skip


def _create(proc: Proc, path: str) -> list[tuple[str, str]]:
    folder = posixpath.dirname(path) + "/"
    return [
        ("SYSCALL", _syscall(proc, _OPENAT, 2, exit_code=3)),
        ("CWD", f"cwd={encode(proc.cwd)}"),
        ("PATH", f"item=0 name={encode(folder)} inode=2 dev=fd:01 mode=041777 ouid=0 ogid=0 "
                 "rdev=00:00 nametype=PARENT cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"),
        ("PATH", f"item=1 name={encode(path)} inode=1311 dev=fd:01 mode=0100644 ouid=0 ogid=0 "
                 "rdev=00:00 nametype=CREATE cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0"),
        _proctitle(proc),
    ]  # fmt: skip


def _connect(action: Connect) -> list[tuple[str, str]]:
    address = ipaddress.ip_address(action.dst_ip)
    if address.version == 4:
        sockaddr = struct.pack("<H", 2) + struct.pack(">H", action.dst_port) + address.packed
        sockaddr += bytes(8)
    else:
        sockaddr = struct.pack("<H", 10) + struct.pack(">H", action.dst_port) + bytes(4)
        sockaddr += address.packed + bytes(4)
    return [
        ("SYSCALL", _syscall(action.proc, _CONNECT, 0, exit_code=-115)),
        ("SOCKADDR", f"saddr={sockaddr.hex().upper()}"),
        _proctitle(action.proc),
    ]
