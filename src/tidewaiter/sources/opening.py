"""Opening telemetry as it is handed over: compressed or not, a file, a pipe, a folder, a glob
or a zip archive's members.

Compression is recognised by magic bytes, never by the file's name (rotated logs are often
``.1.gz``, exports are often ``.json`` while gzipped). Nothing here seeks: a pipe, process
substitution (``<(zcat ...)``) and standard input are read the same way as a file, the bytes
taken to sniff the format being handed back in front of the rest.

Public datasets (OTRF Security-Datasets, many EVTX collections) ship as zip archives. A zip is
expanded into its members, each named ``ARCHIVE!/MEMBER`` as a Java jar URL names one, so an
alert's raw reference can be opened again by ``investigate`` without unpacking anything.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import sys
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

SNIFF_BYTES = 64 * 1024
FIRST_LINE_MAX = 16 << 20  # a longer first line is not read whole to recognise the format

# (magic, name): https://www.iana.org/assignments/media-types and each format's specification.
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
MAGIC_BYTES = max(len(magic) for magic, _ in _MAGIC)


class CannotDecompress(OSError):
    """The input is compressed in a way this build cannot read; the message says which."""


def read_errors() -> tuple[type[BaseException], ...]:
    """What reading a (decompressing) stream can raise past its head: a truncated or corrupt
    archive, or a failing disk."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, lzma.LZMAError)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


