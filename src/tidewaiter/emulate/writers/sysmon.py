"""Sysmon event XML: EID 1 process create, 11 file create, 3 network connect.

On Windows the records are what `wevtutil qe Microsoft-Windows-Sysmon/Operational /f:xml`
prints, one ``<Event>`` a line; on Linux they are Sysmon for Linux's syslog lines (``host
sysmon: <Event>...``), whose command lines are argv joined by spaces. Sysmon counts no bytes and
names no container.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from tidewaiter.emulate.plan import Connect, Exec, FileCreate, Plan, Proc
from tidewaiter.emulate.writers import Writer, register, windows_command_line

WINDOWS_PROVIDER = ("Microsoft-Windows-Sysmon", "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}")
LINUX_PROVIDER = ("Linux-Sysmon", "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}")
NAMESPACE = "http://schemas.microsoft.com/win/2004/08/events/event"


@register
class SysmonWriter(Writer):
    name = "sysmon-xml"
    title = "Sysmon XML (wevtutil on Windows, syslog on Linux)"
    source = "sysmon-xml"
    suffix = ".sysmon.xml"
    platforms = frozenset({"windows", "linux"})
    kinds = frozenset({"exec", "file", "network"})
    names_containers = False

    def render(self, plan: Plan) -> bytes:
        windows = plan.stage.platform == "windows"
        lines = []
        record_id = 1000
        for action in sorted(plan.actions, key=lambda a: a.time):
            if isinstance(action, Exec):
                event_id, data = 1, _process_create(action.proc, windows)
            elif isinstance(action, FileCreate):
                event_id, data = 11, _file_create(action, windows)
            elif isinstance(action, Connect):
                event_id, data = 3, _network(action, windows)
            else:
                continue  # script blocks are PowerShell's log; Sysmon counts no bytes
            record_id += 1
            xml = _event(event_id, record_id, action.time, plan.stage.host, data, windows)
            if windows:
                lines.append(xml)
            else:
                stamp = datetime.fromtimestamp(action.time, UTC).strftime("%b %d %H:%M:%S")
                lines.append(f"{stamp} {plan.stage.host} sysmon: {xml}")
        return ("\n".join(lines) + "\n").encode()


def _utc(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _command_line(proc: Proc, windows: bool) -> str:
    return windows_command_line(proc.argv) if windows else " ".join(proc.argv)


def _guid(proc: Proc) -> str:
    return "{" + proc.guid + "}"


def _process_create(proc: Proc, windows: bool) -> list[tuple[str, str]]:
    data = [
        ("RuleName", "-"),
        ("UtcTime", _utc(proc.start)),
        ("ProcessGuid", _guid(proc)),
        ("ProcessId", str(proc.pid)),
        ("Image", proc.exe),
        ("CommandLine", _command_line(proc, windows)),
        ("CurrentDirectory", proc.cwd),
        ("User", proc.user),
        ("LogonId", "0x3e7" if windows else "0"),
        ("IntegrityLevel", "High" if windows else "no level"),
    ]
    parent = proc.parent
    if parent is not None:
        data += [
            ("ParentProcessGuid", _guid(parent)),
            ("ParentProcessId", str(parent.pid)),
            ("ParentImage", parent.exe),
            ("ParentCommandLine", _command_line(parent, windows)),
            ("ParentUser", parent.user),
        ]
    return data


def _file_create(action: FileCreate, windows: bool) -> list[tuple[str, str]]:
    proc = action.proc
    return [
        ("RuleName", "-"),
        ("UtcTime", _utc(action.time)),
        ("ProcessGuid", _guid(proc)),
        ("ProcessId", str(proc.pid)),
        ("Image", proc.exe),
        ("TargetFilename", action.path),
        ("CreationUtcTime", _utc(action.time)),
        ("User", proc.user),
    ]


def _network(action: Connect, windows: bool) -> list[tuple[str, str]]:
    proc = action.proc
    return [
        ("RuleName", "-"),
        ("UtcTime", _utc(action.time)),
        ("ProcessGuid", _guid(proc)),
        ("ProcessId", str(proc.pid)),
        ("Image", proc.exe),
        ("User", proc.user),
        ("Protocol", "tcp"),
        ("Initiated", "true"),
        ("SourceIsIpv6", "false"),
        ("SourceIp", action.src_ip),
        ("SourceHostname", "-"),
        ("SourcePort", str(action.src_port)),
        ("DestinationIsIpv6", "false"),
        ("DestinationIp", action.dst_ip),
        ("DestinationHostname", "-"),
        ("DestinationPort", str(action.dst_port)),
    ]


def _event(
    event_id: int,
    record_id: int,
    time: float,
    host: str,
    data: list[tuple[str, str]],
    windows: bool,
) -> str:
    name, guid = WINDOWS_PROVIDER if windows else LINUX_PROVIDER
    opening = f"<Event xmlns={quoteattr(NAMESPACE)}>" if windows else "<Event>"
    moment = datetime.fromtimestamp(time, UTC)
    created = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"
    channel = f"{name}/Operational"
    security = "<Security UserID='S-1-5-18'/>" if windows else "<Security UserId='0'/>"
    fields = "".join(f"<Data Name={quoteattr(k)}>{escape(v)}</Data>" for k, v in data)
    return (
        f"{opening}<System><Provider Name={quoteattr(name)} Guid={quoteattr(guid)}/>"
        f"<EventID>{event_id}</EventID><Version>5</Version><Level>4</Level>"
        f"<Task>{event_id}</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>"
        f"<TimeCreated SystemTime={quoteattr(created)}/><EventRecordID>{record_id}</EventRecordID>"
        f"<Correlation/><Execution ProcessID='3140' ThreadID='4212'/><Channel>{channel}</Channel>"
        f"<Computer>{escape(host)}</Computer>{security}</System>"
        f"<EventData>{fields}</EventData></Event>"
    )
