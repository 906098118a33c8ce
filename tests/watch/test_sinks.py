"""The sinks a watch delivers to: webhook, syslog and the JSON lines file."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.watch.harness import LOOPBACK, Receiver, free_port
from tidewaiter.sinks.jsonl import JsonLinesSink
from tidewaiter.sinks.spool import DeliveryError
from tidewaiter.sinks.syslog import SyslogTransport, format_message
from tidewaiter.sinks.webhook import WebhookError, WebhookTransport, check_url, header_values


def alert(uid: str, severity: int = 4) -> dict[str, Any]:
    return {
        "time": 1714644000123,
        "severity_id": severity,
        "finding_info": {"uid": uid, "title": "Archive staged and exfiltrated"},
    }


# --- webhook ------------------------------------------------------------------------------------


def test_webhook_posts_ocsf_json_with_secret_headers_and_an_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TW_TOKEN", "Bearer s3cret")
    secret = tmp_path / "key"
    secret.write_text("k-123\n")
    headers = header_values({"Authorization": "TW_TOKEN"}, {"X-Api-Key": str(secret)})
    with Receiver(free_port()) as receiver:
        WebhookTransport(receiver.url, headers, timeout=5).send(alert("f1"))
    [(key, body)] = receiver.posts
    assert (key, body) == ("f1", alert("f1"))
    sent = receiver.headers[0]
    assert sent["Authorization"] == "Bearer s3cret"
    assert sent["X-Api-Key"] == "k-123"
    assert sent["Content-Type"] == "application/json"


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (429, False), (400, True)])
def test_webhook_failures_say_whether_to_retry(status: int, permanent: bool) -> None:
    with Receiver(free_port(), status=status) as receiver, pytest.raises(DeliveryError) as failure:
        WebhookTransport(receiver.url, {}, timeout=5).send(alert("f1"))
    assert failure.value.permanent is permanent
    assert str(status) in str(failure.value)


def test_webhook_down_is_a_failure_to_retry() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as failure:
        WebhookTransport(f"http://{LOOPBACK}:{port}/", {}, timeout=2).send(alert("f1"))
    assert not failure.value.permanent


def test_webhook_tokens_never_come_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WebhookError, match="holds credentials"):
        check_url("https://user:token@siem.example.com/in")
    monkeypatch.delenv("TW_MISSING", raising=False)
    with pytest.raises(WebhookError, match="TW_MISSING is not set"):
        header_values({"Authorization": "TW_MISSING"}, {})
    with pytest.raises(WebhookError, match="cannot read"):
        header_values({}, {"Authorization": "/nonexistent/token"})


# --- syslog -------------------------------------------------------------------------------------


def test_syslog_message_is_rfc5424_with_the_alert_as_its_message() -> None:
    message = format_message(alert("f1", severity=5), facility_code=4, hostname="node-a")
    header, _, body = message.partition(b" - finding - ")
    assert header == b"<34>1 2024-05-02T10:00:00.123Z node-a tidewaiter"  # auth.crit
    assert orjson.loads(body) == alert("f1", severity=5)


def test_syslog_over_udp_and_tcp_on_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind((LOOPBACK, 0))
        udp.settimeout(5)
        transport = SyslogTransport(f"udp://{LOOPBACK}:{udp.getsockname()[1]}", "local0")
        transport.send(alert("u1", severity=2))
        datagram = udp.recv(65535)
        transport.close()
    assert datagram.startswith(b"<133>1 ")  # local0.notice
    assert datagram.endswith(orjson.dumps(alert("u1", severity=2)))

    received: list[bytes] = []
    with socket.socket() as server:
        server.bind((LOOPBACK, 0))
        server.listen(1)
        server.settimeout(5)

        def accept() -> None:
            connection, _ = server.accept()
            with connection:
                connection.settimeout(5)
                while chunk := connection.recv(65536):
                    received.append(chunk)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        transport = SyslogTransport(f"tcp://{LOOPBACK}:{server.getsockname()[1]}")
        transport.send(alert("t1"))
        transport.send(alert("t2"))
        transport.close()
        thread.join(timeout=5)
    stream = b"".join(received)
    frames = []
    while stream:  # octet counting: "LENGTH SP MESSAGE"
        length, _, rest = stream.partition(b" ")
        frames.append(rest[: int(length)])
        stream = rest[int(length) :]
    assert [
        orjson.loads(f.split(b" - finding - ", 1)[1])["finding_info"]["uid"] for f in frames
    ] == [
        "t1",
        "t2",
    ]


def test_syslog_to_a_closed_port_is_a_failure_to_retry() -> None:
    transport = SyslogTransport(f"tcp://{LOOPBACK}:{free_port()}", timeout=2)
    with pytest.raises(DeliveryError) as failure:
        transport.send(alert("t1"))
    assert not failure.value.permanent


# --- the JSON lines file ------------------------------------------------------------------------


def test_the_alert_file_takes_each_uid_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    first = JsonLinesSink.to_path(str(path), sync=False, dedupe=True)
    first.write(alert("a"))
    first.write(alert("a"))
    first.commit()
    first.close()
    with path.open("ab") as out:
        out.write(b'{"finding_info": {"uid": "b"')  # a line torn by kill -9
    again = JsonLinesSink.to_path(str(path), sync=False, dedupe=True)
    again.write(alert("a"))
    again.write(alert("b"))
    again.close()
    uids = [orjson.loads(line)["finding_info"]["uid"] for line in path.read_bytes().splitlines()]
    assert uids == ["a", "b"]


def test_an_alert_that_only_lacks_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(orjson.dumps(alert("a")))
    sink = JsonLinesSink.to_path(str(path), sync=False, dedupe=True)
    sink.write(alert("a"))
    sink.write(alert("b"))
    sink.close()
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [
        alert("a"),
        alert("b"),
    ]
