"""A small, tool-agnostic option parser, steered by catalog data.

Every Unix tool parses its own options; what the detector needs is the same few facts from each:
which short letters and long options are present, what value an option carries, and which
arguments are positional. ``value_short`` (from the catalog) says which short letters take a value,
so `tar -C /tmp -xzf a.tgz` is not mistaken for a create.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

MAX_REPEATS = 16  # values kept of one option given again and again (the command is the sender's)


@dataclass(slots=True)
class Parsed:
    shorts: set[str] = field(default_factory=set)
    longs: set[str] = field(default_factory=set)
    values: dict[str, str] = field(default_factory=dict)  # "-f" / "--file" -> value (the last)
    # Every value of an option given more than once, in order (MAX_REPEATS at most): a second
    # `--resolve` or `-x` must not hide the first.
    repeated: dict[str, list[str]] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)
    raw_options: list[str] = field(default_factory=list)  # every option argument as written

    def has(self, option: str) -> bool:
        """`-x` (a letter in any cluster), `--long`, or a multi-letter switch (`-hp`, a prefix)."""
        if option.startswith("--"):
            return option in self.longs
        if option.startswith("/"):  # a Windows switch (bitsadmin /upload) parses as positional
            return option.lower() in (p.lower() for p in self.positionals)
        if len(option) == 2:
            return option[1] in self.shorts
        # A word switch is a Windows or 7-Zip/RAR one (`-Post`, `-HP`): their case is free.
        option = option.lower()
        return any(raw.lower().startswith(option) for raw in self.raw_options)

    def all_values(self, option: str) -> list[str]:
        """Every value the option was given, in order."""
        if option in self.repeated:
            return self.repeated[option]
        return [self.values[option]] if option in self.values else []

    def set_value(self, option: str, value: str) -> None:
        if option in self.values:
            every = self.repeated.setdefault(option, [self.values[option]])
            if len(every) < MAX_REPEATS:
                every.append(value)
        self.values[option] = value

    def value(self, *options: str) -> str | None:
        for option in options:
            if option in self.values:
                return self.values[option]
        return None


def parse(
    args: list[str],
    value_short: str = "",
    bundled: bool = False,
    long_table: frozenset[str] = frozenset(),
    word_values: Collection[str] = (),
) -> Parsed:
    """``long_table``: the tool's long options, to resolve abbreviations (`--cre`).
    ``word_values``: single-dash words that take the next argument (`openssl -connect H:P`)."""
    parsed = Parsed()
    index = 0
    if bundled and args and args[0].isascii() and args[0].isalnum():
        # Old-style `tar czf out.tgz dir`: a first argument that is not an option is a cluster
        # of any length (`cvvvvvvvvvvvf`) whose value letters take the next arguments in order.
        index = _cluster(args, 0, args[0], parsed, value_short, in_order=True)
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            parsed.positionals.extend(args[index:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            name = _resolve(name, long_table)
            parsed.longs.add(name)
            parsed.raw_options.append(arg)
            if eq:
                parsed.set_value(name, value)
            elif index < len(args) and not args[index].startswith("-"):
                # Without a schema a long option may or may not take the next argument; record
                # it as a value but keep it positional too, so neither reading is lost.
                parsed.set_value(name, args[index])
            continue
        if arg in word_values:
            parsed.raw_options.append(arg)
            if index < len(args):
                parsed.set_value(arg, args[index])
                index += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            parsed.raw_options.append(arg)
            index = _cluster(args, index, arg[1:], parsed, value_short, in_order=False)
            continue
        parsed.positionals.append(arg)
    return parsed


def _resolve(name: str, table: frozenset[str]) -> str:
    """The long option a unique prefix stands for, as getopt_long reads it; an exact name, an
    unknown one or an ambiguous prefix (which the tool itself refuses) stays as written."""
    if not table or name in table or len(name) < 3:
        return name
    matches = [option for option in table if option.startswith(name)]
    return matches[0] if len(matches) == 1 else name


def _cluster(
    args: list[str], index: int, letters: str, parsed: Parsed, value_short: str, in_order: bool
) -> int:
    """Record a short-option cluster; returns the index of the next unread argument."""
    if in_order:
        index = 1
        for letter in letters:
            parsed.shorts.add(letter)
            if letter in value_short and index < len(args):
                parsed.set_value(f"-{letter}", args[index])
                index += 1
        return index
    for position, letter in enumerate(letters):
        parsed.shorts.add(letter)
        if letter in value_short:
            rest = letters[position + 1 :]
            if rest:
                parsed.set_value(f"-{letter}", rest)
            elif index < len(args):
                parsed.set_value(f"-{letter}", args[index])
                index += 1
            break
    return index
