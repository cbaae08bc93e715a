"""DKIM signatures: dkimpy canonicalises and builds the header; its RSA step is done by
``cryptography``, which gives the very same bytes (PKCS#1 v1.5 is deterministic)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import dkim
from dkim.crypto import parse_pem_private_key

from carevault.notify import mail
from carevault.notify.mail import DkimSigner, dkim_key, dns_record

MESSAGE = (
    b"From: Clinics <notices@clinics.example.hk>\r\nTo: a@example.com\r\n"
    b"Subject: =?utf-8?q?=E9=87=8D=E8=A6=81?=\r\nDate: Tue, 01 Dec 2026 08:00:00 +0000\r\n"
    b"Message-ID: <notice.0123@clinics.example.hk>\r\n\r\nHello\r\n"
)


def test_the_fast_rsa_step_gives_dkimpys_own_bytes(tmp_path: Path) -> None:
    pem = dkim_key(tmp_path / "dkim.pem", create=True)
    parsed = parse_pem_private_key(pem)
    for text in (b"one", b"two", MESSAGE):
        digest = dkim.HashThrough(hashlib.sha256())
        digest.update(text)
        again = dkim.HashThrough(hashlib.sha256())
        again.update(text)
        assert bytes(mail._rsa_sign(digest, parsed)) == bytes(mail._PURE_RSA_SIGN(again, parsed))


def test_a_signed_message_verifies_against_the_published_record(tmp_path: Path) -> None:
    pem = dkim_key(tmp_path / "dkim.pem", create=True)
    signed = DkimSigner(pem, "clinics.example.hk", "carevault").sign(MESSAGE)
    record = dns_record(pem).encode()
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)
    tampered = signed.replace(b"Hello", b"Hellp")
    assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: record)
