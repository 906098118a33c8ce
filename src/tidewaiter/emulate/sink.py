"""The exfiltration sink: where a live scenario sends its data, inside the sink's own namespace.

Run as ``python -m tidewaiter.emulate.sink --protocol http|tcp --port N --report FILE`` (the live
runner starts it under ``ip netns exec``). It accepts uploads (HTTP POST and PUT, with
Content-Length or chunked, or raw TCP until the peer closes or goes quiet), counts what arrived,
and appends one JSON line a connection to the report file. The first line, ``{"ready": true}``,
says it is listening. It stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

IDLE = 2.0  # seconds of silence after which a raw TCP sender is taken as done
MAX_BODY = 512 << 20


class Report:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, entry: dict[str, object]) -> None:
        with self._lock, self._path.open("a") as stream:
            stream.write(json.dumps(entry) + "\n")


def _http_handler(report: Report) -> type[BaseHTTPRequestHandler]:
    class Upload(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # so curl's "Expect: 100-continue" is answered

        def do_POST(self) -> None:
            self._receive()

        def do_PUT(self) -> None:
            self._receive()

        def do_GET(self) -> None:
            self._answer(0)

        def _receive(self) -> None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                received = self._chunked()
            else:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                received = len(self.rfile.read(length)) if length else 0
            self._answer(received)

        def _chunked(self) -> int:
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
                if total > MAX_BODY:
                    return total

        def _answer(self, received: int) -> None:
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            report.write(
                {"peer": self.client_address[0], "method": self.command, "bytes": received}
            )

        def log_message(self, format: str, *args: object) -> None:
            pass  # the report file is the log

    return Upload


def _tcp_handler(report: Report) -> type[socketserver.BaseRequestHandler]:
    class Receive(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            connection: socket.socket = self.request
            connection.settimeout(IDLE)
            received = 0
            try:
                while chunk := connection.recv(1 << 16):
                    received += len(chunk)
            except TimeoutError:
                pass  # busybox nc keeps the connection open after its input ends
            report.write({"peer": self.client_address[0], "method": "tcp", "bytes": received})

    return Receive


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(protocol: str, address: str, port: int, report_path: Path) -> None:
    report = Report(report_path)
    server: socketserver.TCPServer
    if protocol == "http":
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer((address, port), _http_handler(report))
    else:
        server = _TcpServer((address, port), _tcp_handler(report))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    report.write({"ready": True})
    with server:
        server.serve_forever(poll_interval=0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tidewaiter's exfiltration sink")
    parser.add_argument("--protocol", choices=("http", "tcp"), required=True)
    parser.add_argument("--address", required=True, help="the sink's address in its namespace")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.protocol, args.address, args.port, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
