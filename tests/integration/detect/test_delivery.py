"""Alerts delivered by email (a real SMTP server, aiosmtpd) and webhook (a real HTTP
server), on loopback; a failed delivery is logged and dropped."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from carevault.detect.notify import AlertSinks
from tests.support.server import free_port

ALERT = {
    "id": "7", "case": "case:staff:amy", "detector": "breadth", "severity": "high",
    "account": "amy", "role": "front_desk", "client": None, "source_address": "10.0.0.9",
    "patient_count": 212, "first_position": 10, "last_position": 400,
    "raised_at": "2026-03-10T11:00:00+00:00", "action": "suspend", "status": "open",
    "explanation": "read 212 distinct patients without a care relationship in one hour",
}  # fmt: skip


class Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_an_alert_goes_to_email_and_webhook(
    smtp: tuple[int, Inbox], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    port, inbox = smtp
    url, received = webhook
    sinks = AlertSinks(
        smtp_host="127.0.0.1", smtp_port=port, recipients=["privacy@clinic.example"],
        webhook_url=url,
    )  # fmt: skip
    sinks.send(ALERT)
    sinks.flush()
    sinks.close()
    assert received == [{"alert": ALERT}]
    (raw,) = inbox.messages
    message = message_from_bytes(raw)
    assert "alert 7: breadth (amy)" in message["Subject"]
    assert "212" in message.get_payload()


def test_a_failed_delivery_is_dropped_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    sinks = AlertSinks(webhook_url=f"http://127.0.0.1:{free_port()}/nobody", timeout=2)
    sinks.send(ALERT)
    sinks.flush()
    sinks.close()
    assert sinks.delivered == 0
    assert "webhook not delivered" in caplog.text
    assert "212" not in caplog.text
