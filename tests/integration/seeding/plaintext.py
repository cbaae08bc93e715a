"""Looking for plaintext in raw storage: database files, key stores and database dumps.

A needle is one written form of a patient's detail (a name, an HKID number, a phone
number, an email address, a record number) in each spelling a careless write could
leave behind: as printed, normalised, upper or lower case, and encoded as UTF-8,
UTF-16 or JSON ``\\uXXXX`` escapes.

Three things keep the scan exact, fast and free of false alarms:

* ASCII needles are looked for in the runs of printable bytes of the raw data (and of
  its even and odd bytes, where UTF-16 text of ASCII characters shows as such a run),
  not in megabytes of ciphertext. Plaintext written anywhere is a run; random
  ciphertext contributes only short runs that a needle of six or more characters does
  not match by chance. Needles with other characters are looked for in the raw bytes.
* Each needle has a ``core`` that every spelling of the detail contains (the last four
  digits of a phone number, say). Cores are found once, case-insensitively, and each
  spelling is compared only where its core is.
* Needles made only of hexadecimal digits (an 8-digit phone number, an HKID number whose
  prefix is A-F) would match inside ids, hashes or numbers written as text, so they
  count only where no letter or digit stands next to them.

Some text is in the clear by design: staff names and usernames (staff are not patients)
and clinic names. A patient may share a name with a staff member, so an occurrence that
lies inside an occurrence of such an ``allowed`` text does not count; one outside does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from carevault.sim.patients import PatientRecord

#: Shorter Latin needles occur in ordinary text ("Lee", "Kei") or by chance in ciphertext:
#: a given five-byte string turns up in 30 MB of random bytes about once in 35,000 tries,
#: and 30 patients have some 300 five-letter spellings (Tsang, tsang, TSANG, Janet ...),
#: about one failure in a hundred runs. Short parts are still looked for inside the
#: longer spellings (full names, "Tsang, Kei Man", "tsangkeiman").
MIN_ASCII_NEEDLE = 6
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{%d,}" % MIN_ASCII_NEEDLE)
#: Runs of CJK characters (U+4E00 to U+9FFF) in UTF-8, two or more.
_CJK_RUN = re.compile(rb"(?:[\xe4-\xe9][\x80-\xbf]{2}){2,}")
_HEX_ONLY = re.compile(r"[0-9A-Fa-f]+")
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_CONTEXT = 60


@dataclass(frozen=True)
class Needle:
    """One spelling of a detail; every occurrence of ``text`` contains ``core`` (any case)."""

    text: str
    what: str
    core: str


@dataclass(frozen=True)
class Hit:
    needle: Needle
    where: str
    context: bytes


@dataclass(frozen=True)
class Place:
    """Bytes to search and how text would be encoded in them; ``lowered`` finds cores."""

    where: str
    data: bytes
    encode: Callable[[str], bytes]
    lowered: bytes | None = None


class Haystack:
    """Raw bytes (a file, a dump) prepared once for many needles."""

    def __init__(self, name: str, raw: bytes) -> None:
        self.name = name
        runs = {
            "text": _PRINTABLE_RUN.findall(raw),
            "UTF-16 (even bytes)": _PRINTABLE_RUN.findall(raw[0::2]),
            "UTF-16 (odd bytes)": _PRINTABLE_RUN.findall(raw[1::2]),
        }
        self.ascii_places = [
            Place(f"{name}, {where}", b"\n".join(found), str.encode, b"\n".join(found).lower())
            for where, found in runs.items()
        ]
        self.utf8 = Place(f"{name}, UTF-8", b"\n".join(_CJK_RUN.findall(raw)), str.encode)
        self.utf16 = Place(f"{name}, UTF-16-LE", raw, partial(str.encode, encoding="utf-16-le"))

    def places(self, text: str) -> list[Place]:
        if text.isascii():
            return self.ascii_places
        # In UTF-16 two CJK characters are four bytes: they would match ciphertext by chance.
        return [self.utf8, self.utf16] if len(text) >= 3 else [self.utf8]


def _starts(data: bytes, needle: bytes) -> Iterator[int]:
    """Every occurrence of ``needle``, overlapping ones included."""
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


class _Search:
    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)
        self.cores: dict[tuple[int, bytes], list[int]] = {}

    def candidates(self, place: Place, needle: Needle) -> Iterator[int]:
        """Where ``needle`` may start: everywhere its core is, or a plain search."""
        if place.lowered is None:
            yield from _starts(place.data, place.encode(needle.text))
            return
        core = needle.core.lower().encode()
        key = (id(place), core)
        if key not in self.cores:
            self.cores[key] = list(_starts(place.lowered, core))
        offset = needle.text.lower().encode().find(core)
        assert offset >= 0, f"{needle.core!r} is not part of {needle.text!r}"
        for at in self.cores[key]:
            if at >= offset:
                yield at - offset

    def occurrences(self, place: Place, needle: Needle) -> Iterator[int]:
        encoded = place.encode(needle.text)
        alone = _HEX_ONLY.fullmatch(needle.text) is not None
        for at in self.candidates(place, needle):
            end = at + len(encoded)
            if place.data[at:end] != encoded:
                continue
            if alone and (
                (at > 0 and place.data[at - 1] in _ALNUM)
                or (end < len(place.data) and place.data[end] in _ALNUM)
            ):
                continue
            if not self.explained(place, needle.text, at):
                yield at

    def explained(self, place: Place, text: str, at: int) -> bool:
        """Whether the occurrence at ``at`` is part of an allowed text written there."""
        encoded = place.encode(text)
        for allowed in self.allowed:
            if text not in allowed:
                continue
            container = place.encode(allowed)
            for offset in _starts(container, encoded):
                start = at - offset
                if start >= 0 and place.data[start : start + len(container)] == container:
                    return True
        return False


def find(
    haystacks: Iterable[Haystack], needles: Iterable[Needle], allowed: Iterable[str] = ()
) -> list[Hit]:
    """Every occurrence of a needle that no allowed text explains."""
    search = _Search(allowed)
    hits: list[Hit] = []
    for haystack in haystacks:
        for needle in needles:
            for place in haystack.places(needle.text):
                length = len(place.encode(needle.text))
                hits.extend(
                    Hit(
                        needle,
                        place.where,
                        place.data[max(0, at - _CONTEXT) : at + length + _CONTEXT],
                    )
                    for at in search.occurrences(place, needle)
                )
    return hits


def describe(hits: list[Hit], limit: int = 10) -> str:
    shown = [
        f"  {hit.needle.what} {hit.needle.text!r} in {hit.where}: {hit.context!r}"
        for hit in hits[:limit]
    ]
    return "\n".join([f"{len(hits)} plaintext occurrence(s):", *shown])


def haystacks_of_files(root: Path) -> list[Haystack]:
    """Every file under ``root``: databases, their WAL and journal files, keys, exports."""
    return [
        Haystack(str(path.relative_to(root)), path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


# --- needles --------------------------------------------------------------------------------


def _cases(text: str) -> set[str]:
    return {text, text.lower(), text.upper()}


def _json_escapes(text: str) -> set[str]:
    """``\\u9673`` escapes, as ``json.dumps`` writes them, and with upper-case hex digits."""
    escaped = json.dumps(text)[1:-1]
    return {
        escaped,
        re.sub(r"\\u[0-9a-f]{4}", lambda match: "\\u" + match[0][2:].upper(), escaped),
    }


def _long_enough(form: str) -> bool:
    if form.isascii():
        return len(form) >= MIN_ASCII_NEEDLE
    # Two CJK characters are six bytes of UTF-8: too many to occur by chance.
    return len(form.encode()) >= 6


def _name_forms(name: dict[str, Any]) -> set[str]:
    """A HumanName as text, family and given names in either order, parts alone, compacted."""
    family: str = name.get("family") or ""
    given_names: list[str] = name.get("given") or []
    given = " ".join(given_names)
    forms = {name.get("text") or "", family, given, *given_names}
    if not (family + given).isascii():
        # Chinese names: family name first, no spaces; also as JSON escapes ("\\u9673").
        forms.add(family + given)
        forms = {form for form in forms if _long_enough(form)}
        return forms | {escaped for form in forms for escaped in _json_escapes(form)}
    forms.update(token for part in (family, given) for token in part.split())
    if family and given:
        forms.update(
            {f"{family} {given}", f"{given} {family}", f"{family}, {given}"}
            | {f"{family}{given}".replace(" ", ""), f"{given}{family}".replace(" ", "")}
        )
    return {case for form in forms if _long_enough(form) for case in _cases(form)}


def _hkid_forms(hkid: str) -> set[str]:
    match = re.fullmatch(r"([A-Z]{1,2})(\d{6})\(([0-9A])\)", hkid)
    assert match is not None, hkid
    prefix, digits, check = match.groups()
    forms = {
        hkid,
        f"{prefix}{digits}{check}",
        f"{prefix}{digits} ({check})",
        f"{prefix}{digits}-{check}",
        f"{prefix} {digits} {check}",
        f"{prefix}{digits}",
    }
    return {case for form in forms for case in _cases(form)}


def _phone_forms(local: str) -> set[str]:
    spaced, dashed = f"{local[:4]} {local[4:]}", f"{local[:4]}-{local[4:]}"
    return {
        local,
        spaced,
        dashed,
        f"852{local}",
        f"+852{local}",
        f"+852 {spaced}",
        f"+852{spaced}",
        f"+852-{dashed}",
        f"852-{dashed}",
        f"(852) {spaced}",
        f"tel:+852{local}",
    }


def _core(form: str, parts: Iterable[str]) -> str:
    """The longest of ``parts`` that ``form`` contains, ignoring case (else all of it)."""
    inside = [part for part in parts if part.lower() in form.lower()]
    return max(inside, key=len) if inside else form


def patient_needles(number: int, record: PatientRecord) -> list[Needle]:
    """Every spelling of one seeded patient's names, HKID, phone, email and MRN."""
    who = f"patient {number} (Patient/{record.patient['id']})"
    needles: dict[str, Needle] = {}

    def add(forms: Iterable[str], what: str, parts: Iterable[str]) -> None:
        parts = list(parts)
        for form in forms:
            core = _core(form, parts)
            needles.setdefault(form, Needle(form, f"{what} of {who}", core))

    name_parts = [
        token
        for name in record.patient["name"]
        for part in (name.get("family") or "", *(name.get("given") or []))
        for token in part.split()
        if part.isascii()
    ]
    for name in record.patient["name"]:
        add(_name_forms(name), "name", name_parts)
    add(record.names, "name", name_parts)
    digits = record.hkid[-9:-3]
    add(_hkid_forms(record.hkid), "HKID", [digits])
    local = re.sub(r"\D", "", record.phone).removeprefix("852")
    assert len(local) == 8, record.phone
    add(_phone_forms(local), "phone", [local[4:]])
    if record.email is not None:
        mailbox = record.email.split("@", 1)[0]
        add({*_cases(record.email), mailbox, mailbox.upper()}, "email", [mailbox])
    add(_cases(record.mrn), "MRN", [record.mrn.rsplit("-", 1)[-1]])
    return list(needles.values())
