"""Alert delivery by email (SMTP) and webhook (HTTP POST of the alert's JSON).

Delivery runs on its own thread and never holds up detection; a failed delivery is
logged (without the alert's content) and dropped. Messages carry the alert as
``carevault alerts show`` gives it: counts, account, detector, never a patient's name.
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import threading
import urllib.request
from email.message import EmailMessage
from typing import Any

log = logging.getLogger("carevault.detect")


class AlertSinks:
    def __init__(
        self,
        *,
        smtp_host: str | None = None,
        smtp_port: int = 25,
        sender: str = "carevault-alerts@localhost",
        recipients: list[str] | None = None,
        webhook_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.sender = sender
        self.recipients = recipients or []
        self.webhook_url = webhook_url
        self.timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    @property
    def configured(self) -> bool:
        return bool((self.smtp_host and self.recipients) or self.webhook_url)

    def send(self, alert: dict[str, Any]) -> None:
        if not self.configured:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="alert-sinks", daemon=True)
            self._thread.start()
        self._queue.put(alert)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until what was queued has been tried (tests, shutdown)."""
        done = threading.Event()
        self._queue.put({"__flush__": done})
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="alert-sinks", daemon=True)
            self._thread.start()
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if "__flush__" in alert:
                alert["__flush__"].set()
                continue
            self.deliver(alert)

    def deliver(self, alert: dict[str, Any]) -> None:
        if self.smtp_host and self.recipients:
            try:
                self._email(alert)
                self.delivered += 1
            except (OSError, smtplib.SMTPException) as error:
                log.error("alert %s: email not delivered: %s", alert["id"], type(error).__name__)
        if self.webhook_url:
            try:
                self._post(alert)
                self.delivered += 1
            except OSError as error:
                log.error("alert %s: webhook not delivered: %s", alert["id"], type(error).__name__)

    def _email(self, alert: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        who = alert.get("account") or alert.get("client") or "unknown"
        message["Subject"] = (
            f"[CareVault {alert['severity']}] alert {alert['id']}: {alert['detector']} ({who})"
        )
        lines = [f"{key}: {value}" for key, value in alert.items()]
        message.set_content(
            "\n".join(lines) + "\n\nReview: carevault alerts show " + str(alert["id"]) + "\n"
        )
        with smtplib.SMTP(self.smtp_host or "", self.smtp_port, timeout=self.timeout) as smtp:
            smtp.send_message(message)

    def _post(self, alert: dict[str, Any]) -> None:
        url = self.webhook_url or ""
        if not url.startswith(("http://", "https://")):
            raise OSError("the webhook URL must be http:// or https://")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=json.dumps({"alert": alert}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
            reply.read()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=self.timeout)
