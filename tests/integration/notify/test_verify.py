"""/verify confirms the code of every notice sent, rejects every other, says nothing
about the patient, and gets nowhere when hammered from one address or from many."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.notify.codes import ALPHABET
from carevault.notify.job import notice_key
from carevault.notify.scope import parse_scope
from carevault.notify.service import code_keys, send_job
from carevault.web.app import create_app
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
BASE = "https://clinics.example.hk"


@pytest.fixture
def sent(clinic: Clinic) -> Iterator[tuple[Clinic, list[str]]]:
    clinic.sink.refuse.add("gone@example.com")  # its notice goes by SMS instead
    send_job(clinic.services).run(parse_scope(clinic.scope), ("confirmed",))
    codes = [
        CODE.findall(message.get_body(preferencelist=("plain",)).get_content())[0]
        for _, message, _ in clinic.sink.parsed()
    ]
    codes += [CODE.findall(m["text"])[0] for m in clinic.sms.messages]
    yield clinic, codes


def _app(clinic: Clinic) -> FastAPI:
    """The app over the clinic's services with time stopped where it is: a test's burst
    of checks is one burst however slowly the machine runs it (at wall time, the buckets
    refilled while a loaded machine sent the burst, and let one check too many by)."""
    stopped = clinic.services.clock()
    return create_app(clinic.settings, replace(clinic.services, clock=lambda: stopped))


def _client(clinic: Clinic, address: str) -> TestClient:
    return TestClient(_app(clinic), base_url=BASE, client=(address, 50000))


def _checks(clinic: Clinic) -> list[AuditEvent]:
    return [
        event
        for _, data in clinic.services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag is Tag.NOTIFY_CODE_CHECKED
    ]


def _guess() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(12))


def test_every_sent_code_is_genuine_and_nothing_else_is(sent: tuple[Clinic, list[str]]) -> None:
    clinic, codes = sent
    assert len(codes) == 7
    for index, code in enumerate(codes):
        client = _client(clinic, f"198.51.100.{index + 1}")
        answer = client.get(
            "/verify", params={"code": code}, headers={"accept": "application/json"}
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["genuine"] is True and body["channel"] in ("email", "sms")
        assert set(body) == {"genuine", "channel", "sent_on"}
        page = client.get("/verify", params={"code": code.lower().replace("-", " ")})
        assert "Genuine" in page.text and "Smith" not in page.text
        zh = client.get("/verify", params={"code": code, "lang": "zh"})
        assert "真確" in zh.text
    client = _client(clinic, "198.51.100.200")
    for _ in range(5):
        answer = client.get(
            "/verify", params={"code": _guess()}, headers={"accept": "application/json"}
        )
        assert answer.json() == {"genuine": False, "channel": None, "sent_on": None}
    assert "12 letters" in client.get("/verify", params={"code": "<script>"}).text
    assert "<script>" not in client.get("/verify", params={"code": "<script>"}).text
    form = client.get("/verify")
    assert form.status_code == 200 and 'name="code"' in form.text
    checks = _checks(clinic)
    assert sum(1 for e in checks if e.outcome is Outcome.SUCCESS) == 3 * len(codes)
    assert all(
        code.replace("-", "") not in e.canonical().decode() for e in checks for code in codes
    )


def test_one_address_hammering_gets_429_and_no_answer(sent: tuple[Clinic, list[str]]) -> None:
    clinic, codes = sent
    client = _client(clinic, "203.0.113.9")
    answers = [
        client.get("/verify", params={"code": _guess()}, headers={"accept": "application/json"})
        for _ in range(30)
    ]
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) == 20
    assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
    # A genuine code gets no answer either while the address is limited.
    genuine = client.get(
        "/verify", params={"code": codes[0]}, headers={"accept": "application/json"}
    )
    assert genuine.status_code == 429 and "genuine" not in genuine.json()
    checks = _checks(clinic)
    assert sum(1 for e in checks if e.outcome is Outcome.FAILED) == 10
    assert any(e.outcome is Outcome.DENIED for e in checks)


def test_many_addresses_together_meet_the_global_limit(sent: tuple[Clinic, list[str]]) -> None:
    clinic, _ = sent
    app = _app(clinic)
    # CAREVAULT_NOTIFY_VERIFY_GLOBAL_PER_SECOND at 2 (burst 4).
    app.state.verify_page.limits.everyone = (2.0, 4)
    statuses = []
    for index in range(120):
        client = TestClient(app, base_url=BASE, client=(f"10.9.{index // 250}.{index % 250}", 1))
        statuses.append(client.get("/verify", params={"code": _guess()}).status_code)
    assert statuses.count(429) >= 60
    assert statuses[:4] == [200] * 4
    assert set(statuses) == {200, 429}


def _framing_refused(headers: Any) -> None:
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_page_and_every_answer_refuse_framing_sniffing_and_referrers(
    sent: tuple[Clinic, list[str]],
) -> None:
    clinic, codes = sent
    client = _client(clinic, "198.51.100.77")
    json_accept = {"accept": "application/json"}
    answers = [
        client.get("/verify"),
        client.get("/verify", params={"lang": "zh"}),
        client.get("/verify", params={"code": codes[0]}),
        client.get("/verify", params={"code": _guess()}, headers=json_accept),
        client.get("/verify", params={"code": "<script>"}),
        client.get("/verify", headers=json_accept),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 400]
    for _ in range(10):
        answers.append(client.get("/verify", params={"code": _guess()}))
    assert answers[-1].status_code == 429
    for answer in answers:
        _framing_refused(answer.headers)
    # The console's pages send the very same headers (one list: carevault.web.headers).
    console = client.get("/console/sign-in")
    for name in ("content-security-policy", "x-frame-options", "referrer-policy"):
        assert console.headers[name] == answers[0].headers[name]


def test_one_ipv6_48_is_limited_as_a_whole_not_per_64(sent: tuple[Clinic, list[str]]) -> None:
    clinic, codes = sent
    app = _app(clinic)
    statuses = []
    # 60 addresses, each in a /64 of its own, all in 2001:db8:77::/48: 2 checks each.
    for index in range(60):
        client = TestClient(app, base_url=BASE, client=(f"2001:db8:77:{index:x}::1", 1))
        for _ in range(2):
            statuses.append(client.get("/verify", params={"code": _guess()}).status_code)
    # CAREVAULT_NOTIFY_VERIFY_PER_NETWORK_PER_MINUTE, 30: then the /48 waits.
    assert statuses[:30] == [200] * 30 and statuses.count(200) <= 31
    genuine = TestClient(app, base_url=BASE, client=("2001:db8:77:ffff::9", 1)).get(
        "/verify", params={"code": codes[0]}, headers={"accept": "application/json"}
    )
    assert genuine.status_code == 429 and int(genuine.headers["retry-after"]) >= 1
    # Another /48 is not held back by it.
    other = TestClient(app, base_url=BASE, client=("2001:db8:78::1", 1)).get(
        "/verify", params={"code": codes[0]}, headers={"accept": "application/json"}
    )
    assert other.status_code == 200 and other.json()["genuine"] is True


def test_a_code_verifies_only_as_the_message_it_was_sent_in(
    sent: tuple[Clinic, list[str]],
) -> None:
    """Each channel's message of a notice carries its own code: the SMS's code verifies as
    an SMS, the same notice's email code (never delivered: the address bounced) does not,
    nor does the code a letter would have carried."""
    clinic, _ = sent
    keys = code_keys(clinic.settings)
    incident = clinic.scope["incident"]["id"]
    client = _client(clinic, "198.51.100.90")
    accept = {"accept": "application/json"}

    def verdict(patient: str, channel: str) -> dict[str, Any]:
        code = keys.code_for(notice_key(incident, clinic.ids[patient]), channel)
        answer = client.get("/verify", params={"code": code}, headers=accept)
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    assert verdict("en_email", "email")["channel"] == "email"
    assert verdict("en_email", "sms")["genuine"] is False
    assert verdict("en_email", "letter")["genuine"] is False
    assert verdict("sms_only", "sms")["channel"] == "sms"
    assert verdict("sms_only", "email")["genuine"] is False
    # The notice whose email bounced went by SMS: only the SMS's code is genuine.
    assert verdict("bounces", "sms") == {
        "genuine": True,
        "channel": "sms",
        "sent_on": verdict("bounces", "sms")["sent_on"],
    }
    assert verdict("bounces", "email")["genuine"] is False
    texts = [m["text"] for m in clinic.sms.messages]
    bounced_sms = keys.code_for(notice_key(incident, clinic.ids["bounces"]), "sms")
    assert any(bounced_sms in text for text in texts)


def test_a_code_typed_with_a_chinese_ime_is_recognised(sent: tuple[Clinic, list[str]]) -> None:
    """A Traditional Chinese IME in full-width mode types ＫＭＸ７－３ＨＰＡ: the same code."""
    clinic, codes = sent
    typed = "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in codes[0])
    client = _client(clinic, "198.51.100.77")
    answer = client.get("/verify", params={"code": typed}, headers={"accept": "application/json"})
    assert answer.json()["genuine"] is True
    spaced = typed.replace("－", "\u3000")
    assert "真確" in client.get("/verify", params={"code": spaced, "lang": "zh"}).text


def test_a_code_says_whether_its_notice_went_to_the_address_given(
    sent: tuple[Clinic, list[str]],
) -> None:
    """A patient's own genuine code pasted by a phisher into a message to someone else
    verified ("genuine, by email, on 3 December"). Given the address the message came to,
    the page says whether the notice went there: typed loosely (case, spaces, a local
    mobile number) it matches; another patient's address, or an email address for a
    code sent by SMS, is "not sent to you". The address is never in the ledger."""
    clinic, _ = sent
    keys = code_keys(clinic.settings)
    incident = clinic.scope["incident"]["id"]
    # A fresh address for each check: the page answers 10 a minute from one.
    addresses = (f"198.51.100.{n}" for n in range(100, 200))
    accept = {"accept": "application/json"}

    def client() -> TestClient:
        return _client(clinic, next(addresses))

    def code(patient: str, channel: str) -> str:
        return keys.code_for(notice_key(incident, clinic.ids[patient]), channel)

    def sent_to(patient: str, channel: str, to: str) -> object:
        answer = client().get("/verify", params={"code": code(patient, channel), "to": to},
                            headers=accept)  # fmt: skip
        assert answer.status_code == 200 and answer.json()["genuine"] is True
        return answer.json()["sent_to_address"]

    assert sent_to("en_email", "email", "alice@example.com") is True
    assert sent_to("en_email", "email", "  Alice@Example.COM ") is True
    # Alice's code in a phishing email to Mr Chan.
    assert sent_to("en_email", "email", "chan.taiman@example.net") is False
    assert sent_to("sms_only", "sms", "9123 4567") is True
    assert sent_to("sms_only", "sms", "+852-9123-4567") is True
    assert sent_to("sms_only", "sms", "+852 6123 4567") is False
    # The notice whose email bounced went by SMS: its code in an email is not Ms Ng's.
    assert sent_to("bounces", "sms", "gone@example.com") is False
    assert sent_to("bounces", "sms", "61234567") is True
    assert sent_to("en_email", "email", "not an address") is None  # no evidence (round 59)

    # A code that is not genuine says nothing of any address.
    guess = client().get("/verify", params={"code": _guess(), "to": "alice@example.com"},
                       headers=accept)  # fmt: skip
    assert guess.json() == {
        "genuine": False, "channel": None, "sent_on": None, "sent_to_address": None,
    }  # fmt: skip

    page = client().get("/verify", params={"code": code("en_email", "email"),
                                         "to": "chan.taiman@example.net"})  # fmt: skip
    assert "Not sent to you" in page.text and clinic.settings.notify_hotline in page.text
    assert "Genuine" not in page.text and "Smith" not in page.text
    assert 'value="chan.taiman@example.net"' in page.text
    zh = client().get("/verify", params={"code": code("en_email", "email"),
                                       "to": "chan.taiman@example.net", "lang": "zh"})  # fmt: skip
    assert "並非發給閣下" in zh.text and "真確" not in zh.text
    mine = client().get("/verify", params={"code": code("en_email", "email"),
                                         "to": "alice@example.com"})  # fmt: skip
    assert "sent to this address" in mine.text
    asked = client().get("/verify", params={"code": code("en_email", "email")})
    assert "Genuine" in asked.text and "check again with the email address" in asked.text
    hostile = client().get("/verify", params={"code": code("en_email", "email"),
                                            "to": '"><script>alert(1)</script>'})  # fmt: skip
    assert "<script>alert(1)" not in hostile.text and "Genuine" in hostile.text

    checks = [e for e in _checks(clinic) if (e.source_address or "").startswith("198.51.100.1")]
    given = [e for e in checks if e.detail.get("address_given")]
    assert len(given) == len(checks) - 1
    assert {e.detail["address_matched"] for e in given} == {True, False, None}
    # The entries' times are digits too: a microsecond clock can spell "9123" (a CI run did).
    ledger = re.sub(r'"at_us":\d+', "", b"".join(e.canonical() for e in checks).decode())
    assert "example.com" not in ledger and "9123" not in ledger and "chan.taiman" not in ledger
