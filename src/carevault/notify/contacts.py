"""Who receives a patient's notice and how, from their Patient resource (pure).

Only what the notice needs is taken: a name to address, the preferred language
(``Patient.communication``), an email address, a mobile number, a postal address,
whether the patient is a minor (then a guardian from ``Patient.contact`` receives
it) or deceased (then no notice is sent; the patient is listed for the officer).
Every value is cleaned for the documents it goes into: control characters, line
breaks and bidirectional overrides removed, length bounded; an email address or
phone number that is not plainly valid is not used at all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from carevault.notify.names import addressable

#: Longest name or address line a notice shows; longer ones are cut with an ellipsis.
MAX_TEXT = 120
#: Codes of Patient.contact.relationship that make someone a guardian (HL7 v3 RoleCode
#: and v2 table 0131 where they apply).
GUARDIAN_CODES = frozenset({"GUARD", "PRN", "PAR", "MTH", "FTH", "NMTH", "NFTH", "STPPRN"})
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_PHONE_NOISE = re.compile(r"[\s\-().]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_INVISIBLE = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF}


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as one safe line: no control, format-override or invisible characters,
    whitespace collapsed, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = str(value) if value is not None else ""
    kept: list[str] = []
    for char in text:
        code = ord(char)
        if code in _BIDI or code in _INVISIBLE:
            continue
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or category == "Cf":
            kept.append(" ")
        else:
            kept.append(char)
    line = " ".join("".join(kept).split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def valid_email(value: object) -> str | None:
    text = str(value or "").strip()
    if len(text) > 254 or not _EMAIL.match(text):
        return None
    return text


def valid_mobile(value: object) -> str | None:
    """An E.164 number (+852 for eight local digits), or None."""
    text = _PHONE_NOISE.sub("", str(value or ""))
    if re.fullmatch(r"[5-9]\d{7}", text):
        return "+852" + text
    if re.fullmatch(r"\+[1-9]\d{7,14}", text):
        return text
    return None


@dataclass(frozen=True)
class Recipient:
    """Where and to whom one patient's notice goes; ``None`` where there is no such way."""

    patient_id: str
    language: str
    patient_name: str
    addressee: str
    guardian: bool
    minor: bool
    deceased: bool
    email: str | None
    mobile: str | None
    address: tuple[str, ...]
    region: str | None
    #: The versions of the Patient record a compromised principal wrote in the incident's
    #: window: the details above were taken without them (``notify.reader``).
    untrusted_versions: tuple[int, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """Channels to try, best first: email, then SMS, then a printed letter."""
        found: list[str] = []
        if self.email:
            found.append("email")
        if self.mobile:
            found.append("sms")
        if self.address:
            found.append("letter")
        return tuple(found)


@dataclass(frozen=True)
class Held:
    """One Patient record as a notice may use it: who it says receives the notice, its
    pseudonym, and when what the notice takes from it was last updated (for a record a
    compromised principal wrote to, the last version written by someone else)."""

    recipient: Recipient
    pseudonym: str | None
    updated_us: int
    #: A compromised principal made the record (its first version, in the incident).
    made_by_them: bool = False


def contact_of(records: Mapping[str, Held]) -> tuple[str, Held]:
    """The record (Patient id, held) a person's one notice goes out from, among their
    records (one HKID, one person): the one updated last, which holds their details as
    they last gave them, unless it gives no way to reach them, then the next most recent
    that does. The most recent one decides whether they are deceased. Ties go to the
    smaller id, so a run again chooses the same record.

    A record a compromised principal made is the attacker's word: while the person has a
    record of their own, it chooses neither where the notice goes nor whether they have
    died (an attacker who registered the victim's HKID again, with their own email or
    marked deceased, took the victim's notice or stopped it: review)."""
    own = {key: held for key, held in records.items() if not held.made_by_them}
    ordered = sorted((own or records).items(), key=lambda item: (-item[1].updated_us, item[0]))
    newest = ordered[0]
    if newest[1].recipient.deceased:
        return newest
    reachable = (item for item in ordered if item[1].recipient.channels)
    return next((item for item in reachable if not item[1].recipient.deceased), newest)


def language_of(resource: dict[str, Any]) -> str:
    """``zh`` (Traditional Chinese) or ``en``, from the preferred communication language."""
    entries = [c for c in resource.get("communication") or [] if isinstance(c, dict)]
    entries.sort(key=lambda c: not c.get("preferred"))
    for entry in entries:
        language = entry.get("language") or {}
        codes = [str(c.get("code") or "") for c in language.get("coding") or []]
        codes.append(str(language.get("text") or ""))
        for code in codes:
            lowered = code.lower()
            if lowered.startswith(("zh", "yue", "cantonese", "chinese")):
                return "zh"
            if lowered.startswith(("en", "english")):
                return "en"
    return "en"


def _name_text(name: dict[str, Any]) -> str:
    if name.get("text"):
        return str(name["text"])
    given = [str(part) for part in name.get("given") or []]
    family = str(name.get("family") or "")
    if _CJK.search(family + "".join(given)):
        return family + "".join(given)
    return " ".join([*given, family]).strip()


def name_for(names: Any, language: str) -> str:
    """The written form of a name best suited to ``language`` (a Chinese one for zh),
    among those a notice may show (``names.addressable``); "" if there is none."""
    forms = [_name_text(n) for n in names or [] if isinstance(n, dict) and n.get("use") != "old"]
    forms = [form for form in (addressable(clean(f)) for f in forms) if form]
    if not forms:
        return ""
    if language == "zh":
        chinese = [form for form in forms if _CJK.search(form)]
        if chinese:
            return chinese[0]
    latin = [form for form in forms if not _CJK.search(form)]
    return (latin or forms)[0]


def _telecom(entries: Any, system: str) -> list[str]:
    items = [t for t in entries or [] if isinstance(t, dict) and t.get("system") == system]
    items = [t for t in items if not (t.get("period") or {}).get("end")]
    items.sort(key=lambda t: int(t.get("rank") or 99))
    return [str(t.get("value") or "") for t in items]


def _first(values: list[str], check: Any) -> str | None:
    for value in values:
        valid: str | None = check(value)
        if valid:
            return valid
    return None


def _address(addresses: Any) -> tuple[tuple[str, ...], str | None]:
    for address in addresses if isinstance(addresses, list) else [addresses]:
        if not isinstance(address, dict) or address.get("use") == "old":
            continue
        lines = [clean(line) for line in address.get("line") or []]
        lines += [
            clean(address[key]) for key in ("district", "city", "state", "postalCode")
            if address.get(key)
        ]  # fmt: skip
        lines = [line for line in lines if line]
        if not lines and address.get("text"):
            lines = [clean(address["text"])]
        if lines:
            country = clean(address.get("country") or "")
            if country:
                lines.append(country)
            state = clean(address.get("state") or "", 40) or None
            return tuple(lines[:6]), state
    return (), None


def _is_guardian(contact: dict[str, Any]) -> bool:
    for relationship in contact.get("relationship") or []:
        if not isinstance(relationship, dict):
            continue
        for coding in relationship.get("coding") or []:
            if str(coding.get("code") or "").upper() in GUARDIAN_CODES:
                return True
        if re.search(r"guardian|parent|mother|father", str(relationship.get("text") or ""), re.I):
            return True
    return False


def _age(birth: Any, today: date) -> int | None:
    try:
        born = date.fromisoformat(str(birth)[:10]) if birth else None
    except ValueError:
        return None
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def recipient_of(patient_id: str, resource: dict[str, Any], today: date) -> Recipient:
    """Who gets ``resource``'s notice: the patient, or for a minor their guardian."""
    language = language_of(resource)
    patient_name = name_for(resource.get("name"), language)
    deceased = bool(resource.get("deceasedBoolean")) or bool(resource.get("deceasedDateTime"))
    age = _age(resource.get("birthDate"), today)
    minor = age is not None and age < 18
    address, region = _address(resource.get("address"))
    email = _first(_telecom(resource.get("telecom"), "email"), valid_email)
    mobile = _first(_telecom(resource.get("telecom"), "phone"), valid_mobile)
    addressee, guardian = patient_name, False
    if minor:
        contacts = [c for c in resource.get("contact") or [] if isinstance(c, dict)]
        keeper = next((c for c in contacts if _is_guardian(c)), None)
        if keeper is not None:
            guardian = True
            addressee = name_for([keeper.get("name") or {}], language)
            email = _first(_telecom(keeper.get("telecom"), "email"), valid_email)
            mobile = _first(_telecom(keeper.get("telecom"), "phone"), valid_mobile)
            own_address, own_region = _address(keeper.get("address"))
            if own_address:
                address, region = own_address, own_region
    return Recipient(
        patient_id=patient_id,
        language=language,
        patient_name=patient_name,
        addressee=addressee,
        guardian=guardian,
        minor=minor,
        deceased=deceased,
        email=email,
        mobile=mobile,
        address=address,
        region=region,
    )
