"""A notice: the patient's own categories in their language, a code, no link, no HKID,
no request; hostile names stay text."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from carevault.domain.categories import DataCategory
from carevault.notify.contacts import Recipient
from carevault.notify.notice import Sender, render
from carevault.notify.scope import ContainmentAction, Exposure, Incident

SENDER = Sender("Harbour Clinics", "海港診所", "clinics.example.hk", "+852 2000 0000",
                "Ms Ada Lau, Data Protection Officer", ZoneInfo("Asia/Hong_Kong"),
                code_days=180)  # fmt: skip
INCIDENT = Incident("INC-1", "t", "open", datetime(2026, 12, 1, tzinfo=UTC),
                    datetime(2026, 11, 20, tzinfo=UTC), None, {})  # fmt: skip
CODE = "K7MX-3HPA-RT9W"
#: When the notices here are rendered (and sent).
SENT = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def person(language: str = "en", name: str = "Alice Smith", **extra: object) -> Recipient:
    values: dict[str, object] = {
        "patient_id": "a", "language": language, "patient_name": name, "addressee": name,
        "guardian": False, "minor": False, "deceased": False, "email": "a@example.com",
        "mobile": None, "address": (), "region": None,
    }  # fmt: skip
    values.update(extra)
    return Recipient(**values)  # type: ignore[arg-type]


def exposure(*categories: DataCategory, tier: str = "confirmed") -> Exposure:
    return Exposure("a", tier, tuple(categories), (), None, None, ())


@pytest.mark.parametrize("language", ["en", "zh"])
def test_a_notice_has_no_link_no_request_and_says_how_to_check_it(language: str) -> None:
    notice = render(SENDER, INCIDENT, exposure(DataCategory.IDENTITY,
                    DataCategory.GOVERNMENT_ID), person(language), CODE, at=SENT)  # fmt: skip
    for body in (notice.text, notice.html, notice.sms, notice.letter):
        assert CODE in body and "/verify" in body and "clinics.example.hk" in body
        assert not re.search(r"https?://|www\.|<a\s|href=", body, re.I)
        assert "+852 2000 0000" in body
    never = "never ask" if language == "en" else "絕不會"
    assert never in notice.text and never in notice.sms


def test_only_the_patients_own_categories_are_named() -> None:
    mine = render(SENDER, INCIDENT, exposure(DataCategory.CONTACT), person(), CODE, at=SENT).text
    assert "contact details" in mine
    assert "medical records" not in mine and "identity document" not in mine
    assert "bank" not in mine
    money = render(SENDER, INCIDENT, exposure(DataCategory.FINANCIAL), person(), CODE, at=SENT).text
    assert "bank and credit card statements" in money


def test_chinese_notice_is_in_chinese() -> None:
    notice = render(
        SENDER, INCIDENT, exposure(DataCategory.CLINICAL), person("zh", "陳大文"), CODE, at=SENT
    )
    assert notice.text.startswith("陳大文：") and "醫療紀錄" in notice.text
    assert "海港診所" in notice.text and "2026年11月20日" in notice.text
    assert notice.subject.startswith("重要通知")


def test_a_guardian_reads_about_the_child_not_about_themselves() -> None:
    notice = render(SENDER, INCIDENT, exposure(DataCategory.VISIT),
                    person(name="Kit Wong", addressee="Mei Ling Wong", guardian=True, minor=True),
                    CODE, at=SENT)  # fmt: skip
    assert notice.text.startswith("Dear Mei Ling Wong,")
    assert "parent or guardian of Kit Wong" in notice.text
    assert "your appointments" not in notice.text and "Appointments and visits" in notice.text


def test_html_in_a_name_is_escaped_in_the_html_part() -> None:
    notice = render(SENDER, INCIDENT, exposure(DataCategory.IDENTITY),
                    person(name="<img src=x onerror=alert(1)>"), CODE, at=SENT)  # fmt: skip
    assert "<img" not in notice.html and "&lt;img" in notice.html


@pytest.mark.parametrize(
    "name", ["Alice visit evil.com", "Call 98765432 now", "refund@evil.example",
             "https://evil.example"],
)  # fmt: skip
def test_a_phishing_name_is_not_put_in_any_part_of_a_notice(name: str) -> None:
    english = render(
        SENDER, INCIDENT, exposure(DataCategory.IDENTITY), person(name=name), CODE, at=SENT
    )
    assert english.text.startswith("Dear patient,")
    assert "<p>Dear patient,</p>" in english.html
    chinese = render(
        SENDER, INCIDENT, exposure(DataCategory.IDENTITY), person("zh", name), CODE, at=SENT
    )
    assert chinese.text.startswith("病人：") and "<p>病人：</p>" in chinese.html
    for notice in (english, chinese):
        for body in (notice.text, notice.html, notice.sms, notice.letter):
            assert "evil" not in body and "98765432" not in body
    # A guardian's notice names the child: not such a "name" either.
    child = render(SENDER, INCIDENT, exposure(DataCategory.VISIT),
                   person(name=name, addressee="Mei Ling Wong", guardian=True, minor=True),
                   CODE, at=SENT)  # fmt: skip
    assert "parent or guardian of the patient" in child.text
    assert all("evil" not in body for body in (child.text, child.html, child.sms))


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Privacy Commissioner"), ("zh", "私隱專員公署"),
])  # fmt: skip
def test_the_pcpd_is_said_to_be_told_only_once_its_report_is_recorded_as_filed(
    language: str, words: str
) -> None:
    unfiled = render(
        SENDER, INCIDENT, exposure(DataCategory.IDENTITY), person(language), CODE, at=SENT
    )
    for body in (unfiled.text, unfiled.html, unfiled.letter):
        assert words not in body
    filed = replace(INCIDENT, filed_with=frozenset({"pcpd"}))
    told = render(SENDER, filed, exposure(DataCategory.IDENTITY), person(language), CODE, at=SENT)
    for body in (told.text, told.html, told.letter):
        assert words in body
    other = replace(INCIDENT, filed_with=frozenset({"gdpr"}))
    not_told = render(
        SENDER, other, exposure(DataCategory.IDENTITY), person(language), CODE, at=SENT
    )
    assert words not in not_told.text


@pytest.mark.parametrize(("language", "words"), [("en", "stopped"), ("zh", "停止了")])
def test_the_access_is_said_to_be_stopped_only_when_containment_is_recorded(
    language: str, words: str
) -> None:
    uncontained = render(SENDER, INCIDENT, exposure(DataCategory.IDENTITY), person(language),
                         CODE, at=SENT)  # fmt: skip
    for body in (uncontained.text, uncontained.html, uncontained.letter):
        assert words not in body
    suspended = ContainmentAction("account-suspended", "mallory", "phished",
                                  datetime(2026, 12, 1, 9, tzinfo=UTC), None)  # fmt: skip
    contained = replace(INCIDENT, containment=(suspended,))
    notice = render(
        SENDER, contained, exposure(DataCategory.IDENTITY), person(language), CODE, at=SENT
    )
    for body in (notice.text, notice.html, notice.letter):
        assert words in body


@pytest.mark.parametrize(("language", "day"), [("en", "29 May 2027"), ("zh", "2027年5月29日")])
def test_a_notice_says_until_which_day_its_code_can_be_checked(language: str, day: str) -> None:
    """Sent at 17:30 in Hong Kong on 2 December 2026, a code verifies for 180 days: until
    17:30 on 31 May 2027 in Hong Kong, when it is still 30 May west of UTC+8; so the last
    day whole everywhere is 29 May (an SMS has no room for it)."""
    notice = render(SENDER, INCIDENT, exposure(DataCategory.IDENTITY), person(language), CODE,
                    at=SENT)  # fmt: skip
    for body in (notice.text, notice.html, notice.letter):
        assert day in body
    assert day not in notice.sms


@pytest.mark.parametrize("local_time", ["00:00", "00:01", "00:30", "12:00", "23:59"])
@pytest.mark.parametrize("days", [1, 2, 180])
def test_every_moment_of_the_day_named_is_inside_the_codes_days_anywhere(
    local_time: str, days: int
) -> None:
    """The day named is whole inside the code's days (``verify.py``: sent plus the days)
    in every zone a patient may read it in, UTC-12 to UTC+14 (review of stop 65: sent at
    00:30 in Hong Kong, "until 5 June" lapsed at 17:00 on 5 June in London), whatever the
    hour it was sent; and it is the latest such day in Hong Kong but one."""
    hong_kong = ZoneInfo("Asia/Hong_Kong")
    hour, minute = map(int, local_time.split(":"))
    sent = datetime(2026, 12, 2, hour, minute, tzinfo=hong_kong)
    sender = replace(SENDER, code_days=days)
    text = render(sender, INCIDENT, exposure(DataCategory.IDENTITY), person(), CODE, at=sent).text
    named = re.search(r"can be checked until (\d+ \w+ \d{4})\.", text)
    assert named is not None
    last = datetime.strptime(named[1], "%d %B %Y")
    lapses = sent + timedelta(days=days)
    for offset in range(-12, 15):
        zone = timezone(timedelta(hours=offset))
        assert last.replace(tzinfo=zone) + timedelta(days=1) <= lapses, offset
    in_hong_kong = last.replace(tzinfo=hong_kong) + timedelta(days=1)
    assert lapses < in_hong_kong + timedelta(days=2)
