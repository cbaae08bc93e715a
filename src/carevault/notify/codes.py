"""Verification codes: what a patient types at /verify to learn that a notice is genuine.

A code is 12 characters from a 23-character alphabet without look-alikes (none of
0 O Q, 1 I L, 2 Z, 5 S, 8 B, G), case-insensitive, shown in three groups of four:
``K7MX-3HPA-RT9W``. The space is 23**12 ≈ 2.19e16; with 100,000 codes issued a guess
is right with probability 4.6e-12, and the page answers at most 20 guesses a
second from everyone together (10 a minute per address), 6.3e8 a year: the chance of
finding any code in a year is about 0.3 %, the expected wait about 350 years.

Codes are derived, not stored: ``HMAC(secret, channel, notice key)``, so a notice
re-rendered after a restart carries the same code; the database keeps only
``HMAC(secret, code)``, so a copy of it gives a phisher no genuine code. A code is bound
to the channel its message went by: the email, the text message and the letter of one
notice carry different codes, and only the code of the message that was accepted
verifies, saying by which channel and on which day. A code taken from one message
cannot vouch for a message sent another way (nor for one that was never delivered).
The secret lives in a key file outside the database (``<home>/keys/notice-codes.key``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from pathlib import Path

from carevault.keys.files import write_private

ALPHABET = "34679ACDEFHJKMNPRTUVWXY"
LENGTH = 12
GROUP = 4
SPACE = len(ALPHABET) ** LENGTH


class CodeKeys:
    """The one secret behind every code and every address digest of this deployment."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the notice-code secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> CodeKeys:
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no notice-code secret at {path}")
            write_private(path, secrets.token_bytes(32))
        return cls(path.read_bytes())

    def _mac(self, label: str, value: str) -> bytes:
        return hmac.new(self._secret, f"{label}:{value}".encode(), hashlib.sha256).digest()

    def code_for(self, notice_key: str, channel: str) -> str:
        """The code printed in ``notice_key``'s message by ``channel`` (the same every
        time; another channel's message has another)."""
        number = int.from_bytes(self._mac(f"code:{channel}", notice_key)[:16], "big") % SPACE
        chars = []
        for _ in range(LENGTH):
            number, index = divmod(number, len(ALPHABET))
            chars.append(ALPHABET[index])
        raw = "".join(chars)
        return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))

    def issued_digest(self, notice_key: str, channel: str) -> str:
        """The lookup digest of ``code_for(notice_key, channel)``: what the notice's row
        keeps while that channel's message is the one sent or to be sent."""
        return self._mac("lookup", self.code_for(notice_key, channel).replace("-", "")).hex()

    def digest(self, code: str) -> str | None:
        """The lookup digest of a typed code, or None if it cannot be a code at all."""
        normalised = normalise(code)
        if normalised is None:
            return None
        return self._mac("lookup", normalised).hex()

    def address_digest(self, channel: str, address: str) -> str:
        return self._mac(f"address:{channel}", address.strip().lower()).hex()


#: What people type between the groups of a code, after NFKC: spaces of every kind,
#: hyphens and dashes, the minus sign, underscores, full stops and middle dots
#: (a Chinese or Japanese IME's ・ and ·).
SEPARATORS = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212_.\u00b7\u30fb")


def normalise(code: str) -> str | None:
    """Upper case without separators; None unless 12 characters of the alphabet.

    NFKC first: a Traditional Chinese IME in full-width mode types ``ＫＭＸ７－３ＨＰＡ``
    (full-width letters, digits and hyphen, U+3000 for a space), which NFKC makes the
    ASCII the notice printed. Anything else left over (a slash, a letter outside the
    alphabet) means it is not a code."""
    if len(code) > 40:
        return None
    folded = unicodedata.normalize("NFKC", code).upper()
    text = "".join(char for char in folded if not char.isspace() and char not in SEPARATORS)
    if len(text) != LENGTH or any(char not in ALPHABET for char in text):
        return None
    return text
