"""Containment through the Docker Engine API (Docker, or Podman's Docker-compatible service).

The container id comes from the alert; it is acted on only after the runtime resolves it (by
full id or an unambiguous prefix) and the answer's own id starts with it — a container merely
*named* like the id is refused. From then on only the runtime's full id is used. Names, images
and paths from telemetry never reach a call. Each action reads the current state first, so a
second run changes nothing and says so.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tidewaiter.identity import container_id_from_cgroup
from tidewaiter.respond.outcome import GUIDANCE_ONLY, Outcome, Outcomes, Report, Result
from tidewaiter.respond.planner import Action, Plan
from tidewaiter.respond.protect import Protection

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Pinned rather than "auto": negotiating costs Podman's service a second or more per run, and
# 1.41 (Docker 20.10) is served by every Docker since and by Podman's compatible API.
API_VERSION = "1.41"
_HEX = re.compile(r"^[0-9a-f]{12,64}$")
_STOP_TIMEOUT = 10  # seconds a running container gets to exit before it is killed


class RuntimeProblem(Exception):
    """The runtime cannot be used for this container; the message says why in one sentence."""


def default_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class DockerExecutor:
    def __init__(
        self,
        base_url: str,
        protection: Protection,
        *,
        force: bool = False,
        dry_run: bool = False,
        evidence_dir: str | None = None,
        timeout: float = 30.0,
        api: Any = None,
    ) -> None:
        self.base_url = base_url
        self.protection = protection
        self.force = force
        self.dry_run = dry_run
        self.evidence_dir = Path(evidence_dir) if evidence_dir else None
        self.timeout = timeout
        self._api = api
        self._handlers: dict[str, Callable[[Any, str], tuple[Result, str]]] = {
            "disconnect": self._disconnect,
            "pause": self._pause,
            "export": self._export,
            "inspect": self._inspect,
            "stop": self._stop,
        }

    def execute(self, plan: Plan, report: Report) -> list[Outcome]:
        recorded = Outcomes(report)
        emit = recorded.add

        def every(result: Result, message: str) -> list[Outcome]:
            return recorded.every(plan.actions, result, message)

        if plan.problems:
            return every("refused", "; ".join(plan.problems))
        try:
            api = self._connect()
            attrs = self._resolve(api, plan.target.container_id)
        except RuntimeProblem as exc:
            return every("failed", str(exc))
        full_id = str(attrs["Id"])
        why = self._protected(attrs)
        if why is not None and not self.force:
            return every("refused", f"{why} (as the runtime reports it); --force to act anyway")
        for action in plan.actions:
            if action.manual:
                emit(Outcome(action.kind, f"container {full_id}", "manual", GUIDANCE_ONLY))
                continue
            handler = self._handlers.get(action.kind)
            if handler is None:
                emit(_outcome(action, "failed", f"no Docker handler for {action.kind!r}"))
                continue
            try:
                result, message = handler(api, full_id)
            except Exception as exc:  # each action reports its own failure
                result, message = "failed", self._explain(exc)
            emit(Outcome(action.kind, f"container {full_id}", result, message))
        return recorded.recorded

    # --- resolution ----------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._api is not None:
            return self._api
        try:
            import docker
        except ImportError as exc:
            raise RuntimeProblem(
                "the docker package is missing: pip install 'tidewaiter[respond]'"
            ) from exc
        try:
            self._api = docker.APIClient(
                base_url=self.base_url, version=API_VERSION, timeout=self.timeout
            )
        except Exception as exc:  # docker wraps every transport error its own way
            raise RuntimeProblem(self._explain(exc)) from exc
        return self._api

    def _resolve(self, api: Any, container_id: str | None) -> dict[str, Any]:
        if not container_id or not _HEX.match(container_id):
            raise RuntimeProblem("the alert carries no container id the runtime can resolve")
        try:
            attrs: dict[str, Any] = api.inspect_container(container_id)
        except Exception as exc:
            raise RuntimeProblem(self._explain(exc, container_id)) from exc
        found = str(attrs.get("Id", ""))
        if not found.startswith(container_id):
            raise RuntimeProblem(
                f"the runtime answered for {container_id} with container {found[:12]}, whose id "
                "does not start with it (a container named like the id?); refusing to act"
            )
        return attrs

    def _protected(self, attrs: dict[str, Any]) -> str | None:
        if str(attrs.get("Id", "")) in _own_container_ids():
            return "this is the container tidewaiter itself runs in"
        config = attrs.get("Config") or {}
        labels = config.get("Labels") or {}
        return self.protection.why(
            namespace=labels.get("io.kubernetes.pod.namespace"),
            image=config.get("Image"),
            names=(str(attrs.get("Name", "")).lstrip("/"), labels.get("io.kubernetes.pod.name")),
        )

    # --- actions ---------------------------------------------------------------------------

    def _disconnect(self, api: Any, cid: str) -> tuple[Result, str]:
        attrs = api.inspect_container(cid)
        mode = str((attrs.get("HostConfig") or {}).get("NetworkMode") or "")
        if mode == "host":
            return "failed", "it uses the host's network, which cannot be detached; pause it"
        if mode.startswith("container:"):
            return "failed", (
                f"it shares the network of container {mode[10:22]}; contain that container"
            )
        if mode.startswith("ns:"):
            return "failed", "it joined a network namespace by path, which the API cannot detach"
        names = _attached(attrs)
        if not names:
            return "unchanged", "attached to no network"
        if self.dry_run:
            return "dry-run", f"would disconnect it from {', '.join(names)}"
        problems = []
        for name in names:
            try:
                api.disconnect_container_from_network(cid, name, force=True)
            except Exception as exc:  # one network's failure must not hide others
                if _status(exc) != 404:  # 404: detached meanwhile
                    problems.append(f"{name}: {self._explain(exc)}")
        left = _attached(api.inspect_container(cid))
        if left:
            return "failed", f"still attached to {', '.join(left)}" + (
                f" ({'; '.join(problems)})" if problems else ""
            )
        return "changed", f"disconnected from {', '.join(names)}"

    def _pause(self, api: Any, cid: str) -> tuple[Result, str]:
        state = api.inspect_container(cid).get("State") or {}
        if state.get("Paused"):
            return "unchanged", "already paused"
        if not state.get("Running"):
            return "unchanged", f"not running ({state.get('Status', '?')}): nothing to freeze"
        if self.dry_run:
            return "dry-run", "would pause it"
        api.pause(cid)
        if not (api.inspect_container(cid).get("State") or {}).get("Paused"):
            return "failed", "the runtime accepted the pause but does not report it paused"
        return "changed", "paused: its processes are frozen, its memory kept"

    def _export(self, api: Any, cid: str) -> tuple[Result, str]:
        dest = self._evidence_path(f"{cid}.tar")
        if dest.exists() and dest.stat().st_size > 0:
            return "unchanged", f"{dest} already holds its filesystem"
        if self.dry_run:
            return "dry-run", f"would write its filesystem to {dest}"
        digest = hashlib.sha256()
        size = 0
        partial = dest.with_name(dest.name + ".partial")
        with partial.open("wb") as out:
            for chunk in api.export(cid, chunk_size=1 << 20):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
        return "changed", f"{size} bytes to {dest} (sha256 {digest.hexdigest()})"

    def _inspect(self, api: Any, cid: str) -> tuple[Result, str]:
        dest = self._evidence_path(f"{cid}.inspect.json")
        if dest.exists() and dest.stat().st_size > 0:
            return "unchanged", f"{dest} already holds its inspect output"
        if self.dry_run:
            return "dry-run", f"would write its inspect output to {dest}"
        data = orjson.dumps(
            api.inspect_container(cid), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        )
        partial = dest.with_name(dest.name + ".partial")
        partial.write_bytes(data)
        os.replace(partial, dest)
        return "changed", f"{len(data)} bytes to {dest}"

    def _stop(self, api: Any, cid: str) -> tuple[Result, str]:
        state = api.inspect_container(cid).get("State") or {}
        if not state.get("Running"):
            return "unchanged", f"not running ({state.get('Status', '?')})"
        if self.dry_run:
            return "dry-run", "would stop it"
        if state.get("Paused"):
            api.kill(cid)  # a frozen process cannot act on SIGTERM; SIGKILL needs no action
            how = "killed (it was paused)"
        else:
            api.stop(cid, timeout=_STOP_TIMEOUT)
            how = "stopped"
        if (api.inspect_container(cid).get("State") or {}).get("Running"):
            return "failed", "the runtime accepted the stop but still reports it running"
        return "changed", how

    def _evidence_path(self, name: str) -> Path:
        if self.evidence_dir is None:
            raise RuntimeProblem("no evidence directory was given (--evidence DIR)")
        self.evidence_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.evidence_dir / name

    # --- errors ----------------------------------------------------------------------------

    def _explain(self, exc: BaseException, container_id: str | None = None) -> str:
        if isinstance(exc, RuntimeProblem):
            return str(exc)
        status = _status(exc)
        detail = str(getattr(exc, "explanation", None) or exc)
        if status == 404:
            what = f"container {container_id}" if container_id else "the container"
            return f"container gone: the runtime has no {what} ({_short(detail)})"
        if status in (401, 403):
            return f"permission denied by the runtime: {_short(detail)}"
        if status is not None:
            return f"the runtime refused ({status}): {_short(detail)}"
        text = f"{exc!r} {exc}"
        if "Permission denied" in text or "PermissionError" in text:
            return f"permission denied on {self.base_url}: this user may not use the socket"
        if any(
            s in text
            for s in ("Connection refused", "FileNotFoundError", "No such file", "timed out")
        ) or isinstance(exc, OSError):
            return f"runtime unreachable at {self.base_url} ({_short(str(exc))})"
        return f"runtime error: {_short(detail)}"


def _own_container_ids() -> set[str]:
    """The container this process runs in, by its cgroup (empty on a host)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return set()
    ids = (container_id_from_cgroup(line.rsplit(":", 1)[-1]) for line in lines)
    return {i for i in ids if i}


def _attached(attrs: dict[str, Any]) -> list[str]:
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return sorted(name for name in networks if name != "none")


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _outcome(action: Action, result: Result, message: str) -> Outcome:
    return Outcome(action.kind, action.target, result, message)