def compression(head: bytes) -> str | None:
    """The compression a stream starts with, by its magic bytes; None for plain data."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            if name == "bzip2" and not head[3:4].isdigit():  # "BZh" then the block size 1-9
                continue
            return name
    return None


def _zstd_reader(stream: BinaryIO) -> BinaryIO:
    try:
        import zstandard
    except ImportError:
        raise CannotDecompress("zstd-compressed; this build cannot read zstd") from None
    # read_across_frames: `zstd` appends a frame per run of `cat a.zst b.zst`, like gzip members.
    reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return cast(BinaryIO, reader)


# Decompressors given a file object never close it: _Prefixed closes the file under them.
_OPENERS: dict[str, Callable[[BinaryIO], BinaryIO]] = {
    "gzip": lambda s: cast(BinaryIO, gzip.GzipFile(fileobj=s, mode="rb")),
    "bzip2": lambda s: cast(BinaryIO, bz2.BZ2File(s, mode="rb")),
    "xz": lambda s: cast(BinaryIO, lzma.LZMAFile(s, mode="rb")),  # noqa: SIM115
    "zstd": _zstd_reader,
}


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read: they are given again, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO, under: BinaryIO | None = None) -> None:
        self._head = memoryview(head)
        self._rest = rest
        self._under = under  # the file under a decompressor, which does not close it

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        read = getattr(self._rest, "read1", self._rest.read)  # what is there, not a full buffer
        data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._rest.close()
            if self._under is not None:
                self._under.close()
        finally:
            super().close()


@dataclass(slots=True)
class Opened:
    stream: BinaryIO  # the decompressed bytes, from the first one
    head: bytes  # the first (decompressed) bytes, to sniff the format from
    compression: str | None  # "gzip", "bzip2", "xz", "zstd" or None


def open_input(path: str) -> Opened:
    """A path ("-" for standard input) opened for reading from the start, decompressed.

    Raises OSError (CannotDecompress for a compression this build cannot read, or a corrupt
    compressed head)."""
    raw: BinaryIO
    if path == "-":
        raw = cast(BinaryIO, _Unclosable(cast(io.BufferedReader, sys.stdin.buffer)))
    elif (member := split_member(path)) is not None:
        raw = _open_member(*member)
    else:
        if Path(path).is_dir():
            raise IsADirectoryError(21, "Is a directory", path)
        raw = Path(path).open("rb")  # noqa: SIM115 - closed with the returned stream
    return open_stream(raw)


def open_stream(raw: BinaryIO) -> Opened:
    """``open_input`` for a stream already open (a file's bytes fetched from object storage);
    it is closed with the returned stream, or here if its head cannot be read."""
    try:
        magic = _read_up_to(raw, MAGIC_BYTES)
        kind = compression(magic)
        stream: BinaryIO = _buffered(magic, raw)
        if kind is not None:
            stream = _OPENERS[kind](stream)
        head = _read_up_to(stream, SNIFF_BYTES, kind)
        # Sources recognise a format by its first line: read on to its end when it is longer
        # than the window (a Kubernetes audit record can be).
        while head and b"\n" not in head and len(head) < FIRST_LINE_MAX:
            more = _read_up_to(stream, SNIFF_BYTES * 4, kind)
            if not more:
                break
            head += more
    except BaseException:
        raw.close()
        raise
    return Opened(_buffered(head, stream, raw if kind else None), head, kind)


def _buffered(head: bytes, rest: BinaryIO, under: BinaryIO | None = None) -> BinaryIO:
    return cast(BinaryIO, io.BufferedReader(_Prefixed(head, rest, under), buffer_size=SNIFF_BYTES))


def _read_up_to(stream: BinaryIO, size: int, kind: str | None = None) -> bytes:
    """Up to size bytes (fewer only at the end of the input: a pipe gives what it has)."""
    parts: list[bytes] = []
    wanted = size
    try:
        while wanted > 0:
            data = stream.read(wanted)
            if not data:
                break
            parts.append(data)
            wanted -= len(data)
    except read_errors() as exc:
        if kind is None:
            raise
        raise CannotDecompress(f"{kind}-compressed, but the data is corrupt ({exc})") from None
    return b"".join(parts)


class _Unclosable(io.RawIOBase):
    """Standard input is shared by the whole run: reading it to the end must not close it."""

    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read1(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --- zip archives ------------------------------------------------------------------------------

MEMBER_SEP = "!/"
ZIP_MAGIC = b"PK\x03\x04"
# Each member is opened on its own (the archive's directory read again), so a zip of very many
# files is read in part: datasets ship one or a few; a folder of logs is better unpacked.
MAX_MEMBERS = 1000


def is_zip(path: str) -> bool:
    """Whether a regular file starts as a zip archive does (its first local file header). A
    pipe is never read here: what was read from it would be lost to its reader."""
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as stream:
            return stream.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:
        return False


def split_member(path: str) -> tuple[str, str] | None:
    """(archive, member) for ``ARCHIVE!/MEMBER`` when ARCHIVE is a zip file on disk; None for
    any other path (a file whose own name holds ``!/`` is still itself)."""
    if MEMBER_SEP not in path or os.path.lexists(path):
        return None
    archive, _, member = path.partition(MEMBER_SEP)
    return (archive, member) if member and os.path.isfile(archive) else None


def on_disk(path: str) -> str:
    """The file on disk that holds a path: the archive for a zip member, else the path."""
    member = split_member(path)
    return member[0] if member is not None else path


def zip_members(path: str) -> list[str]:
    """The member files of a zip archive as ``ARCHIVE!/MEMBER``, in the archive's order, hidden
    ones and macOS resource forks left out as a folder's are. Raises OSError for an archive
    that cannot be listed."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise CannotDecompress(f"a zip archive, but its directory cannot be read ({exc})") from None
    return [f"{path}{MEMBER_SEP}{name}" for name in names if not _hidden_member(name)]


def _hidden_member(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


class _Member(io.RawIOBase):
    """One member's decompressed bytes; closing it closes the archive too."""

    def __init__(self, archive: zipfile.ZipFile, member: IO[bytes], name: str) -> None:
        self._archive = archive
        self._member = member
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._member.read(len(buffer))
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise OSError(f"zip member {self._name} is corrupt ({exc})") from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._member.close()
            self._archive.close()
        finally:
            super().close()


def _open_member(path: str, name: str) -> BinaryIO:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise CannotDecompress(f"a zip archive, but its directory cannot be read ({exc})") from None
    try:
        member = archive.open(name)
    except KeyError:
        archive.close()
        raise FileNotFoundError(2, f"no member {name} in the zip archive", path) from None
    except RuntimeError as exc:  # encrypted: zipfile asks for a password
        archive.close()
        raise CannotDecompress(f"zip member {name} cannot be read ({exc})") from None
    except NotImplementedError as exc:  # a compression method this Python lacks (deflate64)
        archive.close()
        raise CannotDecompress(f"zip member {name}: {exc}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        archive.close()
        raise CannotDecompress(f"zip member {name} is corrupt ({exc})") from None
    return cast(BinaryIO, io.BufferedReader(_Member(archive, member, name)))


# --- folders and globs -------------------------------------------------------------------------

_GLOB_CHARS = frozenset("*?[")


def is_pattern(path: str) -> bool:
    """Whether a command-line path is a glob (of files that may change as it is read again)."""
    return bool(_GLOB_CHARS & set(path))


@dataclass(slots=True)
class Expanded:
    """The files a command line names, in a stable order."""

    files: list[str] = field(default_factory=list)
    listed: set[str] = field(default_factory=set)  # found in a folder or by a glob, not named
    problems: list[str] = field(default_factory=list)  # a glob that matched nothing, ...


def expand(paths: Sequence[str]) -> Expanded:
    """Files from paths: a folder gives every file below it (sorted, hidden ones left out), a
    pattern that names no file gives its matches (sorted; ``**`` descends), a zip archive its
    members. Every path is made absolute, so an alert points at its telemetry from whatever
    folder it is read later."""
    out = Expanded()
    seen: set[str] = set()

    def add(path: str, listed: bool) -> None:
        if path != "-":
            path = os.path.abspath(path)
        if path in seen and path != "-":
            return
        seen.add(path)
        if path != "-" and is_zip(path):
            try:
                members = zip_members(path)
            except OSError as exc:
                out.problems.append(f"{path}: {exc}")
                return
            if not members:
                out.problems.append(f"{path}: a zip archive with no file in it")
            if len(members) > MAX_MEMBERS:
                out.problems.append(
                    f"{path}: a zip archive of {len(members)} files; the first {MAX_MEMBERS} are "
                    "read (unzip it to read them all)"
                )
            for member in members[:MAX_MEMBERS]:  # one in no format is passed over, as in a folder
                out.files.append(member)
                out.listed.add(member)
            return
        out.files.append(path)
        if listed:
            out.listed.add(path)

    for given in paths:
        named = os.path.lexists(given) and not os.path.isdir(given)
        if given == "-" or named or split_member(given) is not None:  # a file, or a zip member
            add(given, listed=False)
        elif os.path.isdir(given):
            for found in _walk(given):
                add(found, listed=True)
        elif _GLOB_CHARS & set(given):
            matches = sorted(glob.glob(given, recursive=True))
            if not matches:
                out.problems.append(f"{given}: no file matches this pattern")
            for match in matches:
                if os.path.isdir(match):
                    for found in _walk(match):
                        add(found, listed=True)
                else:
                    add(match, listed=True)
        else:
            add(given, listed=False)  # missing: opening it reports why
    return out


def _walk(folder: str) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, name) for name in sorted(files) if not name.startswith("."))
    return found
