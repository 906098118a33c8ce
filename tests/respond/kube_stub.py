"""A tiny stand-in for the Kubernetes API server on loopback: pods (get, patch) and
NetworkPolicies (get, create, replace), with `dryRun=All` honoured (validated, not persisted).
The real `kubernetes` client talks to it over HTTP, so requests are built, serialised and parsed
exactly as against a cluster; only the server side is small."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$")
_POLICIES = re.compile(r"^/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies$")
_POLICY = re.compile(r"^/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies/([^/]+)$")


@dataclass
class Request:
    method: str
    path: str
    dry_run: bool
    content_type: str
    body: Any


@dataclass
class Cluster:
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    forbidden: bool = False
    version: int = 1

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]


def pod(namespace: str, name: str, container_id: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "api", "image": image}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "api",
                    "containerID": f"containerd://{container_id}",
                    "image": image,
                    "imageID": "",
                    "ready": True,
                    "restartCount": 0,
                }
            ]
        },
    }


@contextmanager
def serve(cluster: Cluster) -> Iterator[str]:
    """The stub's base URL while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _handler(cluster: Cluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            dry_run = parse_qs(url.query).get("dryRun") == ["All"]
            cluster.requests.append(
                Request(self.command, url.path, dry_run, self.headers.get("Content-Type", ""), body)
            )
            if cluster.forbidden:
                return self._status(403, "Forbidden", "tidewaiter cannot do that here")
            if match := _POD.match(url.path):
                return self._pod((match[1], match[2]), body, dry_run)
            if match := _POLICIES.match(url.path):
                return self._create(match[1], body, dry_run)
            if match := _POLICY.match(url.path):
                return self._policy((match[1], match[2]), body, dry_run)
            return self._status(404, "NotFound", url.path)

        def _pod(self, key: tuple[str, str], body: Any, dry_run: bool) -> None:
            current = cluster.pods.get(key)
            if current is None:
                return self._status(404, "NotFound", f"pods {key[1]} not found")
            if self.command == "GET":
                return self._send(200, current)
            patched = copy.deepcopy(current)
            patched["metadata"].setdefault("labels", {}).update(body["metadata"]["labels"])
            if not dry_run:
                cluster.pods[key] = patched
            return self._send(200, patched)

        def _create(self, namespace: str, body: Any, dry_run: bool) -> None:
            key = (namespace, body["metadata"]["name"])
            if key in cluster.policies:
                return self._status(409, "AlreadyExists", f"networkpolicies {key[1]} exists")
            stored = self._stored(body)
            if not dry_run:
                cluster.policies[key] = stored
            return self._send(201, stored)

        def _policy(self, key: tuple[str, str], body: Any, dry_run: bool) -> None:
            current = cluster.policies.get(key)
            if current is None:
                return self._status(404, "NotFound", f"networkpolicies {key[1]} not found")
            if self.command == "GET":
                return self._send(200, current)
            stored = self._stored(body)
            if not dry_run:
                cluster.policies[key] = stored
            return self._send(200, stored)

        def _stored(self, body: Any) -> dict[str, Any]:
            """As the API server returns it: empty lists omitted, a resource version set."""
            stored = copy.deepcopy(body)
            stored["spec"] = {k: v for k, v in stored["spec"].items() if v != []}
            cluster.version += 1
            stored["metadata"]["resourceVersion"] = str(cluster.version)
            return stored

        def _status(self, code: int, reason: str, message: str) -> None:
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
            self._send(code, {**status, "reason": reason, "message": message, "code": code})

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = _handle

    return Handler
