"""An SMTP server that refuses, times out or drops the connection mid-run, a bounce
reported later by DSN: nothing is sent twice and every patient is still reached."""

from __future__ import annotations

import mailbox
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from carevault.notify import store as states
from carevault.notify.job import notice_key
from carevault.notify.scope import parse_scope
from carevault.notify.service import channels_of, code_keys, send_job
from carevault.notify.store import NoticeStore
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres
EMAILS = {"alice@example.com", "chan.taiman@example.net", "lee@example.org",
          "guardian.wong@example.org", "hostile@example.com", "gone@example.com"}  # fmt: skip


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_with_smtp(clinic: Clinic, **smtp: Any) -> list[str]:
    settings = clinic.settings.model_copy(update={"notify_attempts": 2, **smtp})
    channels = channels_of(settings, clinic.services.now_us())
    job = send_job(clinic.services, channels)
    return job.run(parse_scope(clinic.scope), ("confirmed",)).down


def _everyone_reached_once(clinic: Clinic) -> Counter[str]:
    incident = clinic.scope["incident"]["id"]
    rows = NoticeStore(clinic.services.engine).rows(incident)
    by_state = Counter(row.state for row in rows.values())
    assert by_state == {states.SENT: 8, states.DECEASED: 1}, by_state
    texts = Counter(m["to"] for m in clinic.sms.messages)
    assert max(texts.values()) == 1
    emails = Counter(to for recipients, _ in clinic.sink.messages for to in recipients)
    assert max(emails.values()) == 1
    return Counter(row.channel for row in rows.values() if row.state == states.SENT)


def _relay_down_then_back(clinic: Clinic, **smtp: Any) -> None:
    """While the relay is down its notices wait (no mass fallback to letters); once it is
    back, the next run sends each of them once."""
    assert _run_with_smtp(clinic, **smtp) == ["email"]
    assert clinic.sink.messages == []
    incident = clinic.scope["incident"]["id"]
    store = NoticeStore(clinic.services.engine)
    waiting = store.in_state(incident, states.PENDING)
    assert len(waiting) == 6 and {row.channel for row in waiting} == {"email"}
    assert {row.channel for row in store.in_state(incident, states.SENT)} == {"sms", "letter"}
    assert send_job(clinic.services).run(parse_scope(clinic.scope), ("confirmed",)).down == []
    assert _everyone_reached_once(clinic) == {"email": 6, "sms": 1, "letter": 1}


def test_smtp_refusing_connections_leaves_email_pending_until_it_is_back(
    clinic: Clinic,
) -> None:
    _relay_down_then_back(clinic, smtp_port=_closed_port())


def test_smtp_that_never_answers_times_out_and_waits(clinic: Clinic, silent_port: int) -> None:
    _relay_down_then_back(clinic, smtp_port=silent_port, smtp_timeout=0.3)


def test_connection_dropped_mid_run_resends_only_what_was_lost(clinic: Clinic) -> None:
    sink = clinic.sink
    original = sink.handle_DATA
    calls = {"n": 0}

    async def dropping(server: Any, session: Any, envelope: Any) -> str:
        calls["n"] += 1
        if calls["n"] % 2 == 1:
            server.transport.close()  # gone before the message is kept
            return "421 closing"
        return await original(server, session, envelope)

    sink.handle_DATA = dropping  # type: ignore[method-assign]
    send_job(clinic.services).run(parse_scope(clinic.scope), ("confirmed",))
    received = Counter(to for recipients, _ in sink.messages for to in recipients)
    assert set(received) == EMAILS
    assert max(received.values()) == 1
    assert calls["n"] > len(received)
    _everyone_reached_once(clinic)


def test_a_dsn_bounce_marks_the_address_and_sends_the_notice_by_sms(
    clinic: Clinic, tmp_path: Path
) -> None:
    scope = parse_scope(clinic.scope)
    send_job(clinic.services).run(scope, ("confirmed",))
    incident = scope.incident.incident_id
    assert "gone@example.com" in {to for recipients, _ in clinic.sink.messages for to in recipients}
    key = notice_key(incident, clinic.ids["bounces"])
    dsn_dir = tmp_path / "dsn"
    box = mailbox.Maildir(str(dsn_dir), create=True)
    box.add(_dsn("gone@example.com", f"<notice.{key}@clinics.example.hk>"))
    settings = clinic.settings.model_copy(update={"notify_dsn_dir": dsn_dir})
    job = send_job(clinic.services)
    job.dsn = settings.notify_dsn_dir
    before = len(clinic.sink.messages)
    job.run(scope, ("confirmed",))
    assert len(clinic.sink.messages) == before
    assert [m["to"] for m in clinic.sms.messages].count("+85261234567") == 1
    row = NoticeStore(clinic.services.engine).rows(incident)[key]
    assert (row.state, row.channel) == (states.SENT, "sms")
    digest = code_keys(clinic.settings).address_digest("email", "gone@example.com")
    assert NoticeStore(clinic.services.engine).bounced([digest]) == {digest}
    assert list(mailbox.Maildir(str(dsn_dir)).keys()) == []


def _dsn(address: str, message_id: str) -> EmailMessage:
    """A delivery status notification (RFC 3464) as a receiving MTA would send it."""
    raw = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: notices@clinics.example.hk\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {message_id}\r\nTo: {address}\r\n\r\n--B--\r\n"
    )
    parsed = message_from_string(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_a_resumed_job_copes_with_a_scope_that_changed_and_a_patient_deleted(
    clinic: Clinic,
) -> None:
    from carevault.fhir.registry import RESOURCE_TYPES
    from carevault.sim.loader import SEED_CALLER
    from carevault.vault.writer import Delete

    scope = parse_scope(clinic.scope)
    incident = scope.incident.incident_id
    settings = clinic.settings.model_copy(update={"smtp_port": _closed_port(),
                                                  "notify_attempts": 20})  # fmt: skip
    job = send_job(clinic.services, channels_of(settings, clinic.services.now_us()))
    job.run(scope, ("confirmed",), advance=lambda progress: job.stop.set())
    store = NoticeStore(clinic.services.engine)
    pending = {row.patient_id for row in store.in_state(incident, states.PENDING)}
    assert clinic.ids["en_email"] in pending and clinic.ids["zh_email"] in pending
    # The scope no longer names Alice; Chan's record is deleted meanwhile.
    narrowed = dict(clinic.scope)
    narrowed["tiers"] = {
        "confirmed": [
            line for line in clinic.scope["tiers"]["confirmed"]
            if line["patient"] != clinic.ids["en_email"]
        ]
    }  # fmt: skip
    clinic.services.gate.write(
        SEED_CALLER, [Delete(RESOURCE_TYPES["Patient"], clinic.ids["zh_email"])]
    )
    send_job(clinic.services).run(parse_scope(narrowed), ("confirmed",))
    rows = {row.patient_id: row for row in store.rows(incident).values()}
    assert rows[clinic.ids["en_email"]].state == states.PENDING  # left for the officer
    assert rows[clinic.ids["zh_email"]].state == states.MISSING
    assert rows[clinic.ids["zh_hant"]].state == states.SENT
    received = Counter(to for recipients, _ in clinic.sink.messages for to in recipients)
    assert "alice@example.com" not in received and "chan.taiman@example.net" not in received
    assert max(received.values()) == 1
