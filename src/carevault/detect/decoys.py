"""Decoy contact details (honeytokens): email addresses and phone numbers that belong to
no one, planted in decoy records, whose later appearance anywhere says that data was
taken from CareVault and is being used.

A privacy officer generates them (``carevault alerts decoy-contact``): a plausible
address or Hong Kong mobile number drawn at random, shown once, and kept only as a keyed
blind token (``detect_flag`` kind ``decoy-contact``), so that someone holding the
database can neither read nor guess the decoys. The gate asks ``spotted`` about every
write it is given (any string of the resource: contact points, notes, anything) and
every search's values, and marks the audit entries that carried one; the detectors
raise a critical alert from that entry at once:

* ``decoy-contact``: a search for a decoy (someone holds taken data and looks it up);
  the response policy applies (by default the account is suspended).
* ``decoy-contact-data``: incoming data (a create, update or import) carried a decoy;
  raised only, since the person typing it in may have been handed it by a fraudster.
  Writes to a decoy patient's own record (planting the decoy) are not alerts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Set

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

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()-]{6,18}\d(?!\w)")
_GIVEN = ("ka.ming", "wai.man", "siu.ling", "mei.yee", "chi.keung", "hoi.yan", "tsz.ching",
          "wing.sze", "ho.yin", "ka.yan", "chun.kit", "yuen.ting")  # fmt: skip
_FAMILY = ("chan", "wong", "lee", "cheung", "lau", "ng", "ho", "leung", "lam", "tse", "yip",
           "kwok", "lo", "tam", "fung", "tsang")  # fmt: skip


def contact_terms(values: Iterable[object]) -> set[tuple[str, str]]:
    """Every (kind, normalised value) of an email address or phone number in ``values``
    and everything inside them (dicts, lists, strings)."""
    found: set[tuple[str, str]] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        elif isinstance(value, str):
            if "@" in value:
                found.update((EMAIL, email(match)) for match in _EMAIL.findall(value))
            for match in _PHONE.findall(value):
                if _DATE.fullmatch(match):
                    continue
                digits = phone(match)
                if 8 <= len(digits) <= 15:
                    found.add((PHONE, digits))
    return found


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
