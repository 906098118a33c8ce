"""The detection catalog: tools, options and patterns as data, validated on load.

New archivers, uploaders and patterns are added to the YAML files beside this module; the code in
``signals`` only knows the handful of *modes* and *destination kinds* those files name.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cache
from importlib import resources
from typing import Literal, TypeVar

import msgspec

ArchiveMode = Literal["flags", "unless_flags", "subcommand", "always"]
OutputKind = Literal[
    "option",
    "first_positional",
    "last_positional",
    "last_before_options",
    "first_after_subcommand",
    "compressed_input",
]
T = TypeVar("T")
DestinationKind = Literal[
    "url",
    "remote_last",
    "host",
    "host_port",
    "socat",
    "cloud",
    "remote_name",
    "service",
    "registry",
    "git_remote",
    "connect_option",
]


class Archiver(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tool: str
    binaries: tuple[str, ...]
    mode: ArchiveMode
    technique: str
    create_short: str = ""
    create_long: tuple[str, ...] = ()
    decompress_short: str = ""
    decompress_long: tuple[str, ...] = ()
    subcommands: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    bundled: bool = False
    value_short: str = ""
    output_options: tuple[str, ...] = ()
    output: OutputKind = "option"
    encrypt_options: tuple[str, ...] = ()
    long_options: tuple[str, ...] = ()  # the rest of the tool's long options: abbreviations

    @property
    def long_table(self) -> frozenset[str]:
        """Every long option named here: getopt_long takes any unambiguous prefix of one
        (`tar --cre` is `tar --create`), so prefixes are resolved against this table."""
        named = (*self.create_long, *self.decompress_long, *self.long_options)
        outputs = (o for o in (*self.output_options, *self.encrypt_options) if o[:2] == "--")
        return frozenset((*named, *outputs))


class Encryptor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tool: str
    binaries: tuple[str, ...]
    technique: str
    encrypt_options: tuple[str, ...] = ()
    decrypt_options: tuple[str, ...] = ()
    subcommands: tuple[str, ...] = ()
    value_short: str = ""
    output_options: tuple[str, ...] = ()


class ScriptPattern(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    tool: str
    pattern: str
    technique: str
    output_pattern: str | None = None
    # Lower-case fragments of which every match holds one, where the pre-filter's own words
    # (catalog tool names, "compress", "archive", ...) do not already: without them a script is
    # never searched.
    hints: tuple[str, ...] = ()


class Transfer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tool: str
    binaries: tuple[str, ...]
    destination: DestinationKind
    technique: str
    upload_options: tuple[str, ...] = ()
    data_options: tuple[str, ...] = ()
    listen_options: tuple[str, ...] = ()
    subcommands: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    value_short: str = ""
    needs_input: bool = False
    service: str | None = None  # the destination of a `service` transfer
    connect_options: tuple[str, ...] = ()  # HOST:PORT of a `connect_option` transfer
    route_options: tuple[str, ...] = ()  # options that send the bytes elsewhere than the URL
    relay_options: tuple[str, ...] = ()  # options that relay the bytes to the URL (a proxy)
    config_options: tuple[str, ...] = ()  # options read from a file the telemetry does not show


class Splitter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tool: str
    binaries: tuple[str, ...]
    technique: str


class ScriptTransfer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tool: str
    pattern: str
    destination_pattern: str
    technique: str
    hints: tuple[str, ...] = ()  # as ScriptPattern.hints


class Runtimes(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    binaries: tuple[str, ...]
    subcommands: tuple[str, ...]


class Launcher(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A program that runs the command in its arguments (`nice -n 5 tar ...`)."""

    binaries: tuple[str, ...]
    value_short: str = ""  # its short options that take a value (`-n 5`, `-n5`)
    value_long: tuple[str, ...] = ()  # its long options that take a value, unless `--opt=v`
    operands: int = 0  # its own arguments before the command (timeout's DURATION)
    assignments: bool = False  # NAME=VALUE words before the command (env)


