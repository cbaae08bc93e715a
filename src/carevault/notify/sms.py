"""SMS notices through an HTTP gateway, and a loopback fake gateway for tests and the demo.

The gateway contract (what a provider's adapter or relay must offer): ``POST`` JSON
``{"to": E.164, "text": ..., "reference": ...}`` with ``Idempotency-Key``; 2xx when
accepted, the same answer and no second message for a key already seen; 4xx other than
408/429 when the number can never receive it; anything else may pass. The key is the
notice's, so a job restarted after a crash cannot make the gateway send twice.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from carevault.notify.channels import Bounced, Outgoing, TryLater, Unreachable

# httpx is imported when a gateway channel is made: every server process and CLI command
# imports this module (through the notice job), and most never send a text.
if TYPE_CHECKING:
    import httpx


class SmsGatewayChannel:
    name = "sms"

    def __init__(self, url: str, token: str | None = None, timeout: float = 15.0) -> None:
        import httpx

        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self._client: httpx.Client = httpx.Client(timeout=timeout, headers=headers)

    def send(self, outgoing: Outgoing) -> None:
        import httpx

        number = outgoing.recipient.mobile
        if number is None:
            raise Bounced("no mobile number")
        body = {"to": number, "text": outgoing.rendered.sms, "reference": outgoing.notice_key}
        try:
            response = self._client.post(
                self.url, json=body, headers={"idempotency-key": f"sms-{outgoing.notice_key}"}
            )
        except httpx.HTTPError as error:
            raise Unreachable(f"SMS gateway: {type(error).__name__}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if 400 <= status < 500 and status not in (408, 429):
            raise Bounced(f"SMS gateway refused the number ({status})")
        raise TryLater(f"SMS gateway answered {status}")

    def close(self) -> None:
        self._client.close()


class FakeSmsGateway:
    """An SMS gateway on loopback that keeps what it was sent (in memory, and in a JSON
    lines file if given); it honours ``Idempotency-Key`` as a real one must."""

    def __init__(self, port: int = 0, outbox: str | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.seen: dict[str, int] = {}
        self.refuse: set[str] = set()
        self.outbox = outbox
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                length = int(self.headers.get("content-length") or 0)
                try:
                    body = json.loads(self.rfile.read(min(length, 65536)))
                    key = str(self.headers.get("idempotency-key") or "")
                    status = gateway.accept(body, key)
                except (ValueError, KeyError):
                    status = 400
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": %d}' % status)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms"

    def accept(self, body: dict[str, Any], key: str) -> int:
        number = str(body["to"])
        if number in self.refuse:
            return 422
        with self._lock:
            if key and key in self.seen:
                return 200
            self.seen[key] = len(self.messages)
            record = {"to": number, "text": str(body["text"]), "reference": body.get("reference")}
            self.messages.append(record)
            if self.outbox:
                with open(self.outbox, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 202

    def start(self) -> FakeSmsGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
