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
  list and in no other Identifier of any record, nor as an HKID in a Coverage's string
  ``subscriberId`` (``check_government_ids``).
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
from functools import lru_cache
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


#: Identifier systems that are government identity numbers, as HL7 names them: the HKID;
#: the US social security number (R4's identifier registry, and its OID), Medicare's
#: numbers (the MBI, HL7 Terminology's ``cmsMBI``, and the HICN) and the Australian IHI
#: (R4's NamingSystem example, typed ``NI``); the national patient numbers of the NHS
#: and of the Netherlands (the BSN); and the bare passport OID arc some feeds send.
#: Passports of every country and US driver's licences of every state are prefixes
#: (``_GOVERNMENT_PREFIXES``). Compared in lower case: a URI's case is the feed's slip,
#: not another system.
GOVERNMENT_ID_SYSTEMS = frozenset(
    {
        HKID_SYSTEM,
        "http://hl7.org/fhir/sid/us-ssn",
        "urn:oid:2.16.840.1.113883.4.1",
        "http://hl7.org/fhir/sid/us-mbi",
        "urn:oid:2.16.840.1.113883.4.927",
        "http://hl7.org/fhir/sid/us-medicare",
        "urn:oid:2.16.840.1.113883.4.572",
        "http://ns.electronichealth.net.au/id/hi/ihi/1.0",
        "urn:oid:1.2.36.1.2001.1003.0",
        "https://fhir.nhs.uk/id/nhs-number",
        "http://fhir.nhs.net/id/nhs-number",
        "http://fhir.nl/fhir/namingsystem/bsn",
        "urn:oid:2.16.840.1.113883.4.330",
    }
)
#: Families of government systems: HL7's passport system of each country
#: (``passport-XXX``, ISO 3166 alpha-3) and its OID arc (``.4.330.<ISO 3166 numeric>``,
#: HL7 Terminology's ``passportNumNS-*``), and the US driver's licence OID of each state
#: (``.4.3.<state>``, R4's NamingSystem registry).
_GOVERNMENT_PREFIXES = (
    "http://hl7.org/fhir/sid/passport-",
    "urn:oid:2.16.840.1.113883.4.330.",
    "urn:oid:2.16.840.1.113883.4.3.",
)


#: An OID sent as a system without its ``urn:oid:``.
_BARE_OID = re.compile(r"[0-2](?:\.\d+)+")


@lru_cache(maxsize=4096)
def is_government_system(system: str) -> bool:
    """Whether ``system`` names government identity numbers (kept by value: a feed's
    records repeat a handful of systems, and every Identifier of a bulk load asks)."""
    # As systems are sent: in capitals, over https, with a slash after them, or an OID
    # without its ``urn:oid:`` (review of stop 66).
    folded = system.strip().lower().rstrip("/")
    if folded.startswith("https://hl7.org/"):
        folded = "http://" + folded[len("https://") :]
    if _BARE_OID.fullmatch(folded):
        folded = "urn:oid:" + folded
    return folded in GOVERNMENT_ID_SYSTEMS or folded.startswith(_GOVERNMENT_PREFIXES)


#: HL7 v2 table 0203 types of a number a state gives a person (besides ``NN`` and a
#: country code, a national identity number): national unique id, passport, diplomatic
#: passport, social security, social beneficiary, citizenship card, driver's licence,
#: birth certificate, national health plan identifier, a patient's Medicare and
#: Medicaid numbers.
_GOVERNMENT_TYPES = frozenset({"NI", "PPN", "DP", "SS", "SB", "CZ", "DL", "BCT", "NH", "MC", "MA"})
_NATIONAL_TYPE = re.compile(r"NN[A-Z]{3}")


def is_government_id(identifier: Any, *, unnamed: bool = False) -> bool:
    """Whether ``identifier`` is (or may be) a government identity number: under a
    government system, typed as one, or shaped like an HKID whatever its system says
    (legacy sources and hand-typed records send it bare or under a local OID).
    ``unnamed``: one with no system at all counts too (nothing says it is not one)."""
    if not isinstance(identifier, dict):
        return True
    system = identifier.get("system")
    if (system is None and unnamed) or (isinstance(system, str) and is_government_system(system)):
        return True
    value = identifier.get("value")
    if isinstance(value, str) and hkid.normalise(value) is not None:
        return True
    kind = identifier.get("type")
    codings = kind.get("coding") if isinstance(kind, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        code = coding.get("code") if isinstance(coding, dict) else None
        if isinstance(code, str) and (code in _GOVERNMENT_TYPES or _NATIONAL_TYPE.fullmatch(code)):
            return True
    return False


def holds_hkid(text: Any) -> bool:
    """Whether a string element holds an HKID in any spelling, its check digit matching
    (``hkid.is_valid``): such an element holds an insurer's or a clinic's numbers too,
    and one of them shaped like an HKID with a wrong check digit is one of those."""
    return isinstance(text, str) and hkid.is_valid(text)


def coverage_hkids(coverage: dict[str, Any]) -> list[str]:
    """The string elements of a Coverage (paths from it) that hold an HKID: its
    ``subscriberId``, and a ``class``'s ``value`` (the coverage-class ``rxid`` is the
    member's id with the insurer; review of stop 66)."""
    found = ["subscriberId"] if holds_hkid(coverage.get("subscriberId")) else []
    classes = coverage.get("class")
    if isinstance(classes, list):
        found += [
            f"class[{n}].value"
            for n, item in enumerate(classes)
            if isinstance(item, dict) and holds_hkid(item.get("value"))
        ]
    return found


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
    check_subscriber_ids(data, path, rules)


def check_subscriber_ids(data: Any, path: str, rules: list[Issue]) -> None:
    """An HKID (in any spelling) as a Coverage's ``subscriberId`` or a class's ``value``
    (``coverage_hkids``), of the record or of a Coverage it contains. R4 makes those
    elements strings, not Identifiers, so the walk above does not judge them; an insurer
    that keys its members by HKID sends the number there, and billing, who may not read
    HKIDs, reads every Coverage. Refused as any government number outside
    ``Patient.identifier``: the Coverage names its ``beneficiary``, whose record holds
    the HKID where each reader's role decides."""
    if not isinstance(data, dict):
        return
    found = [(path, data)]
    held = data.get("contained")
    if isinstance(held, list):
        found += [(f"{path}.contained[{n}]", item) for n, item in enumerate(held)]
    for where, record in found:
        if not isinstance(record, dict) or record.get("resourceType") != "Coverage":
            continue
        for element in coverage_hkids(record):
            at = f"{where}.{element}"
            rules.append(
                Issue(
                    "business-rule",
                    f"{at}: an HKID is a government identity number, kept only in "
                    "Patient.identifier; write the insurer's own member number here",
                    expression=(at,),
                )
            )


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