class Shell(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    binaries: tuple[str, ...]
    option: str | None = None


class Shells(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    posix: Shell
    cmd: Shell
    powershell: Shell


class ArchiverFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    archivers: tuple[Archiver, ...]
    encryptors: tuple[Encryptor, ...]
    scripts: tuple[ScriptPattern, ...]
    interpreters: tuple[str, ...]
    archive_extensions: tuple[str, ...]
    encrypted_extensions: tuple[str, ...]
    archive_magic: dict[str, str]


class TransferFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    transfers: tuple[Transfer, ...]
    downloaders: tuple[str, ...]
    download_renamers: tuple[str, ...]
    splitters: tuple[Splitter, ...]
    script_transfers: tuple[ScriptTransfer, ...]
    runtimes: Runtimes
    shells: Shells
    resolvers: tuple[str, ...] = ()
    launchers: tuple[Launcher, ...] = ()


class Technique(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    tactic: str


class AttackFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    tactics: dict[str, str]
    techniques: dict[str, Technique]


class AnalyticSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An analytic with its Alerting & Detection Strategy metadata."""

    uid: str
    name: str
    goal: str
    priority: str
    attacks: tuple[str, ...]
    blind_spots: str
    false_positives: str
    validation: str
    response: str
    strategy: str = ""  # how the logic decides (the ADS's Strategy Abstract)
    assumptions: str = ""  # what it relies on (beside its blind spots)


class AnalyticsFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    analytics: tuple[AnalyticSpec, ...]


class SensitivePaths(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    prefixes: tuple[str, ...]
    components: tuple[str, ...]


class PlatformFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sensitive_mounts: tuple[str, ...]
    sensitive_paths: SensitivePaths
    familiar_registries: tuple[str, ...]


class Catalog:
    """The loaded catalog, indexed by executable name for the hot path."""

    def __init__(
        self,
        archivers: ArchiverFile,
        transfers: TransferFile,
        attack: AttackFile,
        analytics: AnalyticsFile,
        platform: PlatformFile,
    ) -> None:
        self.attack = attack
        self.platform = platform
        self.sensitive_mounts = frozenset(_fold_path(m) for m in platform.sensitive_mounts)
        self.analytics = {a.uid: a for a in analytics.analytics}
        unknown = {t for a in analytics.analytics for t in a.attacks} - set(attack.techniques)
        if unknown:
            raise CatalogError(
                f"analytics.yaml names techniques missing from attack.yaml: {unknown}"
            )
        self.archivers = {b: a for a in archivers.archivers for b in a.binaries}
        self.encryptors = {b: e for e in archivers.encryptors for b in e.binaries}
        self.scripts = [
            (s, re.compile(s.pattern), _maybe(s.output_pattern)) for s in archivers.scripts
        ]
        self.interpreters = frozenset(archivers.interpreters)
        # Longest first, so ".tar.gz" wins over ".gz" when naming the kind.
        self.archive_extensions = tuple(sorted(archivers.archive_extensions, key=len, reverse=True))
        self.encrypted_extensions = tuple(archivers.encrypted_extensions)
        self.archive_magic = {name: bytes.fromhex(h) for name, h in archivers.archive_magic.items()}
        self.transfers = {b: t for t in transfers.transfers for b in t.binaries}
        self.splitters = {b: s for s in transfers.splitters for b in s.binaries}
        self.script_transfers = [
            (s, re.compile(s.pattern), re.compile(s.destination_pattern))
            for s in transfers.script_transfers
        ]
        self.downloaders = frozenset(transfers.downloaders)
        self.resolvers = frozenset(transfers.resolvers)
        self.download_renamers = frozenset(transfers.download_renamers)
        self.runtimes = transfers.runtimes
        self.shells = transfers.shells
        self.posix_shells = frozenset(transfers.shells.posix.binaries)
        self.cmd_shells = frozenset(transfers.shells.cmd.binaries)
        self.powershells = frozenset(transfers.shells.powershell.binaries)
        self.runtime_binaries = frozenset(transfers.runtimes.binaries)
        self.launchers = {
            b: launcher for launcher in transfers.launchers for b in launcher.binaries
        }
        # Every executable name that can make a signal; anything else is skipped at once.
        self.interesting = (
            frozenset([*self.archivers, *self.encryptors, *self.transfers, *self.splitters])
            | (self.interpreters | self.posix_shells | self.cmd_shells | self.powershells)
            | (self.runtime_binaries | self.resolvers | frozenset(self.launchers))
        )
        # Wrappers carry other commands in their text: skipped unless the prefilter finds a word.
        # (PowerShell is left out: an -EncodedCommand payload shows no words until decoded.)
        self.wrappers = (self.posix_shells | self.cmd_shells | self.interpreters) - (
            frozenset(self.archivers) | self.powershells
        )
        # A cheap pre-filter for shell payloads and scripts: any catalog word in the text at all.
        # Whole words are looked up in a set (one regex alternation of ~90 words is slow on
        # every `sh -c`); the few names that appear inside longer words are substrings.
        self.prefilter_words = frozenset(
            {*self.archivers, *self.encryptors, *self.transfers, *self.splitters}
            | self.runtime_binaries
            | {"tarfile", "zipfile", "gzip", "bz2", "lzma", "make_archive", "iwr", "irm"}
        )
        self.prefilter_fragments = (
            "compress", "zipfile", "upload", "invoke-", "archive", "eval", "base64",
            "?", "*", "[",  # a glob may name a tool (`/???/t?r`)
            "socket", "sockopen", "/dev/tcp/", "/dev/udp/",
            *dict.fromkeys(
                [
                    *(hint for script in archivers.scripts for hint in script.hints),
                    *(hint for script in transfers.script_transfers for hint in script.hints),
                ]
            ),
        )  # fmt: skip

    def mentions_catalog(self, text: str) -> bool:
        """Whether text names any tool, library or cmdlet of the catalog (a cheap pre-filter)."""
        lowered = text.lower()
        if self._mentions(lowered):
            return True
        # `t''ar`, `t\ar` and `"t"ar` are tar to a shell: read again without quotes.
        unquoted = lowered.translate(_UNQUOTE)
        return unquoted != lowered and self._mentions(unquoted)

    def glob_names(self, name: str) -> list[str]:
        """The catalog names a command word's glob matches (`/???/t?r` is tar): four at most,
        in order; none for a pattern that matches more (`*`), which names nothing."""
        if not any(c in name for c in "?*[") or len(name) > 64:
            return []
        matches = sorted(fnmatch.filter(self.interesting, name))
        return matches if len(matches) <= MAX_GLOB_NAMES else []

    def _mentions(self, lowered: str) -> bool:
        if any(fragment in lowered for fragment in self.prefilter_fragments):
            return True
        return not self.prefilter_words.isdisjoint(_WORDS.findall(lowered))

    def technique(self, uid: str) -> tuple[Technique, str]:
        """The technique and its tactic's name; unknown sub-techniques fall back to the parent."""
        known = self.attack.techniques
        technique = known.get(uid) or known[uid.split(".", maxsplit=1)[0]]
        return technique, self.attack.tactics[technique.tactic]

    def knows(self, uid: str) -> bool:
        """Whether the technique (or, for a sub-technique, its parent) is in attack.yaml."""
        return uid.split(".", maxsplit=1)[0] in self.attack.techniques

    def sensitive_mount(self, source: str) -> bool:
        return _fold_path(source) in self.sensitive_mounts

    def sensitive_path(self, path: str) -> str | None:
        """Why a copied path is sensitive (the matching prefix or component), or None."""
        folded = path.replace("\\", "/")
        for prefix in self.platform.sensitive_paths.prefixes:
            if folded == prefix or folded.startswith(prefix + "/"):
                return prefix
        parts = set(folded.lower().split("/"))
        for component in self.platform.sensitive_paths.components:
            if component in parts:
                return component
        return None

    def archive_kind(self, path: str) -> str | None:
        """The archive extension a path ends with, if any."""
        lowered = path.lower()
        for ext in self.archive_extensions:
            if lowered.endswith(ext):
                return ext
        return None

    def magic_kind(self, head: bytes) -> str | None:
        for name, magic in self.archive_magic.items():
            if head.startswith(magic):
                return name
        if len(head) >= 262 and head[257:262] == b"ustar":
            return "tar"
        return None


MAX_GLOB_NAMES = 4
_WORDS = re.compile(r"[a-z0-9_-]+")
_UNQUOTE = str.maketrans("", "", "'\"\\")


def _fold_path(path: str) -> str:
    """A host path compared without case or trailing separators (`C:\\` and `c:` are one)."""
    folded = path.strip().lower().rstrip("/\\")
    return folded or "/"


def _maybe(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


class CatalogError(Exception):
    """A catalog file does not match its schema; the message names the file and the field."""


def _load_file(name: str, kind: type[T]) -> T:
    text = resources.files(__package__).joinpath(name).read_bytes()
    try:
        return msgspec.yaml.decode(text, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise CatalogError(f"catalog {name}: {exc}") from exc


@cache
def load() -> Catalog:
    return Catalog(
        _load_file("archivers.yaml", ArchiverFile),
        _load_file("transfers.yaml", TransferFile),
        _load_file("attack.yaml", AttackFile),
        _load_file("analytics.yaml", AnalyticsFile),
        _load_file("platform.yaml", PlatformFile),
    )
