"""PowerShell script block logging (event 4104, Microsoft-Windows-PowerShell/Operational), as
event XML: only what PowerShell ran, nothing it started, wrote or sent."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from tidewaiter.emulate.plan import Plan, Script
from tidewaiter.emulate.writers import Writer, register
from tidewaiter.emulate.writers.sysmon import NAMESPACE

PROVIDER = ("Microsoft-Windows-PowerShell", "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}")


@register
class PowerShellWriter(Writer):
    name = "powershell-4104"
    title = "PowerShell script block logging (4104) XML"
    source = "sysmon-xml"
    suffix = ".powershell.xml"
    platforms = frozenset({"windows"})
    kinds = frozenset({"script"})
    names_containers = False

    def render(self, plan: Plan) -> bytes:
        lines = []
        for record_id, action in enumerate(
            (a for a in sorted(plan.actions, key=lambda a: a.time) if isinstance(a, Script)),
            start=2001,
        ):
            moment = datetime.fromtimestamp(action.time, UTC)
            created = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"
            name, guid = PROVIDER
            data = (
                ("MessageNumber", "1"),
                ("MessageTotal", "1"),
                ("ScriptBlockText", action.text),
                ("ScriptBlockId", action.block_id),
                ("Path", ""),
            )
            fields = "".join(f"<Data Name={quoteattr(k)}>{escape(v)}</Data>" for k, v in data)
            lines.append(
                f"<Event xmlns={quoteattr(NAMESPACE)}><System>"
                f"<Provider Name={quoteattr(name)} Guid={quoteattr(guid)}/>"
                "<EventID>4104</EventID><Version>1</Version><Level>5</Level><Task>2</Task>"
                "<Opcode>15</Opcode><Keywords>0x0</Keywords>"
                f"<TimeCreated SystemTime={quoteattr(created)}/>"
                f"<EventRecordID>{record_id}</EventRecordID>"
                f"<Correlation ActivityID='{{{action.block_id}}}'/>"
                f"<Execution ProcessID='{action.proc.pid}' ThreadID='6120'/>"
                f"<Channel>{name}/Operational</Channel>"
                f"<Computer>{escape(plan.stage.host)}</Computer>"
                "<Security UserID='S-1-5-21-1004336348-1177238915-682003330-1001'/></System>"
                f"<EventData>{fields}</EventData></Event>"
            )
        return ("\n".join(lines) + "\n").encode()
