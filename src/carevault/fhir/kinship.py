"""Kinship terms of a person: what the detectors compare, as blind tokens, to tell that a
member of staff opened a relative's, a neighbour's or a co-worker's record.

A Patient gives its surname(s), its home address twice (the whole address: the
household; and the address without flat, room and floor: the building) and its HKID
number. The same functions normalise what HR records of a member of staff, so equal
values give equal terms whatever their spelling ("FLAT 3A, 12/F" and "Flat 3a 12 / f").
The vault turns each term into a keyed blind-index token when the record is written;
no term is ever stored as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from carevault.domain import hkid
from carevault.fhir.normalise import HKID_SYSTEM, fold, identifier_value

SURNAME = "surname"
HOUSEHOLD = "household"
BUILDING = "building"
HKID = "hkid"
KINDS = (SURNAME, HOUSEHOLD, BUILDING, HKID)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
#: Spellings of one word in Hong Kong addresses, folded to one form.
_SAME = {
    "rm": "flat",
    "room": "flat",
    "unit": "flat",
    "flt": "flat",
    "floor": "f",
    "fl": "f",
    "blk": "block",
    "bldg": "building",
    "twr": "tower",
    "rd": "road",
    "st": "street",
    "est": "estate",
    "ctr": "centre",
    "center": "centre",
}
#: Words that name a unit inside a building: the word after them is the unit.
_UNIT = frozenset({"flat"})
#: Floors that are not numbers: ground, lower and upper ground ("G/F").
_GROUND = frozenset({"g", "lg", "ug"})
#: Addresses that are not where someone lives.
_NOT_HOME = frozenset({"work", "billing", "old"})


def _words(text: str) -> list[str]:
    return [_SAME.get(word, word) for word in _WORD.findall(fold(text))]


def surname_term(family: str) -> str | None:
    """A family name as one term: its words, folded, in order."""
    words = _WORD.findall(fold(family))
    return " ".join(words) if words else None


def address_terms(lines: Iterable[str]) -> tuple[str | None, str | None]:
    """(household, building) terms of an address's lines: every word, then every word
    but the flat and the floor ("Flat 3A, 12/F, Block 2, Lok Fu Estate" → "block 2 lok
    fu estate"). City and district are left out: people write them inconsistently."""
    words = [word for line in lines for word in _words(line)]
    if not words:
        return None, None
    building: list[str] = []
    skip = 0
    for index, word in enumerate(words):
        if skip:
            skip -= 1
            continue
        following = words[index + 1] if index + 1 < len(words) else ""
        unit = word in _UNIT
        floor = (following == "f" and (word.isdigit() or word in _GROUND)) or (
            word == "f" and following.isdigit()
        )
        if unit or floor:
            skip = 1
        else:
            building.append(word)
    household = " ".join(words)
    return household, (" ".join(building) or None)


def hkid_term(value: str) -> str | None:
    """An HKID number in its one form (``A1234567``), or None if it is not one."""
    return hkid.normalise(value)


def patient_terms(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (kind, term) of a Patient resource."""
    terms: set[tuple[str, str]] = set()
    for name in resource.get("name") or []:
        if isinstance(name, dict) and isinstance(name.get("family"), str):
            term = surname_term(name["family"])
            if term:
                terms.add((SURNAME, term))
    for address in resource.get("address") or []:
        if not isinstance(address, dict) or address.get("use") in _NOT_HOME:
            continue
        lines = [line for line in address.get("line") or [] if isinstance(line, str)]
        household, building = address_terms(lines)
        if household:
            terms.add((HOUSEHOLD, household))
        if building:
            terms.add((BUILDING, building))
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            continue
        system = identifier.get("system")
        value = identifier["value"]
        number = identifier_value(HKID_SYSTEM, value) if system == HKID_SYSTEM else hkid_term(value)
        if number and hkid.normalise(number):
            terms.add((HKID, number))
    return terms
