"""The pySigma processing pipeline from Sigma's field names to tidewaiter's Event fields.

Sigma's taxonomy names fields after Sysmon (Image, CommandLine, TargetFilename, DestinationIp);
its Linux and macOS process_creation rules use the same names, and auditd rules use the record's
own keys (type, a0..aN, exe, comm). A field the pipeline leaves unmapped has no counterpart in
tidewaiter's events, and a rule that uses it is reported, not run half-blind.
"""

from __future__ import annotations

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import FieldMappingTransformation

from tidewaiter.sigma.fields import MAX_ARGS

# The Sysmon-style taxonomy, shared by the Windows, Linux and macOS categories.
TAXONOMY = {
    "Image": "process.path",
    "CommandLine": "process.cmd_line",
    "User": "process.user",
    "CurrentDirectory": "process.cwd",
    "ProcessId": "process.pid",
    "ParentImage": "process.parent.path",
    "ParentCommandLine": "process.parent.cmd_line",
    "ParentUser": "process.parent.user",
    "ParentProcessId": "process.parent.pid",
    "TargetFilename": "file.path",
    "DestinationIp": "dst_endpoint.ip",
    "DestinationPort": "dst_endpoint.port",
    "DestinationHostname": "dst_endpoint.hostname",
    "SourceIp": "src_endpoint.ip",
    "SourcePort": "src_endpoint.port",
    "Initiated": "network.initiated",
    "Computer": "host",
    # Not in Sigma's taxonomy: the names tidewaiter's exported correlation rules group by.
    "ContainerId": "container.uid",
    "ContainerName": "container.name",
    "ContainerImage": "container.image.name",
}

# auditd rules (logsource product linux, service auditd) use the records' keys.
AUDITD = {
    "type": "auditd.type",
    "exe": "process.path",
    "comm": "process.name",
    "cwd": "process.cwd",
    "pid": "process.pid",
    "ppid": "process.parent.pid",
    "node": "host",
    **{f"a{n}": f"process.args.{n}" for n in range(MAX_ARGS)},
}


def _mapping(names: dict[str, str]) -> dict[str | None, str | list[str]]:
    return dict(names.items())


def pipeline() -> ProcessingPipeline:
    return ProcessingPipeline(
        name="tidewaiter events",
        items=[
            ProcessingItem(
                identifier="tidewaiter-auditd",
                transformation=FieldMappingTransformation(_mapping(AUDITD)),
                rule_conditions=[LogsourceCondition(product="linux", service="auditd")],
            ),
            ProcessingItem(
                identifier="tidewaiter-taxonomy",
                transformation=FieldMappingTransformation(_mapping(TAXONOMY)),
            ),
        ],
    )
