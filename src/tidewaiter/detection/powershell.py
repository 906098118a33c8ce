"""PowerShell arguments read as PowerShell reads them, for the archive paths scripts name.

`-DestinationPath $env:USERPROFILE\\x.zip}` inside `& {...}` ends before the brace; a path in
double quotes expands its variables, one in single quotes does not; `(Join-Path $dir 'x.zip')`
and `$a + '\\x.zip'` are joined; a variable assigned earlier in the same script block (or 4104
record) is resolved; `$env:NAME` is expanded where the record gives the environment. Anything
that cannot be resolved is shown as written. Bounded: a few levels of variables, short texts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_DEPTH = 4
MAX_TOKEN = 4096
_VARIABLE = re.compile(r"\$\{(?P<braced>[^}]{1,128})\}|\$(?P<name>(?:env:)?[A-Za-z_]\w{0,127})")
_ASSIGNMENT = r"\$(?:\{{{name}\}}|{name})\s*=(?!=)\s*"
_ENDS = frozenset(" \t\r\n;|}),")
_STATEMENT_ENDS = frozenset("\r\n;|}")
_TICKED = re.compile(r"`(?=[A-Za-z0-9-])")
_CONCATENATED = re.compile(r"(?P<q>['\"])\s*\+\s*(?P=q)")


def plain(script: str) -> str:
    """The script with two obfuscations PowerShell itself undoes before running a command name
    taken away: a backtick before a letter, digit or dash is dropped (``Com`press-Arch`ive`` is
    Compress-Archive) and quoted strings joined with + are one string (`& ('Compress'+'-Archive')`).
    Where `n or `t sat in a double-quoted string, the letter remains: paths read close enough."""
    if "`" in script:
        script = _TICKED.sub("", script)
    if "+" in script:
        script = _CONCATENATED.sub("", script)
    return script


def argument_at(text: str, start: int, ends: frozenset[str] = _ENDS) -> str:
    """The PowerShell argument that starts at `start`: quoted strings (also with a command
    line's escaped `\\"`), balanced parentheses and `$(...)`, up to a separator outside them."""
    out: list[str] = []
    depth = 0
    quote = ""
    i = start
    end = min(len(text), start + MAX_TOKEN)
    while i < end:
        char = text[i]
        if text.startswith('\\"', i):  # cmd.exe's escaped quote inside -Command "..."
            char = '"'
            i += 1
        if quote:
            out.append(char)
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            out.append(char)
        elif char == "(":
            depth += 1
            out.append(char)
        elif char == ")" and depth:
            depth -= 1
            out.append(char)
        elif depth == 0 and char in ends:
            break
        else:
            out.append(char)
        i += 1
    return "".join(out)


def resolve(
    token: str, script: str, before: int, env: Mapping[str, str] | None = None, depth: int = 0
) -> str:
    """The value of a PowerShell argument: strings, Join-Path, concatenation, variables."""
    token = token.strip()
    if not token:
        return token
    parts = _top_level_plus(token)
    if len(parts) > 1:
        return "".join(resolve(p, script, before, env, depth) for p in parts)
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1]
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return _expand(token[1:-1], script, before, env, depth)
    if token.startswith("(") and token.endswith(")"):
        inner = token[1:-1].strip()
        joined = _join_path(inner, script, before, env, depth)
        return joined if joined is not None else resolve(inner, script, before, env, depth)
    return _expand(token, script, before, env, depth)


def _top_level_plus(token: str) -> list[str]:
    parts: list[str] = []
    depth, quote, last = 0, "", 0
    for i, char in enumerate(token):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "+" and depth == 0:
            parts.append(token[last:i])
            last = i + 1
    parts.append(token[last:])
    return [p for p in (p.strip() for p in parts) if p]


def _join_path(
    inner: str, script: str, before: int, env: Mapping[str, str] | None, depth: int
) -> str | None:
    """`Join-Path A B` and `Join-Path -Path A -ChildPath B`: A\\B."""
    if not inner.lower().startswith("join-path"):
        return None
    args: list[str] = []
    i = len("join-path")
    while i < len(inner) and len(args) < 8:
        while i < len(inner) and inner[i] in " \t":
            i += 1
        token = argument_at(inner, i)
        if not token:
            break
        i += len(token) + (inner[i : i + len(token) + 2].count('\\"'))
        if not token.startswith("-"):
            args.append(resolve(token, script, before, env, depth))
    if len(args) < 2:
        return None
    return args[0].rstrip("\\/") + "\\" + args[1].lstrip("\\/")


def _expand(text: str, script: str, before: int, env: Mapping[str, str] | None, depth: int) -> str:
    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["name"]
        if name.lower().startswith("env:"):
            found = _env(env, name[4:])
            return found if found is not None else match.group(0)
        if depth >= MAX_DEPTH:
            return match.group(0)
        assigned = _assigned(name, script, before)
        if assigned is None:
            return match.group(0)
        token, at = assigned
        return resolve(token, script, at, env, depth + 1)

    return _VARIABLE.sub(value, text)


def _env(env: Mapping[str, str] | None, name: str) -> str | None:
    if not env:
        return None
    wanted = name.lower()
    return next((v for k, v in env.items() if k.lower() == wanted), None)


def _assigned(name: str, script: str, before: int) -> tuple[str, int] | None:
    """The value last assigned to $name before `before`, and where that assignment starts."""
    pattern = re.compile(_ASSIGNMENT.format(name=re.escape(name)), re.IGNORECASE)
    last: tuple[str, int] | None = None
    for match in pattern.finditer(script, 0, before):
        last = (argument_at(script, match.end(), _STATEMENT_ENDS).strip(), match.start())
    return last
