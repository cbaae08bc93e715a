"""Adversary round 59 (officers and public doors): /verify's ``to=``, as a phisher sends
it in a link and as patients type it, and the bounce mailbox, as anyone may mail it; on
SQLite and PostgreSQL."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.notify import store as states
from carevault.notify.job import notice_key
from carevault.notify.limits import SharedBuckets
from carevault.notify.scope import parse_scope
from carevault.notify.service import code_keys, send_job
from carevault.notify.store import NoticeStore
from tests.integration.notify.conftest import Clinic
from tests.integration.notify.test_cli import officer_and_scope
from tests.integration.notify.test_faults import _dsn
from tests.integration.notify.test_verify import _checks, _client, sent
from tests.support.auth import fresh_code
from tests.support.server import invoke_cli

__all__ = ["sent"]  # the fixture, shared with test_verify
pytestmark = pytest.mark.postgres
ACCEPT = {"accept": "application/json"}


def _checker(clinic: Clinic, prefix: str) -> tuple[Callable[[], TestClient], Callable[..., str]]:
    """A fresh client address for each check (the page answers 10 a minute from one),
    and the code of a patient's message by a channel."""
    keys = code_keys(clinic.settings)
    incident = clinic.scope["incident"]["id"]
    addresses = (f"{prefix}.{n}" for n in range(100, 250))

    def client() -> TestClient:
        return _client(clinic, next(addresses))

    def code(patient: str, channel: str) -> str:
        return keys.code_for(notice_key(incident, clinic.ids[patient]), channel)

    return client, code


def test_a_phishers_link_with_their_own_code_and_address_is_not_sent_to_you(
    sent: tuple[Clinic, list[str]],
) -> None:
    """Alice received a genuine notice. She phishes Mr Chan with a link to the genuine
    page, ``/verify?code=<her code>&to=alice@example.com``: it answered "Genuine. This
    code belongs to the notice … sent to this address", the address filled in the form
    where few would read it, the very answer ``to=`` was added to deny her. An address
    weighs only when typed into the page itself (a browser's ``Sec-Fetch-Site``); from a
    link the page answers as for a code alone and asks for the address; typed on the
    page, the answer names the address it speaks of."""
    clinic, _ = sent
    client, code = _checker(clinic, "198.51.100")
    phishing = {"code": code("en_email", "email"), "to": "alice@example.com"}
    for came_from in ("cross-site", "none", "same-site"):
        page = client().get("/verify", params=phishing, headers={"sec-fetch-site": came_from})
        assert page.status_code == 200
        assert "sent to this address" not in page.text
        assert "check again with the email address" in page.text
        assert "alice@example.com" not in page.text  # not filled in, not named
        answer = client().get(
            "/verify", params=phishing, headers={**ACCEPT, "sec-fetch-site": came_from}
        )
        assert answer.json()["genuine"] is True and answer.json()["sent_to_address"] is None

    typed = client().get("/verify", params=phishing, headers={"sec-fetch-site": "same-origin"})
    assert "sent to this address (alice@example.com)" in typed.text
    zh = client().get(
        "/verify", params={**phishing, "lang": "zh"}, headers={"sec-fetch-site": "same-origin"}
    )
    assert "（alice@example.com）" in zh.text
    # A script (no Fetch Metadata) typed what it sent.
    scripted = client().get("/verify", params=phishing, headers=ACCEPT)
    assert scripted.json()["sent_to_address"] is True

    checks = [e for e in _checks(clinic) if (e.source_address or "").startswith("198.51.100")]
    from_links = [e for e in checks if e.detail.get("address_from_link")]
    assert len(from_links) == 6
    assert all("address_given" not in e.detail for e in from_links)
    ledger = b"".join(e.canonical() for e in checks).decode()
    assert "alice@" not in ledger


