"""Stop 64: a notice's code is in use for ``CAREVAULT_NOTIFY_CODE_DAYS`` (180) after the
notice was sent. A genuine code leaked from an old letter and pasted into phishing
months later said "Genuine" for good; past its days, /verify says "expired" (the day its
notice was sent, and that a message carrying it now is no new notice of ours), in
English and Chinese, and in JSON as ``"expired": true`` beside ``"genuine": false``.
Notices sent through the real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient

from carevault.clock import from_micros, to_micros
from carevault.notify.job import notice_key
from carevault.notify.service import code_keys
from carevault.notify.store import NoticeStore
from carevault.notify.wording import day
from carevault.web.app import create_app
from tests.integration.notify.conftest import Clinic
from tests.integration.notify.test_verify import BASE, CODE, _checks, sent

__all__ = ["sent"]  # the fixture, shared with test_verify
pytestmark = pytest.mark.postgres
ACCEPT = {"accept": "application/json"}
TYPED = {"sec-fetch-site": "same-origin"}  # the address typed into the page's own form
DAY_US = 86_400_000_000


class Checker:
    """/verify of the clinic's notices with the clock stopped at a chosen instant, each
    check from an address of its own (the page answers 10 a minute from one)."""

    def __init__(self, clinic: Clinic, **settings: Any) -> None:
        self.clinic = clinic
        self.settings = clinic.settings.model_copy(update=settings)
        self.keys = code_keys(clinic.settings)
        self.addresses = (f"198.51.100.{n}" for n in range(1, 250))

    def code(self, patient: str, channel: str) -> str:
        incident = self.clinic.scope["incident"]["id"]
        return self.keys.code_for(notice_key(incident, self.clinic.ids[patient]), channel)

    def sent_us(self, code: str) -> int:
        digest = self.keys.digest(code)
        assert digest is not None
        found = NoticeStore(self.clinic.services.engine).by_code(digest)
        assert found is not None and found[2] is not None
        return found[2]

    def at(self, now_us: int) -> TestClient:
        stopped = from_micros(now_us)
        services = replace(self.clinic.services, settings=self.settings, clock=lambda: stopped)
        app = create_app(self.settings, services)
        return TestClient(app, base_url=BASE, client=(next(self.addresses), 50000))


def test_a_code_past_its_days_says_expired_in_english_chinese_and_json(
    sent: tuple[Clinic, list[str]],
) -> None:
    clinic, _ = sent
    checker = Checker(clinic)
    alice = checker.code("en_email", "email")
    sent_us = checker.sent_us(alice)
    sent_on = from_micros(sent_us).astimezone(ZoneInfo(clinic.settings.timezone)).date()
    expiry = sent_us + 180 * DAY_US

    # The day before: genuine, and the JSON keeps its three keys.
    before = checker.at(expiry - DAY_US).get("/verify", params={"code": alice}, headers=ACCEPT)
    assert before.json() == {"genuine": True, "channel": "email", "sent_on": sent_on.isoformat()}
    assert "Genuine" in checker.at(expiry - 1).get("/verify", params={"code": alice}).text

    for now in (expiry, expiry + 200 * DAY_US):
        answer = checker.at(now).get("/verify", params={"code": alice}, headers=ACCEPT)
        assert answer.status_code == 200
        # Ours, but vouching for nothing now: a script reading ``genuine`` alone tells its
        # user not to trust the message; ``expired`` says why.
        assert answer.json() == {
            "genuine": False, "channel": "email", "sent_on": sent_on.isoformat(), "expired": True,
        }  # fmt: skip
    page = checker.at(expiry).get("/verify", params={"code": alice})
    assert "Expired" in page.text and "Genuine" not in page.text
    assert "no longer in use" in page.text and "not a new notice from us" in page.text
    assert day(from_micros(sent_us), "en", ZoneInfo(clinic.settings.timezone)) in page.text
    assert clinic.settings.notify_hotline in page.text and "Smith" not in page.text
    assert 'class="verdict expired"' in page.text
    zh = checker.at(expiry).get("/verify", params={"code": alice, "lang": "zh"})
    assert "已失效" in zh.text and "真確" not in zh.text and "停止使用" in zh.text
    assert day(from_micros(sent_us), "zh", ZoneInfo(clinic.settings.timezone)) in zh.text
    assert clinic.settings.notify_hotline in zh.text

    # The address the message came to is not weighed: neither "sent to this address" for
    # the right one nor "not sent to you" for another; just expired.
    for to in ("alice@example.com", "chan.taiman@example.net"):
        answer = checker.at(expiry).get(
            "/verify", params={"code": alice, "to": to}, headers={**ACCEPT, **TYPED}
        )
        assert answer.json()["expired"] is True and answer.json()["sent_to_address"] is None
        typed = checker.at(expiry).get("/verify", params={"code": alice, "to": to}, headers=TYPED)
        assert "Expired" in typed.text
        assert "sent to this address" not in typed.text and "Not sent to you" not in typed.text

    expired = [e for e in _checks(clinic) if e.detail.get("expired")]
    assert len(expired) == 2 + 2 + 4
    weighed = [e for e in expired if e.detail.get("address_given")]
    assert len(weighed) == 4 and {e.detail["address_matched"] for e in weighed} == {None}
    assert all(e.reason == "expired" for e in expired)


def test_an_sms_and_a_letter_expire_too_and_the_days_are_a_setting(
    sent: tuple[Clinic, list[str]],
) -> None:
    """``CAREVAULT_NOTIFY_CODE_DAYS=7``: a week after each was sent, the SMS's code and
    the letter's are expired; a microsecond before, genuine."""
    clinic, _ = sent
    checker = Checker(clinic, notify_code_days=7)
    for patient, channel in (("sms_only", "sms"), ("letter_only", "letter")):
        code = checker.code(patient, channel)
        expiry = checker.sent_us(code) + 7 * DAY_US
        before = checker.at(expiry - 1).get("/verify", params={"code": code}, headers=ACCEPT)
        assert before.json()["genuine"] is True and "expired" not in before.json()
        after = checker.at(expiry).get("/verify", params={"code": code}, headers=ACCEPT)
        assert after.json()["genuine"] is False and after.json()["channel"] == channel
        assert after.json()["expired"] is True
        page = checker.at(expiry).get("/verify", params={"code": code, "lang": "zh"})
        assert "已失效" in page.text and "真確" not in page.text


