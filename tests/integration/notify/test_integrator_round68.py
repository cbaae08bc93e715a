"""Integrator round 68: the notices as a patient's mail client receives them from a real
SMTP server, and the regulators' reports as the running system makes them, on SQLite
and PostgreSQL. Each message is parsed with the ``email`` package (policy=default) as a
mail client would; the reports are made by ``make_report`` as ``carevault report`` does."""

from __future__ import annotations

import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

import pytest

from carevault.notify.reporting import make_report
from carevault.notify.scope import parse_scope
from carevault.notify.service import send_job
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres

CODE = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b")


class _Page(HTMLParser):
    """What a mail client renders of an HTML part: its words, its tags, their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.attributes: dict[str, str | None] = {}
        self.tags: set[str] = set()
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(attrs)
        self._hidden += tag in ("title", "style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("title", "style", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.words.extend(re.findall(r"\w+", data.lower()))


def _parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


def test_every_message_reads_right_in_a_mail_client(clinic: Clinic) -> None:
    """What held in round 68, kept: valid MIME (multipart/alternative, text then HTML,
    UTF-8, base64), a dated and identified message from the group's own domain, only the
    address in To:, a Chinese Subject in RFC 2047, no link, no image, no address but the
    site typed by hand, the same words and code in both parts, ``lang`` on the HTML; and
    what it found: the Chinese notice's contact in English, a one-day window as a range."""
    started = datetime.now().astimezone()
    scope = parse_scope(clinic.scope)
    send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    received = clinic.sink.parsed()
    assert len(received) >= 4
    languages = set()
    for to, message, raw in received:
        assert isinstance(message, EmailMessage)
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        for part in parts:
            assert part.get_content_charset() == "utf-8"
            assert part["Content-Transfer-Encoding"] == "base64"
        sent = parsedate_to_datetime(str(message["Date"]))
        assert sent.tzinfo is not None and abs((sent - started).total_seconds()) < 300
        assert re.fullmatch(r"<notice\.[0-9a-f]{32}@clinics\.example\.hk>", message["Message-ID"])
        assert message["From"].addresses[0].addr_spec == "notices@clinics.example.hk"
        assert message["Reply-To"] is None  # a reply goes back to the From address
        assert str(message["To"]) == to[0]  # the address alone: no name from the record
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["List-Unsubscribe"] is None
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()
        plain, html = _parts(message)
        for text in (plain, html):
            assert not re.search(r"https?://|www\.|mailto:", text)
            assert "clinics.example.hk" in text and "/verify" in text
        page = _Page()
        page.feed(html)
        assert not page.tags & {"a", "img", "iframe", "form", "script", "link", "object"}
        assert page.attributes.get("lang") in ("en", "zh-Hant-HK")
        assert len(CODE.findall(plain)) == 1 and CODE.findall(plain) == CODE.findall(html)
        # The text part says what the HTML says, word for word (headings aside, in capitals).
        assert set(re.findall(r"\w+", plain.lower())) == set(page.words)
        language = message["Content-Language"]
        languages.add(language)
        if language == "zh-Hant-HK":
            assert b"Subject: =?utf-8?" in head
            assert str(message["Subject"]).startswith("重要通知")
            # Round 68: 「The Data Protection Officer，海港診所」 in a Chinese notice.
            assert "保障資料主任" in plain and "保障資料主任" in html
            assert "Data Protection Officer" not in plain + html
            assert not _one_day(plain, "zh")
        else:
            assert "The Data Protection Officer" in plain
            assert not _one_day(plain, "en")
    assert languages == {"en", "zh-Hant-HK"}


def _one_day(text: str, language: str) -> bool:
    """Whether the notice tells one day as a range from that day to itself."""
    if language == "zh":
        found = re.search(r"在(\d+年\d+月\d+日)至(\d+年\d+月\d+日)期間", text)
    else:
        found = re.search(r"Between (\d+ \w+ \d+) and (\d+ \w+ \d+)", text)
    return found is not None and found.group(1) == found.group(2)


def test_the_reports_count_records_and_people_and_the_pcpd_reads_hong_kong_time(
    clinic: Clinic,
) -> None:
    """``carevault report``: GDPR Art. 33(3)(a) and the PCPD are given records beside
    people; the PCPD's times are Hong Kong's; media notice over 500 residents; the annual
    HHS log's date; substitute notice owed for anyone out of reach."""
    scope = parse_scope(clinic.scope)
    send_job(clinic.services).run(scope, ("confirmed", "decrypted"))
    records = scope.patient_count()
    gdpr = make_report(clinic.services, scope, "gdpr")
    assert gdpr["article_33"]["approximate_number_of_personal_data_records"] == records
    assert gdpr["article_33"]["approximate_number_of_data_subjects"] == records  # one HKID each
    pcpd = make_report(clinic.services, scope, "pcpd")
    assert pcpd["parts"]["D. Personal data involved"]["number_of_records"] == records
    for instant in (pcpd["deadline"], pcpd["prepared_at"],
                    pcpd["parts"]["C. Particulars of the breach"]["discovered"]):  # fmt: skip
        assert instant.endswith("+08:00"), instant
    assert datetime.fromisoformat(pcpd["parts"]["C. Particulars of the breach"]["discovered"]) == (
        scope.incident.declared_at
    )
    hipaa = make_report(clinic.services, scope, "hipaa")
    portal = hipaa["hhs_portal"]
    assert re.fullmatch(r"\d{4}-03-01|\d{4}-02-29", portal["report_to_hhs_due"])
    unreachable = portal["substitute_notice"]["people_out_of_reach"]
    assert portal["substitute_notice_required"] is (unreachable > 0)
    assert hipaa["media_notice"]["required_in"] == []
    assert gdpr["article_33"]["nature_of_breach"]["discovered"].endswith("+00:00")