def test_an_address_typed_as_people_type_it_is_where_the_notice_went(
    sent: tuple[Clinic, list[str]],
) -> None:
    """Mr Patel's SMS went to +852 9123 4567 and Alice's email to alice@example.com.
    Typed with a Chinese IME in full-width mode, with the country code but no plus,
    from abroad (``00852``), as ``tel:``, or copied from the "To" line with a display
    name, ``mailto:`` or an invisible character, the page answered "Not sent to you:
    … not from us", and the person it was sent to disbelieved a genuine notice. Read as
    people type it, each is where the notice went; what is no address at all is no
    evidence of another recipient (the page asks again), while an address of the other
    kind, or another person's, is still "not sent to you"."""
    clinic, _ = sent
    client, code = _checker(clinic, "203.0.113")

    def sent_to(patient: str, channel: str, to: str) -> Any:
        answer = client().get(
            "/verify", params={"code": code(patient, channel), "to": to}, headers=ACCEPT
        )
        assert answer.status_code == 200 and answer.json()["genuine"] is True
        return answer.json()["sent_to_address"]

    for typed in (
        "９１２３ ４５６７",
        "＋８５２ ９１２３－４５６７",
        "852 9123 4567",
        "00852-9123-4567",
        "tel:+852-9123-4567",
        "\u202a+852 9123 4567\u202c",
    ):
        assert sent_to("sms_only", "sms", typed) is True, typed
    for typed in (
        "Alice Smith <alice@example.com>",
        "mailto:Alice@Example.com",
        "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "alice@exam\u200bple.com",
    ):
        assert sent_to("en_email", "email", typed) is True, typed

    assert sent_to("en_email", "email", "not an address") is None
    assert sent_to("sms_only", "sms", "九一二三") is None
    assert sent_to("en_email", "email", "Chan <chan.taiman@example.net>") is False
    assert sent_to("sms_only", "sms", "852 6123 4567") is False
    assert sent_to("bounces", "sms", "gone@example.com") is False

    page = client().get(
        "/verify", params={"code": code("en_email", "email"), "to": "not an address"}
    )
    assert "Not sent to you" not in page.text
    assert "check again with the email address" in page.text


def test_a_code_seen_without_its_to_line_does_not_find_its_recipient(
    sent: tuple[Clinic, list[str]],
) -> None:
    """Mr Patel posts a photo of his SMS notice, his number cut off, the code legible.
    Anyone could try Hong Kong's mobile numbers against it as ``to=`` from many
    addresses, at the page's global rate (40 million numbers in about three weeks), until
    one answered "sent to you": his number. Five numbers it was not sent to may be tried
    on a code a day; then no address gets a verdict on it, not even the right one (else
    the answers would still tell the numbers apart). His own number costs nothing."""
    clinic, _ = sent
    client, code = _checker(clinic, "192.0.2")
    patel = code("sms_only", "sms")

    def sent_to(to: str) -> Any:
        answer = client().get("/verify", params={"code": patel, "to": to}, headers=ACCEPT)
        assert answer.status_code == 200 and answer.json()["genuine"] is True
        return answer.json()["sent_to_address"]

    for _ in range(3):
        assert sent_to("9123 4567") is True
    for guess in range(5):
        assert sent_to(f"5000 000{guess}") is False
    assert sent_to("5000 0009") is None
    # The sweep that forgets refilled address buckets (every 500 checks, which the
    # guesser's own checks bring on) ten minutes later forgets no code's spent guesses.
    later = clinic.services.now_us() + 600_000_000
    page_limits = client().app.state.verify_page.limits  # type: ignore[attr-defined]
    SharedBuckets(
        clinic.services.engine,
        lambda: later,
        per_address=page_limits.per_address,
        per_network=page_limits.per_network,
        everyone=page_limits.everyone,
    ).forget_full()
    assert sent_to("9123 4567") is None
    page = client().get("/verify", params={"code": patel, "to": "9123 4567"})
    assert "too many different addresses" in page.text
    assert "sent to this address" not in page.text and "Not sent to you" not in page.text
    # Another code is not held back by this one's guesses.
    assert (
        client()
        .get(
            "/verify",
            params={"code": code("en_email", "email"), "to": "alice@example.com"},
            headers=ACCEPT,
        )
        .json()["sent_to_address"]
        is True
    )
    limited = [e for e in _checks(clinic) if e.detail.get("address_limited")]
    assert len(limited) == 3