def test_the_day_an_email_names_is_the_last_on_which_its_code_verifies_all_day(
    sent: tuple[Clinic, list[str]],
) -> None:
    """The email, as the real SMTP server received it, says until which day its code can
    be checked: at the last instant of that day, at UTC-12 (the last place it ends),
    /verify says genuine, and by the end of the group's day two days after it, expired."""
    clinic, _ = sent
    checker = Checker(clinic)
    zone = ZoneInfo(clinic.settings.timezone)
    for _, message, _ in clinic.sink.parsed():
        text = message.get_body(preferencelist=("plain",)).get_content()
        code = CODE.findall(text)[0]
        last_day = _named_day(text).replace(tzinfo=zone)
        last_anywhere = last_day.replace(tzinfo=timezone(timedelta(hours=-12)))
        end_us = to_micros(last_anywhere + timedelta(days=1))
        inside = checker.at(end_us - 1).get("/verify", params={"code": code}, headers=ACCEPT)
        assert inside.json()["genuine"] is True, last_day
        after_us = to_micros(last_day.replace(tzinfo=zone) + timedelta(days=3))
        past = checker.at(after_us).get("/verify", params={"code": code}, headers=ACCEPT)
        assert past.json().get("expired") is True, last_day


def _named_day(text: str) -> datetime:
    """The day until which an email (English or Chinese) says its code can be checked."""
    english = re.search(r"can be checked until (\d+ \w+ \d{4})\.", text)
    if english is not None:
        return datetime.strptime(english[1], "%d %B %Y")
    chinese = re.search(r"核實碼可核實至\s*(\d{4})年(\d+)月(\d+)日", text)
    assert chinese is not None, "the email names no day"
    return datetime(int(chinese[1]), int(chinese[2]), int(chinese[3]))
