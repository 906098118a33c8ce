"""/healthz, /readyz and /metrics on a port of their own (``--metrics [HOST:]PORT``, off unless
given), served from a thread that only reads the loop's latest published sample.

/healthz answers 200 while the process serves at all (a liveness probe); /readyz answers 200 or
503 with one reason per line (a readiness probe); /metrics is Prometheus' text format.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tidewaiter.watch.metrics import Readiness, WatchCollector, registry


class HealthServer:
    def __init__(self, host: str, port: int, collector: WatchCollector, ready: Readiness) -> None:
        reg = registry(collector)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, generate_latest(reg), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._answer(200, b"ok\n")
                elif path == "/readyz":
                    problems = ready.problems(collector.sample)
                    body = "\n".join(problems) + "\n" if problems else "ready\n"
                    self._answer(503 if problems else 200, body.encode())
                else:
                    self._answer(404, b"not found: /healthz, /readyz and /metrics are served\n")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.address = f"{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