def test_a_forged_dsn_does_not_mark_another_persons_address_bounced(
    clinic: Clinic, tmp_path: Path
) -> None:
    """Alice received her notice; its Message-ID (``<notice.KEY@…>``) is in her copy.
    She mails the bounce address, printed in every notice's Return-Path, a "DSN" of it
    whose failed recipient is Mr Chan's address (or one naming a notice no one sent):
    the next run marked chan.taiman@example.net bounced, and every later notice to it
    (a wider scope, the next incident) skipped email for SMS, a letter, or none.
    Only the address a notice of ours went to bounces; Alice's notice stays sent."""
    scope = parse_scope(clinic.scope)
    send_job(clinic.services).run(scope, ("confirmed",))
    incident = scope.incident.incident_id
    alice = notice_key(incident, clinic.ids["en_email"])
    box = mailbox.Maildir(str(tmp_path / "dsn"), create=True)
    box.add(_dsn("chan.taiman@example.net", f"<notice.{alice}@clinics.example.hk>"))
    box.add(_dsn("lee@example.org", f"<notice.{'ab' * 16}@clinics.example.hk>"))
    job = send_job(clinic.services)
    job.dsn = tmp_path / "dsn"
    job.run(scope, ("confirmed",))

    keys = code_keys(clinic.settings)
    targets = [
        keys.address_digest("email", a) for a in ("chan.taiman@example.net", "lee@example.org")
    ]
    store = NoticeStore(clinic.services.engine)
    assert store.bounced(targets) == set()
    row = store.rows(incident)[alice]
    assert (row.state, row.channel) == (states.SENT, "email")
    assert list(mailbox.Maildir(str(tmp_path / "dsn")).keys()) == []


def test_a_notice_in_full_is_shown_only_to_an_officer_and_recorded(
    clinic: Clinic, tmp_path: Path
) -> None:
    """Anyone with a shell on the host ran ``carevault notify preview INC --patient ID``
    and read that person's notice in full: their Chinese name, email address, what of
    theirs was exposed, and a code that verifies once it is sent; the reads were the
    notification service's in the ledger, so no one could say who had looked. A notice
    in full now takes a privacy officer and a fresh code, recorded as
    ``notify:preview:shown`` naming the officer and the records it covers before
    anything is read; without them nothing is printed (the refusal recorded too)."""
    officer, scope_file, env, incident = officer_and_scope(clinic, tmp_path)
    chan = clinic.ids["zh_email"]
    asked = ("notify", "preview", incident, "--scope", str(scope_file), "--patient", chan)

    anyone = invoke_cli(env, *asked)
    assert anyone.returncode == 2 and "--officer" in anyone.stderr
    assert "chan.taiman" not in anyone.stdout and "閣下" not in anyone.stdout
    wrong = invoke_cli(env, *asked, "--officer", "ada.lau", "--totp", "000000")
    assert wrong.returncode == 1 and "chan.taiman" not in wrong.stdout
    shown = invoke_cli(env, *asked, "--officer", "ada.lau", "--totp", fresh_code(officer))
    assert shown.returncode == 0, shown.stderr
    assert "閣下" in shown.stdout

    entries = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    previews = [e for e in entries if e.tag is Tag.NOTIFY_PREVIEW_SHOWN]
    assert [(e.principal, e.outcome) for e in previews] == [
        ("staff:ada.lau", Outcome.DENIED),
        ("staff:ada.lau", Outcome.SUCCESS),
    ]
    assert previews[-1].resource_id == chan and chan in previews[-1].detail["covers"]
    # The listing alone (counts, no one's details) stays open to the operator.
    listing = invoke_cli(env, "notify", "preview", incident, "--scope", str(scope_file))
    assert listing.returncode == 0 and "people to notify" in listing.stdout
