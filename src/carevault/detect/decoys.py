"""Decoy contact details (honeytokens): email addresses and phone numbers that belong to
no one, planted in decoy records, whose later appearance anywhere says that data was
taken from CareVault and is being used.

A privacy officer generates them (``carevault alerts decoy-contact``): a plausible
address or Hong Kong mobile number drawn at random, shown once, and kept only as a keyed
blind token (``detect_flag`` kind ``decoy-contact``), so that someone holding the
database can neither read nor guess the decoys. The gate asks ``spotted`` about every
write it is given (contact points exactly, then the other strings of the resource:
notes, anything) and every search's values (normalised as the index normalises them,
so no spelling that finds the decoy escapes), and marks the audit entries that carried
one; the detectors raise a critical alert from that entry at once:

* ``decoy-contact``: a search for a decoy (someone holds taken data and looks it up);
  the response policy applies (by default the account is suspended).
* ``decoy-contact-data``: incoming data (a create, update or import) carried a decoy;
  raised only, since the person typing it in may have been handed it by a fraudster.
  Writes to a decoy patient's own record (planting the decoy) are not alerts.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Any

from carevault.detect.flags import Flags
from carevault.detect.model import DAY_US, Access, Finding, Severity
from carevault.fhir.normalise import email, phone

KIND = "decoy-contact"
EMAIL, PHONE = "email", "phone"
#: Entries of incoming data (the rest that carry a decoy are searches).
WRITES = frozenset(
    {"fhir:resource:create", "fhir:resource:update", "fhir:resource:delete", "fhir:bulk:imported"}
)
#: Detail key of an audit entry whose request carried a decoy (the kinds carried).
MARK = "decoy_contact"

#: A date written with separators is no phone number.
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")
#: What may stand between the digits of a phone number: ``+852 9123-4567``,
#: ``(852) 9123 4567``, ``9123.4567``.
_SEPARATOR_TEXT = " .()/\u00a0\u3000\t-"
_SEPARATORS = frozenset(_SEPARATOR_TEXT)
#: Telecom systems whose values are dialled (normalised as the phone index does).
_DIALLED = frozenset({"phone", "sms", "fax", "pager"})
#: The longest string taken whole as one search value or contact detail; longer ones
#: are only scanned.
_LONGEST_TERM = 320
#: What an email address is made of (and ``@``), and what ends a domain in it.
_ADDRESS_RUN = re.compile(r"[\w.%+@-]+")
_DOMAIN_END = re.compile(r"[%+_]")
#: A run of digits and separators, starting with a digit (one character class after
#: the first: it never backtracks).
_DIGIT_RUN = re.compile(r"\d[\d" + re.escape(_SEPARATOR_TEXT) + "]*")
#: No address has a longer local part or domain (RFC 5321).
_LONGEST_LOCAL, _LONGEST_DOMAIN = 64, 255
#: Distinct candidate terms checked per request at most (each costs a keyed hash): the
#: exact values (contact points, whole search values) come first, then what the scan of
#: free text finds, in order.
MAX_TERMS = 2_000
_GIVEN = ("ka.ming", "wai.man", "siu.ling", "mei.yee", "chi.keung", "hoi.yan", "tsz.ching",
          "wing.sze", "ho.yin", "ka.yan", "chun.kit", "yuen.ting")  # fmt: skip
_FAMILY = ("chan", "wong", "lee", "cheung", "lau", "ng", "ho", "leung", "lam", "tse", "yip",
           "kwok", "lo", "tam", "fung", "tsang")  # fmt: skip


def contact_terms(values: Iterable[object]) -> set[tuple[str, str]]:
    """Every (kind, normalised value) of an email address or phone number in ``values``
    and everything inside them (dicts, lists, strings), at most ``MAX_TERMS``.

    Exact values first, normalised as the blind index normalises them, so that every
    spelling a search would match is caught: a contact point's value (``telecom``), and
    each short string taken whole as a search value (its ``a,b`` alternatives, without
    a ``system|``), after NFKC (full-width forms) and without surrounding whitespace; an
    email address case-folded (``casefold``, not ``lower``: ``STRAẞE`` is ``strasse``,
    as in the index), a phone number as its digits, ``+852`` dropped. Then free text is
    scanned for addresses and numbers written inside it. Time is linear in the input,
    whatever its shape (no pattern here can backtrack), and the keyed hashes the caller
    works out are bounded by ``MAX_TERMS``."""
    found: dict[tuple[str, str], None] = {}
    texts: list[str] = []
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            _contact_point(value, found)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str):
            text = unicodedata.normalize("NFKC", value)
            if len(text) <= _LONGEST_TERM:
                for term in _whole(text):
                    found.setdefault(term)
            texts.append(text)
    for text in texts:
        if len(found) >= MAX_TERMS:
            break
        for term in _scan(text):
            found.setdefault(term)
            if len(found) >= MAX_TERMS:
                break
    return set(list(found)[:MAX_TERMS])


def _contact_point(value: dict[Any, Any], found: dict[tuple[str, str], None]) -> None:
    """A ContactPoint's value, normalised as the index normalises it."""
    system, detail = value.get("system"), value.get("value")
    if not isinstance(detail, str) or not isinstance(system, str):
        return
    text = unicodedata.normalize("NFKC", detail)
    if system == "email":
        found.setdefault((EMAIL, email(text)))
    elif system in _DIALLED:
        digits = phone(text)
        if 8 <= len(digits) <= 15:
            found.setdefault((PHONE, digits))


