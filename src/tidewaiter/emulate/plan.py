"""What a scenario looks like to a sensor: the processes, files and connections it makes.

A plan is the format-neutral trace that writers render in each producer's format: every step's
shell (or PowerShell, or cmd.exe) launched with its command line, the programs it starts, the
files they create and the connections that carry data to the sink. Times, pids and ids are
derived from the scenario, so the same scenario always gives the same telemetry.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

from tidewaiter.detection import cmdline
from tidewaiter.emulate.netns import CONTAINER_IP, SINK_IP
from tidewaiter.emulate.scenario import Platform, Scenario, Step, created, fill

BASE_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z: replays are reproducible byte for byte
STEP_GAP = 2.0  # seconds between steps
HOSTS: dict[Platform, str] = {
    "linux": "node-emulation-1",
    "windows": "WIN-EMULATION",
    "macos": "mac-emulation.local",
}
HOST_IPS: dict[Platform, str] = {
    "linux": CONTAINER_IP,
    "windows": "10.213.0.5",
    "macos": "10.213.0.6",
}
ENV: dict[Platform, dict[str, str]] = {
    "linux": {"HOME": "/root", "USER": "root"},
    "macos": {"HOME": "/Users/atomic", "USER": "atomic"},
    "windows": {
        "USERPROFILE": r"C:\Users\atomic",
        "programfiles": r"C:\Program Files",
        "ProgramFiles": r"C:\Program Files",
        "TEMP": r"C:\Users\atomic\AppData\Local\Temp",
    },
}
IMAGE = "registry.example.com/emulation/workload:1.0"
POD_NAMESPACE = "emulation"
_SHELL_BUILTINS = frozenset(
    {
        "cd", "echo", "printf", "test", "[", "export", "set", "true", "false", ":", "exit",
        "read", "local", "unset", "shift", "eval", "exec", "wait", "trap", "umask", "type",
        "command", "pwd", "for", "do", "done", "if", "then", "else", "fi", "while", "in",
    }
)  # fmt: skip
_CMD_BUILTINS = frozenset({"cd", "echo", "dir", "mkdir", "md", "del", "set", "rmdir", "copy"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")
_POSIX_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_CMD_VAR = re.compile(r"%(\w+)%")
_LINUX_PATHS = {"sh": "/bin/sh", "bash": "/bin/bash"}
_WINDOWS_SHELLS = {
    "powershell": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    "cmd": r"C:\Windows\System32\cmd.exe",
}


@dataclass(frozen=True)
class Proc:
    pid: int
    exe: str
    argv: tuple[str, ...]
    start: float
    guid: str  # ProcessGuid / exec_id material, stable per scenario
    parent: Proc | None = None
    cwd: str = "/"
    user: str = "root"

    @property
    def name(self) -> str:
        return cmdline.exe_name(self.exe)


@dataclass(frozen=True)
class Exec:
    time: float
    proc: Proc


@dataclass(frozen=True)
class Script:
    """A PowerShell script block (4104), run by proc."""

    time: float
    proc: Proc
    text: str
    block_id: str


@dataclass(frozen=True)
class FileCreate:
    time: float
    proc: Proc
    path: str


@dataclass(frozen=True)
class Connect:
    time: float
    proc: Proc
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int


@dataclass(frozen=True)
class Send:
    time: float
    proc: Proc
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    bytes: int


Action = Exec | Script | FileCreate | Connect | Send
Kind = Literal["exec", "script", "file", "network"]


@dataclass(frozen=True)
class Stage:
    """Where the synthetic run happens: the host, the container (Linux), the sink."""

    platform: Platform
    host: str
    host_ip: str
    container_id: str | None
    container_name: str | None
    sink_ip: str
    sink_port: int
    public: bool

    @property
    def external_cidrs(self) -> tuple[str, ...]:
        return (f"{self.sink_ip}/32",) if self.public else ()


@dataclass
class Plan:
    scenario: Scenario
    stage: Stage
    actions: list[Action] = field(default_factory=list)
    init: Proc | None = None  # the container's (or session's) first process

    def needs(self) -> list[frozenset[Kind]]:
        """What a format must express for this plan, a step at a time: one of the kinds in
        each set. A step's launches are seen as process launches, a PowerShell step also as
        its script block; a step whose only purpose is to send (an existing process) needs
        network events. File creations and byte counts are written where a format has them."""
        needed: list[frozenset[Kind]] = []
        for step in self.scenario.commands:
            if step.existing is not None:
                needed.append(frozenset({"network"}))
            elif step.shell == "powershell" and not step.spawns:
                needed.append(frozenset({"exec", "script"}))
            else:
                needed.append(frozenset({"exec"}))
        return needed


def stage_for(scenario: Scenario, platform: Platform) -> Stage:
    digest = hashlib.sha256(f"tidewaiter-emulation:{scenario.id}".encode()).hexdigest()
    container = platform == "linux"
    sink = scenario.sink
    return Stage(
        platform=platform,
        host=HOSTS[platform],
        host_ip=HOST_IPS[platform],
        container_id=digest if container else None,
        container_name=scenario.id[:40] if container else None,
        sink_ip=SINK_IP,
        sink_port=sink.port if sink is not None else 0,
        public=sink.public if sink is not None else True,
    )


def plan(scenario: Scenario, platform: Platform) -> Plan:
    if platform not in scenario.platforms:
        raise ValueError(f"{scenario.id} does not run on {platform}")
    stage = stage_for(scenario, platform)
    builder = _Builder(scenario, stage)
    return builder.build()


class _Builder:
    def __init__(self, scenario: Scenario, stage: Stage) -> None:
        self.scenario = scenario
        self.stage = stage
        self.env = {**ENV[stage.platform], **scenario.env}
        self.values = {
            "sink": stage.sink_ip,
            "port": str(stage.sink_port),
            "url": f"http://{stage.sink_ip}:{stage.sink_port}/upload",
        }
        self.next_pid = 4200
        self.actions: list[Action] = []

    def build(self) -> Plan:
        platform = self.stage.platform
        if platform == "linux":
            init = self._proc(("/bin/sleep", "3600"), "/bin/sleep", BASE_TIME - 60, None, pid=1)
            session = self._proc(("bash",), "/bin/bash", BASE_TIME - 30, init, pid=7)
        elif platform == "macos":
            init = self._proc(("/sbin/launchd",), "/sbin/launchd", BASE_TIME - 3600, None, pid=1)
            session = self._proc(("-zsh",), "/bin/zsh", BASE_TIME - 30, init, pid=812)
        else:
            explorer = r"C:\Windows\explorer.exe"
            init = self._proc((explorer,), explorer, BASE_TIME - 3600, None, pid=4012)
            shell = _WINDOWS_SHELLS["powershell"]
            session = self._proc((shell,), shell, BASE_TIME - 30, init, pid=5220)
        for index, step in enumerate(self.scenario.commands):
            self._step(step, index, BASE_TIME + STEP_GAP * index, session)
        return Plan(self.scenario, self.stage, self.actions, init)

    # --- processes -----------------------------------------------------------------------

    def _proc(
        self,
        argv: tuple[str, ...],
        exe: str,
        start: float,
        parent: Proc | None,
        pid: int | None = None,
    ) -> Proc:
        if pid is None:
            pid = self.next_pid
            self.next_pid += 3
        material = f"{self.scenario.id}:{self.stage.platform}:{pid}:{start}"
        guid = str(uuid.UUID(hashlib.md5(material.encode()).hexdigest()))  # noqa: S324 - an id
        windows = self.stage.platform == "windows"
        user = r"WIN-EMULATION\atomic" if windows else self.env.get("USER", "root")
        cwd = self.env.get("USERPROFILE", "C:\\") if windows else self.env.get("HOME", "/")
        return Proc(pid, exe, argv, start, guid, parent, cwd, user)

    def _launch(self, argv: tuple[str, ...], time: float, parent: Proc) -> Proc:
        proc = self._proc(argv, self._path(argv[0]), time, parent)
        self.actions.append(Exec(time, proc))
        return proc

    def _path(self, program: str) -> str:
        platform = self.stage.platform
        if platform == "windows":
            if "\\" in program or "/" in program:
                return program.strip('"').replace("/", "\\")
            name = program if program.lower().endswith(".exe") else f"{program}.exe"
            return rf"C:\Windows\System32\{name}"
        if program.startswith("/"):
            return program
        if program in _LINUX_PATHS:
            return _LINUX_PATHS[program]
        if self.scenario.rootfs == "busybox" and platform == "linux":
            return f"/bin/{program}"
        return f"/usr/bin/{program}"

    # --- steps ---------------------------------------------------------------------------

    def _step(self, step: Step, index: int, time: float, session: Proc) -> None:
        run = fill(step.run, self.values)
        children: list[Proc] = []
        if step.existing is not None:
            existing = self._proc(step.existing.argv, step.existing.exe, time - 600, None)
            self._files_and_sends(step, index, time, [existing], existing)
            return
        if step.shell == "none":
            for offset, argv in enumerate(step.spawns, start=1):
                spawned = self._expand_argv(argv)
                children.append(self._launch(spawned, time + 0.01 * offset, session))
            self._files_and_sends(step, index, time, children, session)
            return
        shell = self._launch(self._shell_argv(step.shell, run), time, session)
        if step.shell == "powershell":
            block = str(uuid.UUID(hashlib.md5(f"{shell.guid}:script".encode()).hexdigest()))  # noqa: S324
            self.actions.append(Script(time + 0.001, shell, run, block))
        argvs = [self._expand_argv(a) for a in step.spawns] or self._children(step.shell, run)
        for offset, argv in enumerate(argvs, start=1):
            children.append(self._launch(argv, time + 0.01 * offset, shell))
        self._files_and_sends(step, index, time, children, shell)

    def _shell_argv(self, shell: str, run: str) -> tuple[str, ...]:
        if shell == "powershell":
            return ("powershell.exe", "-NoProfile", "-Command", run)
        if shell == "cmd":
            return ("cmd.exe", "/c", run)
        return (_LINUX_PATHS.get(shell, "/bin/sh"), "-c", run)

    def _children(self, shell: str, run: str) -> list[tuple[str, ...]]:
        """The programs a shell line starts, read without a shell (never run)."""
        found: list[tuple[str, ...]] = []
        for line in run.splitlines():
            if shell == "cmd":
                commands = cmdline.parse_cmd_pipeline(_CMD_VAR.sub(self._cmd_var, line))
                builtins = _CMD_BUILTINS
            elif shell in ("sh", "bash"):
                commands = cmdline.parse_posix_pipeline(line)
                builtins = _SHELL_BUILTINS
            else:
                continue
            for command in commands:
                argv = [a.strip("()") for a in command.argv]
                while argv and _ASSIGNMENT.match(argv[0]):
                    argv.pop(0)
                argv = [a for a in argv if a]
                if argv and argv[0].lower() not in builtins:
                    found.append(self._expand_argv(tuple(argv)))
        return found

    def _expand_argv(self, argv: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self._expand(fill(a, self.values)) for a in argv)

    def _expand(self, text: str) -> str:
        if self.stage.platform == "windows":
            return _CMD_VAR.sub(self._cmd_var, text)
        return _POSIX_VAR.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), text)

    def _cmd_var(self, match: re.Match[str]) -> str:
        name = match.group(1)
        for key, value in self.env.items():
            if key.lower() == name.lower():
                return value
        return match.group(0)

    def _files_and_sends(
        self, step: Step, index: int, time: float, children: list[Proc], shell: Proc
    ) -> None:
        for number, item in enumerate(step.creates, start=1):
            spec = created(item)
            creator = _by(spec.by, children, shell) or (children[0] if children else shell)
            moment = max(time, creator.start) + 0.002 * number
            self.actions.append(FileCreate(moment, creator, self._expand(fill(spec.path, {}))))
        if step.sends is None:
            return
        sender = _by(step.sends.by, children, shell) or (children[-1] if children else shell)
        port = 40_000 + index
        moment = max(time, sender.start) + 0.05
        stage = self.stage
        self.actions.append(
            Connect(moment, sender, stage.host_ip, port, stage.sink_ip, stage.sink_port)
        )
        self.actions.append(
            Send(
                moment + 0.01,
                sender,
                stage.host_ip,
                port,
                stage.sink_ip,
                stage.sink_port,
                step.sends.bytes,
            )
        )


def _by(name: str | None, children: list[Proc], shell: Proc) -> Proc | None:
    if name is None:
        return None
    wanted = cmdline.exe_name(name)
    for proc in children:
        if proc.name == wanted:
            return proc
    return shell if shell.name == wanted else None
