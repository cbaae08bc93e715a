"""Content rules for written resources, beyond what the FHIR models check (422).

* No control characters in any string or key: FHIR strings hold none below U+0020 but
  tab, line feed and carriage return; DEL, the C1 controls and lone surrogates are never
  text either (a NUL in a name truncates it in many consumers).
* Strings are bounded by what they are: names, identifiers, telecom values and address
  parts are short (``name_chars``); narrative, markdown and attachment data are long
  (``text_chars``); every other string sits between (``string_chars``). No string
  anywhere may exceed ``text_chars``.
* Numbers are bounded: XML Schema's decimal, which FHIR's follows, must be supported to
  18 digits and lets a server set a documented maximum; CareVault's is
  ``MAX_DECIMAL_DIGITS`` significant digits and a magnitude a double can hold.
* Government identity numbers are held only where each reader's role decides
  (``fhir.government``); HKIDs under the HKID system have a valid check digit.
* Dates fall in the years the store holds (``fhir.dates``).
* A directory record (clinics, practitioners, schedules, slots: no one's data) refers
  to no patient or relative: it would be a patient's record stored as no one's.

Issues name the element, never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from carevault.fhir import dates
from carevault.fhir.government import check_government_ids
from carevault.fhir.outcome import Issue, element_name
from carevault.fhir.registry import RESOURCE_TYPES

#: Significant digits a decimal may have: the 18 before and 17 after the point that
#: later FHIR versions' regex allows, together.
MAX_DECIMAL_DIGITS = 35
#: Powers of ten a decimal's magnitude may reach either way (what a double holds, as
#: most JSON readers parse numbers into one).
MAX_DECIMAL_EXPONENT = 308

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_LONG_TYPES = frozenset({"markdown", "base64Binary"})
_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_SHORT_TYPES = frozenset({"HumanName", "Address", "ContactPoint"})


class Tier(Enum):
    NAME = "name"
    STRING = "string"
    TEXT = "text"
    #: A narrative's XHTML: long as text is, and checked as XHTML (``fhir.xhtml``).
    XHTML = "xhtml"
    DATE = "date"


@dataclass(frozen=True)
class InputLimits:
    """The configured bounds of one request (``CAREVAULT_MAX_*``)."""

    name_chars: int = 256
    string_chars: int = 4096
    text_chars: int = 64 * 1024
    bundle_entries: int = 500
    #: How long a transaction's GET entries may run, in seconds, while it holds the audit
    #: ledger and the record writes (``rest/transaction.py``).
    transaction_read_seconds: float = 2.0

    def chars(self, tier: Tier) -> int:
        if tier is Tier.NAME:
            return self.name_chars
        if tier is Tier.TEXT or tier is Tier.XHTML:
            return self.text_chars
        return self.string_chars


DEFAULT_LIMITS = InputLimits()


def tier(owner: str, element: str, fhir_type: str) -> Tier:
    """What the string element ``element`` of ``owner`` (a type name) is checked as."""
    if fhir_type == "xhtml":
        return Tier.XHTML
    if fhir_type in _LONG_TYPES:
        return Tier.TEXT
    if fhir_type in _DATE_TYPES:
        return Tier.DATE
    if owner in _SHORT_TYPES or (owner == "Identifier" and element == "value"):
        return Tier.NAME
    return Tier.STRING


def check_string(
    value: str, tier: Tier, where: str, rules: list[Issue], limits: InputLimits
) -> None:
    """The tier's length bound, and the store's years for dates."""
    most = limits.chars(tier)
    if len(value) > most:
        rules.append(
            Issue("too-long", f"{where}: longer than {most} characters", expression=(where,))
        )
    elif tier is Tier.DATE and not dates.year_in_range(value):
        rules.append(Issue("value", f"{where}: {dates.OUT_OF_RANGE}", expression=(where,)))


#: The records of no one: stored in the clear, at no patient, readable by every clinic.
DIRECTORY_TYPES = frozenset(name for name, rt in RESOURCE_TYPES.items() if not rt.is_patient_data)
#: Resource types that are a patient or someone close to one.
_PERSON_TYPES = ("Patient", "RelatedPerson", "Person")
#: A reference naming one of them: relative, versioned, absolute or conditional.
_NAMES_A_PERSON = re.compile(r"(?:^|/)(?:Patient|RelatedPerson|Person)(?:[/?]|$)")


def check_record_rules(data: Any, path: str, rules: list[Issue]) -> None:
    """The rules about what a record may hold, beyond its shape and bounds: every path
    that writes records (REST, transactions, bulk imports) runs them."""
    check_government_ids(data, path, rules)
    check_directory_references(data, path, rules)


def check_directory_references(data: Any, path: str, rules: list[Issue]) -> None:
    """A directory record names no patient, relative or person, in any element.

    FHIR lets ``Schedule.actor`` be a Patient, and a Slot points at its Schedule, but
    CareVault holds these records as no one's: in the clear, readable by every clinic,
    their reads recorded with no patient, so out of every per-patient detector and the
    patient's access report. A patient's timetable ("HIV clinic" for Patient/x) is
    patient data and belongs in an Appointment, which is judged as such."""
    if not isinstance(data, dict) or data.get("resourceType") not in DIRECTORY_TYPES:
        return
    for where, value in _references(data, path):
        kind = value.get("type")
        target = value.get("reference")
        target = target if isinstance(target, str) else ""
        if (
            kind in _PERSON_TYPES
            or _NAMES_A_PERSON.search(target.split("#")[0])
            or (target.startswith("#") and _contained_type(data, target[1:]) in _PERSON_TYPES)
        ):
            rules.append(
                Issue(
                    "business-rule",
                    f"{where}: a {data['resourceType']} is no one's record and may not refer "
                    "to a patient or a relative; a patient's visit is an Appointment",
                    expression=(where,),
                )
            )
    for index, item in enumerate(data.get("contained") or []):
        if isinstance(item, dict) and item.get("resourceType") in _PERSON_TYPES:
            where = f"{path}.contained[{index}]"
            rules.append(
                Issue(
                    "business-rule",
                    f"{where}: a {data['resourceType']} may not hold a patient or a relative",
                    expression=(where,),
                )
            )


def _references(node: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every Reference-like object (with a ``reference`` or a ``type``) under ``node``."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str) or isinstance(node.get("type"), str):
            found.append((path, node))
        for key, value in node.items():
            if key != "contained" and isinstance(value, dict | list):
                found += _references(value, f"{path}.{element_name(key)}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _references(item, f"{path}[{index}]")
    return found


def _contained_type(data: dict[str, Any], local_id: str) -> Any:
    for item in data.get("contained") or []:
        if isinstance(item, dict) and item.get("id") == local_id:
            return item.get("resourceType")
    return None


def check_all(data: Any, path: str, rules: list[Issue], limits: InputLimits) -> None:
    """Control characters and the absolute bounds, in every string, key and number."""
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{element_name(key)}"
            if _CONTROL.search(key):
                rules.append(_control(where))
            check_all(value, where, rules, limits)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            check_all(item, f"{path}[{index}]", rules, limits)
    elif isinstance(data, str):
        if _CONTROL.search(data):
            rules.append(_control(path))
        elif len(data) > limits.text_chars:
            rules.append(
                Issue(
                    "too-long",
                    f"{path}: longer than {limits.text_chars} characters",
                    expression=(path,),
                )
            )
    elif isinstance(data, int | Decimal) and not isinstance(data, bool):
        problem = number_problem(data)
        if problem is not None:
            rules.append(Issue("value", f"{path}: {problem}", expression=(path,)))


def number_problem(value: int | Decimal) -> str | None:
    """Why a JSON number is beyond the bounds, or None."""
    if isinstance(value, int):
        if abs(value) >= 10**MAX_DECIMAL_DIGITS:
            return f"a number may have at most {MAX_DECIMAL_DIGITS} digits"
        return None
    if not value.is_finite():
        return "not a finite number"
    if len(value.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        return f"a decimal may have at most {MAX_DECIMAL_DIGITS} significant digits"
    if value and abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        bound = MAX_DECIMAL_EXPONENT
        return f"a decimal's magnitude must lie within 1e-{bound} and 1e{bound}"
    return None


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _control(where: str) -> Issue:
    return Issue(
        "value",
        f"{where}: control characters (such as NUL) are not allowed in text",
        expression=(where,),
    )
