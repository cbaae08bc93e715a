"""Every affected patient gets exactly one notice, in their language, naming only their
own data categories, by the best channel that works; DKIM verifies; nothing leaks."""

from __future__ import annotations

import re
from email.message import Message

import dkim
import pytest

from carevault.notify import store as states
from carevault.notify.job import notice_key
from carevault.notify.mail import dns_record
from carevault.notify.scope import parse_scope
from carevault.notify.service import code_keys, send_job
from carevault.notify.store import NoticeStore
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres


def _text(message: Message) -> str:
    part = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return str(part.get_content())


def _html(message: Message) -> str:
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return str(part.get_content())


def test_every_affected_patient_gets_one_notice_of_their_own(clinic: Clinic) -> None:
    clinic.sink.refuse.add("gone@example.com")
    scope = parse_scope(clinic.scope)
    progress = send_job(clinic.services).run(scope, ("confirmed", "decrypted"))

    mails = clinic.sink.parsed()
    by_to = {}
    for to, message, raw in mails:
        assert len(to) == 1
        assert to[0] not in by_to, f"two emails to {to[0]}"
        by_to[to[0]] = (message, raw)
    assert set(by_to) == {
        "alice@example.com",
        "chan.taiman@example.net",
        "lee@example.org",
        "guardian.wong@example.org",
        "hostile@example.com",
    }
    record = dns_record(clinic.settings.resolved_dkim_key_path.read_bytes()).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"carevault._domainkey.clinics.example.hk."
        return record

    keys = code_keys(clinic.settings)
    incident = scope.incident.incident_id
    for to, (message, raw) in by_to.items():
        assert dkim.verify(raw, dnsfunc=dns), f"DKIM fails for {to}"
        assert message["List-Unsubscribe"] is None
        text, html = _text(message), _html(message)
        for body in (text, html):
            assert "http://" not in body and "https://" not in body
            assert "<a " not in body.lower() and "<script" not in body.lower()
            assert "A123456" not in body
            assert "/verify" in body and "clinics.example.hk" in body
        assert not message.is_multipart() or all(
            part.get_content_disposition() != "attachment" for part in message.walk()
        )
    # Language from Patient.communication: yue and zh-HK get Chinese, en gets English.
    assert "閣下" in _text(by_to["chan.taiman@example.net"][0])
    assert "閣下" in _text(by_to["lee@example.org"][0])
    assert "Dear Alice Smith" in _text(by_to["alice@example.com"][0])
    # Only their own categories: Alice's condition was read, Chan's was not.
    assert "medical records" in _text(by_to["alice@example.com"][0])
    assert "醫療紀錄" not in _text(by_to["chan.taiman@example.net"][0])
    assert "身份證明文件號碼" in _text(by_to["chan.taiman@example.net"][0])
    assert "identity document" not in _text(by_to["alice@example.com"][0])
    # The guardian receives the minor's notice, written to them about the child.
    guardian = _text(by_to["guardian.wong@example.org"][0])
    assert "parent or guardian of Kit Wong" in guardian
    # Hostile input breaks neither a header nor the HTML.
    hostile, raw = by_to["hostile@example.com"]
    assert hostile["Bcc"] is None and b"victim@example.com" not in raw.split(b"\r\n\r\n")[0]
    assert "<b>" not in _html(hostile) and "Evil" not in _html(hostile)
    # Its name holds an address: a phisher's text, not a name, so none is shown.
    assert _text(hostile).startswith("Dear patient,") and "victim" not in _text(hostile)
    assert "\u202e" not in _text(hostile)
    assert max(len(line) for line in _text(hostile).splitlines()) < 400
    # Codes: each notice carries its own.
    for message, _ in by_to.values():
        code = re.search(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b", _text(message))
        assert code is not None
    # SMS: the phone-only patient, and the bounced address's owner (fallback).
    numbers = sorted(m["to"] for m in clinic.sms.messages)
    assert numbers == ["+85261234567", "+85291234567"]
    assert all("/verify" in m["text"] and "http" not in m["text"] for m in clinic.sms.messages)
    # Letters: the one with neither.
    letter = (
        clinic.settings.notify_letters_dir
        / incident
        / (  # type: ignore[operator]
            notice_key(incident, clinic.ids["letter_only"]) + ".pdf"
        )
    )
    assert letter.read_bytes().startswith(b"%PDF")
    # The deceased patient is left out and listed; the bystander was never in scope.
    rows = NoticeStore(clinic.services.engine).rows(incident)
    states_by_patient = {row.patient_id: row.state for row in rows.values()}
    assert states_by_patient[clinic.ids["deceased"]] == states.DECEASED
    assert clinic.ids["bystander"] not in states_by_patient
    assert "lam@example.com" not in by_to
    assert progress.sent == 8 and progress.skipped == 1
    assert keys.code_for(notice_key(incident, clinic.ids["en_email"]), "email") in _text(
        by_to["alice@example.com"][0]
    )


def test_a_second_run_sends_nothing_again(clinic: Clinic) -> None:
    scope = parse_scope(clinic.scope)
    send_job(clinic.services).run(scope, ("confirmed",))
    first = len(clinic.sink.messages), len(clinic.sms.messages)
    send_job(clinic.services).run(scope, ("confirmed",))
    assert (len(clinic.sink.messages), len(clinic.sms.messages)) == first
