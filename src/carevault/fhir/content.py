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
* HKID numbers (system ``http://carevault.hk/sid/hkid``) have a valid check digit.
* A government identity number is held in the Patient resource's own ``identifier``
  list and in no other Identifier of any record (``check_government_ids``).
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

from carevault.domain import hkid
from carevault.fhir import dates
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.outcome import Issue
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


def check_identifier(identifier: dict[str, Any], path: str, rules: list[Issue]) -> None:
    value = identifier.get("value")
    if identifier.get("system") != HKID_SYSTEM or not isinstance(value, str):
        return
    if not hkid.is_valid(value):
        where = f"{path}.value"
        rules.append(
            Issue(
                "value",
                f"{where}: not a valid HKID number (one or two letters, six digits and "
                "the check digit, as in A123456(3))",
                expression=(where,),
            )
        )


#: Identifier systems that are government identity numbers.
GOVERNMENT_ID_SYSTEMS = frozenset({HKID_SYSTEM, "http://hl7.org/fhir/sid/passport-HKG"})

#: HL7 v2 table 0203 types of a number a state gives a person (besides ``NN`` and a
#: country code, a national identity number): national unique id, passport, social
#: security, social beneficiary, citizenship card, driver's licence.
_GOVERNMENT_TYPES = frozenset({"NI", "PPN", "SS", "SB", "CZ", "DL"})
_NATIONAL_TYPE = re.compile(r"NN[A-Z]{3}")


def is_government_id(identifier: Any, *, unnamed: bool = False) -> bool:
    """Whether ``identifier`` is (or may be) a government identity number: under a
    government system, typed as one, or shaped like an HKID whatever its system says
    (legacy sources and hand-typed records send it bare or under a local OID).
    ``unnamed``: one with no system at all counts too (nothing says it is not one)."""
    if not isinstance(identifier, dict):
        return True
    system = identifier.get("system")
    if system in GOVERNMENT_ID_SYSTEMS or (unnamed and system is None):
        return True
    value = identifier.get("value")
    if isinstance(value, str) and hkid.normalise(value) is not None:
        return True
    kind = identifier.get("type")
    codings = kind.get("coding") if isinstance(kind, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        code = coding.get("code") if isinstance(coding, dict) else None
        if isinstance(code, str) and (
            code in _GOVERNMENT_TYPES or re.fullmatch("NN[A-Z]{3}", code)
        ):
            return True
    return False


#: The names R4 gives elements of type Identifier, in every resource, backbone element
#: and data type (an extension's ``valueIdentifier`` and the other choices' included):
#: the walk below knows an Identifier by its name, as it knows no model
#: (tests/unit/fhir/test_government_ids.py checks the list against the models). Three
#: of them name other types elsewhere too (``identifier`` a string, ``reference`` a
#: Reference and its string, ``component`` an Observation's component and the like),
#: none of which holds what ``is_government_id`` reads.
IDENTIFIER_ELEMENTS = frozenset(
    {
        "accessionIdentifier",
        "additionalIdentifier",
        "component",
        "defaultValueIdentifier",
        "fixedIdentifier",
        "groupIdentifier",
        "identifier",
        "masterIdentifier",
        "patternIdentifier",
        "paymentIdentifier",
        "preAdmissionIdentifier",
        "predecessor",
        "reference",
        "relatedIdentifier",
        "requestIdentifier",
        "requisition",
        "targetIdentifier",
        "valueIdentifier",
    }
)


def check_government_ids(data: Any, path: str, rules: list[Issue]) -> None:
    """A government identity number is held only in the Patient resource's own
    ``identifier`` list, where each reader's role decides whether it is shown: in any
    other Identifier (a Reference's, an extension's ``valueIdentifier`` on the patient or
    on a primitive of it, a contained resource's, a relative's or a practitioner's
    record, an order's requisition) it would be shown to whoever may read the element
    that carries it.

    Every write and every imported record runs this, so the walk visits containers only
    and spells an element's path only for an issue (building each path eagerly cost more
    than the rest of an import's checks together)."""
    steps: list[str | int] = []

    def spelled() -> str:
        return path + "".join(
            f"[{step}]" if isinstance(step, int) else f".{_printable(step)}" for step in steps
        )

    def walk(node: Any, kept: str | None) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(value, dict | list):
                    continue
                steps.append(key)
                if key in IDENTIFIER_ELEMENTS and key != kept:
                    listed = isinstance(value, list)
                    for index, item in enumerate(value if listed else [value]):
                        if isinstance(item, dict) and is_government_id(item):
                            at = f"{spelled()}[{index}]" if listed else spelled()
                            rules.append(
                                Issue(
                                    "business-rule",
                                    f"{at}: a government identity number is kept only in "
                                    "Patient.identifier; refer to the patient by reference",
                                    expression=(at,),
                                )
                            )
                walk(value, None)
                steps.pop()
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    steps.append(index)
                    walk(item, None)
                    steps.pop()

    # The Patient resource's own list only: not a contained Patient's, nor the patient's
    # identifiers' assigners'.
    on_patient = isinstance(data, dict) and data.get("resourceType") == "Patient"
    walk(data, "identifier" if on_patient else None)


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
                found += _references(value, f"{path}.{_printable(key)}")
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
            where = f"{path}.{_printable(key)}"
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


def _printable(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "?" for ch in key[:64])