def _whole(text: str) -> Iterator[tuple[str, str]]:
    """``text`` taken whole as a search value: each alternative (``a,b``), without its
    system (``phone|...``), as an email address or a phone number."""
    for part in text.split(","):
        term = part.rpartition("|")[2].strip()
        if "@" in term and len(term.split()) == 1:
            yield EMAIL, email(term)
        elif term and all(ch.isdigit() or ch in _SEPARATORS or ch == "+" for ch in term):
            digits = _phone_digits(term)
            if digits is not None:
                yield PHONE, digits


def _phone_digits(run: str) -> str | None:
    """The normalised number of a run of digits and separators, or None."""
    if _DATE.fullmatch(run.strip()):
        return None
    digits = phone(run)
    return digits if 8 <= len(digits) <= 15 else None


def _scan(text: str) -> Iterator[tuple[str, str]]:
    yield from ((EMAIL, found) for found in _emails(text))
    yield from ((PHONE, found) for found in _phones(text))


def _emails(text: str) -> Iterator[str]:
    """Email addresses written in ``text``, normalised. Maximal runs of the characters an
    address is made of are found by one character class (a run never backtracks), then
    split at each ``@``: every character is looked at a fixed number of times, so a
    crafted text costs its length. (The pattern this replaces backtracked: 40,000 letters
    and one ``@`` took 0.8 s, a megabyte minutes.)"""
    if "@" not in text:
        return
    for run in _ADDRESS_RUN.finditer(text):
        pieces = run.group().split("@")
        for local, rest in zip(pieces, pieces[1:], strict=False):
            if not local or not rest or len(local) > _LONGEST_LOCAL:
                continue
            domain = _DOMAIN_END.split(rest, maxsplit=1)[0].rstrip(".-")
            if "." in domain and len(domain) <= _LONGEST_DOMAIN and domain[0] not in ".-":
                yield email(f"{local}@{domain}")


def _phones(text: str) -> Iterator[str]:
    """Phone numbers written in ``text``, as digits: each run of digits and separators
    that no letter touches, whole, else each of its parts between slashes and each
    group or pair of groups between spaces (``9123 4567 / 6123 4567``). Runs are found
    by one character class; each is split once."""
    for run in _DIGIT_RUN.finditer(text):
        number = run.group().rstrip(_SEPARATOR_TEXT)
        start = run.start()
        before, after = start - 1, start + len(number)
        if before >= 0 and text[before] == "+":
            before -= 1
        if (before >= 0 and _is_word(text[before])) or (
            after < len(text) and _is_word(text[after])
        ):
            continue
        whole = _phone_digits(number)
        if whole is not None:
            yield whole
            continue
        for part in number.split("/"):
            groups = part.split()
            for first, second in zip(groups, [*groups[1:], ""], strict=True):
                for piece in (first, first + second):
                    if 8 <= len(piece) <= 40:
                        digits = _phone_digits(piece)
                        if digits is not None:
                            yield digits


def _is_word(character: str) -> bool:
    """``character`` (one, or none: the text's edge) belongs to a word."""
    return character.isalnum() or character == "_"


def generate(kind: str, domain: str) -> str:
    """A new decoy: a plausible address at ``domain``, or a Hong Kong mobile number."""
    if kind == EMAIL:
        if not re.fullmatch(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", domain):
            raise ValueError("domain: not a domain name")
        local = f"{secrets.choice(_GIVEN)}.{secrets.choice(_FAMILY)}{secrets.randbelow(10**6):06d}"
        return f"{local}@{domain.lower()}"
    if kind == PHONE:
        return f"{secrets.choice('5679')}{secrets.randbelow(10**7):07d}"
    raise ValueError("kind: email or phone")


class DecoyContacts:
    """The gate's ``DecoyWatch``: which decoys a request carries. ``token(kind, term)`` is
    the vault's keyed blind index for decoys."""

    def __init__(self, flags: Flags, token: Callable[[str, str], bytes]) -> None:
        self.flags = flags
        self.token = token

    def known(self) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        for subject in self.flags.current().decoy_contacts:
            kind, _, hexed = subject.partition(":")
            found[bytes.fromhex(hexed)] = kind
        return found

    def spotted(self, values: Iterable[object]) -> list[str]:
        """The kinds of decoy in ``values`` (none: an empty list, quickly, when no decoy
        is planted)."""
        if not self.flags.current().decoy_contacts:
            return []
        known = self.known()
        return sorted(
            {
                known[token]
                for kind, term in contact_terms(values)
                if (token := self.token(kind, term)) in known
            }
        )

    def subject(self, kind: str, value: str) -> str:
        """The flag subject of a decoy value; ValueError if it is not one of ``kind``."""
        terms = {term for found, term in contact_terms([value]) if found == kind}
        if len(terms) != 1:
            raise ValueError(f"value: not one {kind}")
        return f"{kind}:{self.token(kind, terms.pop()).hex()}"


def decoy_finding(access: Access, decoys: Set[str]) -> Finding | None:
    """A critical finding for an entry whose request carried a decoy contact detail."""
    kinds = access.detail.get(MARK)
    if not kinds:
        return None
    what = " and ".join(
        {"email": "a decoy email address", "phone": "a decoy phone number"}.get(str(k), str(k))
        for k in kinds
    )
    pseudonym = access.patient_pseudonym
    writing = access.tag in WRITES
    if writing and pseudonym in decoys:
        return None  # planting or keeping a decoy record
    day = str(access.at_us // DAY_US)
    if writing:
        return Finding(
            "decoy-contact-data",
            Severity.CRITICAL,
            day,
            f"incoming data carried {what}, planted only in decoy records: records taken "
            "from CareVault are being fed back in",
            access,
            (pseudonym,) if pseudonym else (),
        )
    return Finding(
        "decoy-contact",
        Severity.CRITICAL,
        day,
        f"searched for {what}, planted only in decoy records: whoever searched holds data "
        "taken from CareVault",
        access,
        (pseudonym,) if pseudonym else (),
    )
