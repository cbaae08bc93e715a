"""The email of a notice, composed without ``EmailMessage``: it parses as the message
the ``email`` package would build (text then HTML, both decoding to the notice), its
headers hold nothing a record could break, and its DKIM signature verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest

from carevault.domain.categories import DataCategory
from carevault.notify.channels import Bounced, Outgoing
from carevault.notify.mail import DkimSigner, build_message, dkim_key, dns_record
from carevault.notify.notice import render
from tests.unit.notify.test_notice import CODE, INCIDENT, SENDER, SENT, exposure, person

KEY = "0123456789abcdef0123456789abcdef"
WHEN = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _outgoing(language: str, **extra: object) -> Outgoing:
    recipient = person(language, "陳大文" if language == "zh" else "Alice Smith", **extra)
    rendered = render(SENDER, INCIDENT, exposure(DataCategory.CLINICAL), recipient, CODE, at=SENT)
    return Outgoing(KEY, recipient, rendered, INCIDENT.incident_id)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_the_message_parses_into_the_notices_two_parts(language: str) -> None:
    outgoing = _outgoing(language)
    data = build_message(outgoing, "notices@clinics.example.hk", SENDER.name(language), WHEN)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "a@example.com"
    # Folded by the email package as before (its unfolding may double a space).
    assert parsed["Subject"].split() == outgoing.rendered.subject.split()
    assert parsed["From"].addresses[0].display_name == SENDER.name(language)
    assert parsed["Message-ID"] == f"<notice.{KEY}@clinics.example.hk>"
    assert parsed["Content-Language"] == ("zh-Hant-HK" if language == "zh" else "en")
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content() == outgoing.rendered.text
    assert html.get_content() == outgoing.rendered.html
    assert "List-Unsubscribe" not in parsed and not parsed.is_attachment()


@pytest.mark.parametrize(
    "address", ["a@example.com\r\nBcc: x@evil.example", "a b@example.com", "<a@example.com>",
                "a@b@example.com", "a,b@example.com"],
)  # fmt: skip
def test_an_address_that_could_break_a_header_is_refused(address: str) -> None:
    with pytest.raises(Bounced):
        build_message(_outgoing("en", email=address), "n@clinics.example.hk", "Clinics", WHEN)


def test_the_composed_message_verifies_with_dkimpy(tmp_path: Path) -> None:
    pem = dkim_key(tmp_path / "dkim.pem", create=True)
    data = build_message(_outgoing("zh"), "notices@clinics.example.hk", "海港診所", WHEN)
    signed = DkimSigner(pem, "clinics.example.hk", "notice").sign(data)
    record = dns_record(pem).encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    assert not dkim.verify(signed.replace(b"Message-ID: <notice.0", b"Message-ID: <notice.1"),
                           dnsfunc=lambda name, timeout=5: record)  # fmt: skip
