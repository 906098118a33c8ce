"""`tidewaiter completion bash|zsh|fish`: a shell completion script, generated from the parser
itself so it never falls behind a new option. Install: `tidewaiter completion bash >
~/.local/share/bash-completion/completions/tidewaiter` (zsh: source it after bashcompinit;
fish: `tidewaiter completion fish > ~/.config/fish/completions/tidewaiter.fish`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

SHELLS = ("bash", "zsh", "fish")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh, fish)",
        description="Print a completion script for SHELL on stdout: subcommands, actions and "
        "options, generated from tidewaiter's own parser.",
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tidewaiter.cli.main import build_parser

    tree = _tree(build_parser())
    script = _fish(tree) if args.shell == "fish" else _bash(tree, zsh=args.shell == "zsh")
    sys.stdout.write(script)
    return 0


# command -> (options, {action -> options})
Tree = dict[str, tuple[list[str], dict[str, list[str]]]]


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return sorted(o for a in parser._actions for o in a.option_strings if o.startswith("--"))


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _tree(parser: argparse.ArgumentParser) -> Tree:
    return {
        name: (_options(sub), {a: _options(p) for a, p in _children(sub).items()})
        for name, sub in _children(parser).items()
    }


def _bash(tree: Tree, zsh: bool) -> str:
    cases = []
    for name, (options, actions) in tree.items():
        if actions:
            inner = "".join(
                f"        {shlex.quote(a)}) words={shlex.quote(' '.join(o))} ;;\n"
                for a, o in actions.items()
            )
            names = " ".join(actions)
            inner += f"        *) words={shlex.quote(names)} ;;\n"
            cases.append(f'    {shlex.quote(name)})\n      case "$sub" in\n{inner}      esac ;;\n')
        else:
            cases.append(f"    {shlex.quote(name)}) words={shlex.quote(' '.join(options))} ;;\n")
    commands = " ".join(tree)
    head = "autoload -U +X bashcompinit && bashcompinit\n" if zsh else ""
    return (
        head + "_tidewaiter() {\n"
        '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="${COMP_WORDS[1]}" sub="" words=""\n'
        '  [ "$COMP_CWORD" -gt 2 ] && sub="${COMP_WORDS[2]}"\n'
        '  if [ "$COMP_CWORD" -eq 1 ]; then words=' + shlex.quote(commands) + "\n"
        '  else\n  case "$cmd" in\n' + "".join(cases) + "  esac\n  fi\n"
        '  COMPREPLY=($(compgen -W "$words" -- "$cur"))\n'
        "}\n"
        "complete -o default -F _tidewaiter tidewaiter\n"
    )


def _fish(tree: Tree) -> str:
    lines = ["complete -c tidewaiter -f"]
    for name, (options, actions) in tree.items():
        lines.append(f"complete -c tidewaiter -n __fish_use_subcommand -a {shlex.quote(name)}")
        seen = f"'__fish_seen_subcommand_from {name}'"
        for action in actions:
            lines.append(f"complete -c tidewaiter -n {seen} -a {shlex.quote(action)}")
        nested = {option for opts in actions.values() for option in opts}
        for option in sorted(set(options) | nested):
            lines.append(f"complete -c tidewaiter -n {seen} -l {shlex.quote(option[2:])}")
    return "\n".join(lines) + "\n"
