"""Email notices: a MIME message with text and HTML parts, DKIM-signed, sent over SMTP.

The message carries no link, no attachment and no ``List-Unsubscribe`` (a legal
notice is not a mailing): its ``Message-ID`` is derived from the notice's key, so
the relay's journal and any bounce name the notice without naming the patient. No
header holds anything taken from a patient's record except the validated address.
"""

from __future__ import annotations

import binascii
import smtplib
import ssl
import threading
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from carevault.keys.files import write_private
from carevault.notify.channels import Bounced, Outgoing, TryLater, Unreachable

SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"content-language")  # fmt: skip


def dkim_key(path: Path, *, create: bool) -> bytes:
    """The PEM private key that signs notices; a new RSA-2048 key if asked and missing."""
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no DKIM key at {path}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private(
            path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    return path.read_bytes()


def dns_record(private_pem: bytes) -> str:
    """The TXT record to publish at ``<selector>._domainkey.<domain>``."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def message_id(notice_key: str, domain: str) -> str:
    return f"<notice.{notice_key}@{domain}>"


#: Lines of base64 body text (RFC 2045 allows at most 76 characters).
_BASE64_LINE = 76


@cache
def _fixed_headers(sender: str, sender_name: str, subject: str, language: str) -> bytes:
    """The headers every notice of one language shares, as the ``email`` package folds
    and encodes them (RFC 2047 for the group's name and the Chinese subject): built once
    per language, not once per message."""
    message = EmailMessage(policy=SMTP)
    local, _, host = sender.partition("@")
    message["From"] = Address(display_name=sender_name, username=local, domain=host)
    message["Subject"] = subject
    message["Content-Language"] = "zh-Hant-HK" if language == "zh" else "en"
    message["Auto-Submitted"] = "auto-generated"
    message["MIME-Version"] = "1.0"
    return message.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"


def _base64_part(content_type: bytes, text: str) -> bytes:
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    lines = [encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE)]
    return (
        b"Content-Type: " + content_type + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
    )


def build_message(
    outgoing: Outgoing, sender: str, sender_name: str, when: datetime | None = None
) -> bytes:
    """The notice as MIME bytes (CRLF): multipart/alternative, plain text then HTML, both
    base64. Composed directly rather than through ``EmailMessage`` (which spent some
    2 ms a message re-parsing and re-folding the same headers): the per-language
    headers come from the ``email`` package once (``_fixed_headers``); what varies per
    message is the validated address, the date, the Message-ID and the boundary, all
    built from characters that cannot break a header."""
    recipient = outgoing.recipient
    if recipient.email is None:
        raise Bounced("no email address")
    address = recipient.email
    if any(char in address for char in '\r\n <>,;:"()') or address.count("@") != 1:
        # contacts.valid_email lets none of these through; refuse rather than trust it.
        raise Bounced("not a plain email address")
    domain = sender.rsplit("@", 1)[1]
    # Hex key: no base64 line can contain "=_" or ".", so no body line is a boundary.
    boundary = b"=_notice." + outgoing.notice_key.encode("ascii")
    head = _fixed_headers(sender, sender_name, outgoing.rendered.subject, recipient.language)
    varying = (
        f"To: {address}\r\n"
        f"Date: {format_datetime(when or datetime.now(UTC))}\r\n"
        f"Message-ID: {message_id(outgoing.notice_key, domain)}\r\n"
    ).encode("ascii")
    return b"".join(
        [
            head,
            varying,
            b'Content-Type: multipart/alternative;\r\n boundary="' + boundary + b'"\r\n\r\n',
            b"--" + boundary + b"\r\n",
            _base64_part(b"text/plain", outgoing.rendered.text),
            b"--" + boundary + b"\r\n",
            _base64_part(b"text/html", outgoing.rendered.html),
            b"--" + boundary + b"--\r\n",
        ]
    )


#: dkimpy's own RSA signing step (pure-Python modular arithmetic: some 50 ms a message).
_PURE_RSA_SIGN = dkim.RSASSA_PKCS1_v1_5_sign
_RSA_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def _rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """RSASSA-PKCS1-v1_5 (RFC 8017) of dkimpy's computed digest, by ``cryptography``.

    PKCS#1 v1.5 signatures are deterministic, so this returns the very bytes dkimpy's
    own step would (a unit test compares them); dkimpy still canonicalises, hashes and
    builds the header. Anything unexpected goes to dkimpy's step unchanged."""
    algorithm = _HASHES.get(getattr(digest, "name", ""))
    try:
        key = _RSA_KEYS.get(private_key["modulus"])
        if key is None:
            public = rsa.RSAPublicNumbers(private_key["publicExponent"], private_key["modulus"])
            key = rsa.RSAPrivateNumbers(
                p=private_key["prime1"],
                q=private_key["prime2"],
                d=private_key["privateExponent"],
                dmp1=private_key["exponent1"],
                dmq1=private_key["exponent2"],
                iqmp=private_key["coefficient"],
                public_numbers=public,
            ).private_key()
            _RSA_KEYS[private_key["modulus"]] = key
    except (KeyError, ValueError):
        key = None
    if key is None or algorithm is None:
        signed: bytes = _PURE_RSA_SIGN(digest, private_key)
        return signed
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm()))


dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign

_PARSE_PEM = dkim.parse_pem_private_key


@lru_cache(maxsize=8)
def _parsed_pem(private_pem: bytes) -> Any:
    """dkimpy's parse of the signing key (pure-Python ASN.1, a sixth of its signing
    time), once per key rather than once per message; dkimpy only reads the result."""
    return _PARSE_PEM(private_pem)


dkim.parse_pem_private_key = _parsed_pem


class DkimSigner:
    def __init__(self, private_pem: bytes, domain: str, selector: str) -> None:
        self.private_pem = private_pem
        self.domain = domain.encode()
        self.selector = selector.encode()

    def sign(self, data: bytes) -> bytes:
        header: bytes = dkim.sign(
            data,
            self.selector,
            self.domain,
            self.private_pem,
            include_headers=list(SIGNED_HEADERS),
        )
        return header + data


class SmtpChannel:
    """Email over reused SMTP connections, STARTTLS whenever the server offers it
    (required when ``starttls`` is "required").

    One connection per sending thread (the job's lanes send at once, each waiting for
    its own "250"); ``close`` ends them all."""

    name = "email"
    #: Safe to call ``send`` from several threads at once.
    concurrent = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        sender_name: str,
        signer: DkimSigner,
        timeout: float = 30.0,
        starttls: str = "auto",
        ca_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.sender_name = sender_name
        self.signer = signer
        self.timeout = timeout
        self.starttls = starttls
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    def _connect(self) -> smtplib.SMTP:
        current: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if current is not None:
            return current
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.ehlo()
            if self.starttls != "off" and smtp.has_extn("starttls"):
                context = ssl.create_default_context(
                    cafile=str(self.ca_file) if self.ca_file else None
                )
                smtp.starttls(context=context)
                smtp.ehlo()
            elif self.starttls == "required":
                smtp.close()
                raise Unreachable("the SMTP server does not offer STARTTLS")
            if self.username and self.password:
                smtp.login(self.username, self.password)
        except (OSError, smtplib.SMTPException) as error:
            raise Unreachable(f"SMTP {self.host}:{self.port}: {type(error).__name__}") from None
        self._local.smtp = smtp
        with self._lock:
            self._open.add(smtp)
        return smtp

    def render(self, outgoing: Outgoing) -> bytes:
        return self.signer.sign(build_message(outgoing, self.sender, self.sender_name))

    def send(self, outgoing: Outgoing) -> None:
        recipient = outgoing.recipient.email
        if recipient is None:
            raise Bounced("no email address")
        data = self.render(outgoing)
        smtp = self._connect()
        try:
            smtp.sendmail(self.sender, [recipient], data)
        except smtplib.SMTPRecipientsRefused as error:
            code, _ = next(iter(error.recipients.values()))
            self._refused(code, "recipient refused")
        except smtplib.SMTPDataError as error:
            self._refused(error.smtp_code, "message refused")
        except smtplib.SMTPSenderRefused as error:
            self._drop()
            raise Unreachable(f"sender refused ({error.smtp_code})") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as error:
            self._drop()
            raise Unreachable(f"SMTP: {type(error).__name__}") from None

    @staticmethod
    def _refused(code: int, what: str) -> None:
        if 500 <= code < 600:
            raise Bounced(f"{what}: {code}")
        raise TryLater(f"{what}: {code}")

    def _drop(self) -> None:
        """End this thread's connection (after a failure: the next send reconnects)."""
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is not None:
            with self._lock:
                self._open.discard(smtp)
            _quit(smtp)

    def close(self) -> None:
        with self._lock:
            connections, self._open = list(self._open), set()
        self._local = threading.local()
        for smtp in connections:
            _quit(smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
