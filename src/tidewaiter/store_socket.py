"""The store while `watch` holds it: the analyst's commands go through watch, over a unix socket.

DuckDB lets one process open a database file for writing, and a running watch is that process.
So watch serves the store's reading and analyst-writing methods on ``<db>.watch/store.sock``, and
``connect`` gives the other commands (alerts, investigate, respond, suppress, baseline show) a
``RemoteStore`` with the same methods when the file is locked and the socket answers.

No torn read, no lost write: each request runs on its own DuckDB connection to watch's database
(a cursor; DuckDB's transactions isolate it from watch's checkpoint and alert writes), and a write
is committed before its reply. A suppression added or removed is applied before the reply too:
the server asks watch to rebuild its engine (as SIGHUP does) and waits until it has, so the next
finding already meets it.

The socket is the owner's alone (mode 0600 in a 0700 folder, and the peer's uid is checked), and
only the methods named in ``METHODS`` can be called. Messages are a 4-byte length and msgpack.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from tidewaiter.detection import baseline
from tidewaiter.detection.baseline import Baselines
from tidewaiter.detection.suppress import Suppression
from tidewaiter.store import Store, StoreError, default_path

SOCKET_NAME = "store.sock"
MAX_MESSAGE = 64 << 20
TIMEOUT = 60.0  # a reply waits at most this long (a suppression waits for watch's next round)
_LENGTH = struct.Struct("!I")
_UNIX_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin

# method -> whether it changes what detection uses (the engine is rebuilt before the reply)
METHODS: dict[str, bool] = {
    "alerts": False,
    "alert": False,
    "alert_workload": False,
    "alert_history": False,
    "related_alerts": False,
    "suppressions": False,
    "add_suppression": True,
    "remove_suppression": True,
    "add_audit": False,
    "audit": False,
    "baseline_profiles": False,
    "backup": False,
}


def socket_path(db: Path) -> Path:
    return db.with_name(db.name + ".watch") / SOCKET_NAME


class _Request(msgspec.Struct, array_like=True):
    method: str
    args: list[Any]
    kwargs: dict[str, Any]


class _Reply(msgspec.Struct, array_like=True):
    ok: bool
    value: Any = None
    error: str = ""


# --- framing -------------------------------------------------------------------------------------


def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def _receive(sock: socket.socket) -> bytes | None:
    head = _exactly(sock, _LENGTH.size)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes is over the limit of {MAX_MESSAGE}")
    return _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _reachable(path: Path) -> tuple[str, int | None]:
    """A path short enough for sun_path: through /proc/self/fd of the folder when it is long."""
    if len(str(path)) <= _UNIX_PATH_MAX:
        return str(path), None
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{folder}/{path.name}", folder


# --- the server (inside watch) -------------------------------------------------------------------


class StoreServer:
    """Serves ``store`` on its socket from a thread per connection. ``changed`` is called after a
    write that detection uses, and returns once detection uses it (or raises TimeoutError)."""

    def __init__(
        self,
        store: Store,
        changed: Callable[[], None],
        say: Callable[[str], None],
    ) -> None:
        self.path = socket_path(store.path)
        self._store = store
        self._changed = changed
        self._say = say
        self._uid = os.geteuid()
        self._closed = False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a watch that was killed: the store lock says it is gone
        address, folder = _reachable(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._sock.bind(address)
        finally:
            os.umask(old)
            if folder is not None:
                os.close(folder)
        self._sock.listen(16)
        self._thread = threading.Thread(target=self._accept, name="store-socket", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid not in (self._uid, 0):
                _send(conn, msgspec.msgpack.encode(_Reply(False, error="not the store's owner")))
                return
            cursor = self._store.cursor()
            try:
                while True:
                    try:
                        data = _receive(conn)
                    except (OSError, ValueError):
                        return
                    if data is None:
                        return
                    _send(conn, msgspec.msgpack.encode(self._handle(cursor, data)))
            except OSError:
                return
            finally:
                cursor.close()

    def _handle(self, store: Store, data: bytes) -> _Reply:
        try:
            request = msgspec.msgpack.decode(data, type=_Request)
        except msgspec.DecodeError as exc:
            return _Reply(False, error=f"unreadable request ({exc})")
        if request.method not in METHODS:
            return _Reply(False, error=f"{request.method!r} cannot be called while watch runs")
        try:
            value = _call(store, request)
            if METHODS[request.method]:
                self._changed()
        except TimeoutError:
            return _Reply(False, error="stored, but watch did not apply it in time; it will")
        except Exception as exc:  # one bad request must not end the connection or the watch
            error = f"{type(exc).__name__}: {exc}"
            self._say(f"the store socket could not serve {request.method}: {error}")
            return _Reply(False, error=error)
        return _Reply(True, value)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _call(store: Store, request: _Request) -> Any:
    args, kwargs = request.args, request.kwargs
    if request.method == "add_suppression":
        store.add_suppression(msgspec.convert(args[0], Suppression))
        return None
    if request.method == "baseline_profiles":
        profiles = store.load_baselines().profiles
        return {name: baseline.encode(profile) for name, profile in profiles.items()}
    return getattr(store, request.method)(*args, **kwargs)


# --- the client (any other command) --------------------------------------------------------------


class RemoteStore(Store):
    """The store, through a running watch. Same methods as ``Store`` for what an analyst does;
    the ones only a detection run uses (checkpoints, storing alerts, saving baselines) refuse."""

    def __init__(self, path: Path) -> None:  # no super().__init__: the file is watch's
        self.path = path
        self.socket = socket_path(path)
        address, folder = _reachable(self.socket)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(TIMEOUT)
        try:
            self._sock.connect(address)
        except OSError as exc:
            self._sock.close()
            raise StoreError(
                f"the store {path} is in use by another process and its watch does not answer "
                f"on {self.socket} ({exc.strerror or exc})"
            ) from None
        finally:
            if folder is not None:
                os.close(folder)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            _send(self._sock, msgspec.msgpack.encode(_Request(method, list(args), kwargs)))
            data = _receive(self._sock)
        except (OSError, ValueError) as exc:
            raise StoreError(f"the watch serving {self.path} stopped answering ({exc})") from None
        if data is None:
            raise StoreError(f"the watch serving {self.path} closed the connection")
        reply = msgspec.msgpack.decode(data, type=_Reply)
        if not reply.ok:
            raise StoreError(f"the watch serving {self.path}: {reply.error}")
        return reply.value

    def close(self) -> None:
        self._sock.close()

    def cursor(self) -> Store:
        raise StoreError("a remote store has no cursor")

    def alerts(
        self, suppressed: bool = False, uid_prefix: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self._call("alerts", suppressed, uid_prefix, limit)
        return value

    def alert(self, uid_prefix: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._call("alert", uid_prefix)
        return value

    def alert_workload(self, uid: str) -> str | None:
        value: str | None = self._call("alert_workload", uid)
        return value

    def alert_history(self, uid: str) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self._call("alert_history", uid)
        return value

    def related_alerts(self, uid: str, limit: int = 50) -> list[tuple[dict[str, Any], list[str]]]:
        rows = self._call("related_alerts", uid, limit)
        return [(alert, list(shared)) for alert, shared in rows]

    def suppressions(self) -> tuple[Suppression, ...]:
        return msgspec.convert(self._call("suppressions"), tuple[Suppression, ...])

    def add_suppression(self, rule: Suppression) -> None:
        self._call("add_suppression", msgspec.to_builtins(rule))

    def remove_suppression(self, rule_id: str) -> bool:
        return bool(self._call("remove_suppression", rule_id))

    def add_audit(
        self,
        actor: str,
        finding_uid: str | None,
        action: str,
        target: str | None,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> int:
        return int(self._call("add_audit", actor, finding_uid, action, target, result, detail))

    def audit(self, finding_uid: str | None = None) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = self._call("audit", finding_uid)
        return value

    def backup(self, target: str | Path) -> None:
        self._call("backup", str(Path(target).resolve()))  # watch writes it: an absolute path

    def load_baselines(self, learn: bool = False, exclude_flagged: bool = True) -> Baselines:
        if learn:
            raise StoreError("baselines cannot be learned while watch holds the store")
        profiles: dict[str, bytes] = self._call("baseline_profiles")
        baselines = Baselines(learn=False, exclude_flagged=exclude_flagged)
        baselines.profiles = {name: baseline.decode(data) for name, data in profiles.items()}
        return baselines

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError(
            f"{self.path} is held by a running watch; stop it to learn baselines or store alerts"
        )

    # What only the process holding the file does.
    add_alert = _refuse
    save_checkpoint = _refuse
    load_checkpoint = _refuse
    save_baselines = _refuse
    transaction = _refuse
    migrate = _refuse
    version = _refuse


def connect(path: str | Path | None) -> Store:
    """The store at ``path``: opened, or through the watch that holds it."""
    try:
        return Store(path)
    except StoreError as exc:
        held = "lock" in str(exc.__cause__ or exc).lower()
        db = Path(path) if path else default_path()
        if not held or not socket_path(db).exists():
            raise
        return RemoteStore(db)
