"""Government identity numbers: where a record may hold one (422 elsewhere).

A government identity number (an HKID, a passport, a social security, Medicare or
national health number) is held only in the Patient resource's own ``identifier``
list, where each reader's role decides whether it is shown (``fhir.categories``). In any
other Identifier of any record (``check_government_ids``), or as an HKID in a string
element billing reads (``check_billing_ids``), it would be shown to whoever may read
the element that carries it. An Identifier is one by its system, its type, or an HKID
in its value (``hkid.holds``). HKIDs under the HKID system have a valid check digit
(``check_identifier``).

Issues name the element, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from carevault.domain import hkid
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.outcome import Issue, element_name


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
    government system, typed as one, or holding an HKID whatever its system says
    (legacy sources and hand-typed records send it bare or under a local OID):
    ``hkid.holds``, or written as an HKID is printed whatever its check digit
    (``hkid.printed_as_one``). A clinic's number of an HKID's letters and digits written
    plainly, whose check digit does not match, is none (adversary round 85).
    ``unnamed``: one with no system at all counts too (nothing says it is not one)."""
    if not isinstance(identifier, dict):
        return True
    system = identifier.get("system")
    if (system is None and unnamed) or (isinstance(system, str) and is_government_system(system)):
        return True
    value = identifier.get("value")
    if isinstance(value, str) and (hkid.holds(value) or hkid.printed_as_one(value)):
        return True
    kind = identifier.get("type")
    codings = kind.get("coding") if isinstance(kind, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        code = coding.get("code") if isinstance(coding, dict) else None
        if isinstance(code, str) and (code in _GOVERNMENT_TYPES or _NATIONAL_TYPE.fullmatch(code)):
            return True
    return False


#: The string elements of the records billing reads that carry a person's number with
#: an insurer or a payer: a Coverage's subscriber and dependant numbers and its classes'
#: values and names (the coverage-class ``rxid`` is the member's id with the insurer;
#: review of stop 66), a claim's pre-authorisation references and business arrangement
#: (adversary round 85). R4 makes them strings, not Identifiers, so
#: ``check_government_ids``'s walk does not see them; an insurer that keys its members
#: by HKID sends the number there. ``[]``: each item of a list.
BILLING_STRINGS: dict[str, tuple[str, ...]] = {
    "Coverage": ("subscriberId", "dependent", "class[].value", "class[].name"),
    "Claim": ("insurance[].preAuthRef[]", "insurance[].businessArrangement"),
    "ExplanationOfBenefit": ("preAuthRef[]", "insurance[].preAuthRef[]"),
}


def billing_hkids(record: dict[str, Any]) -> list[str]:
    """The paths (from the record) of ``BILLING_STRINGS`` elements that hold an HKID
    (``hkid.holds``)."""
    found: list[str] = []
    for path in BILLING_STRINGS.get(str(record.get("resourceType")), ()):
        found += [at for at, text in _strings_at(record, path.split("."), "") if hkid.holds(text)]
    return found


def _strings_at(node: Any, steps: list[str], at: str) -> Iterator[tuple[str, str]]:
    """The strings at ``steps`` below ``node``, with their paths after ``at``."""
    if not steps:
        if isinstance(node, str):
            yield at, node
        return
    if not isinstance(node, dict):
        return
    name, listed, rest = steps[0].removesuffix("[]"), steps[0].endswith("[]"), steps[1:]
    value = node.get(name)
    where = f"{at}.{name}" if at else name
    if not listed:
        yield from _strings_at(value, rest, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings_at(item, rest, f"{where}[{index}]")


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
            f"[{step}]" if isinstance(step, int) else f".{element_name(step)}" for step in steps
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
    check_billing_ids(data, path, rules)


def check_billing_ids(data: Any, path: str, rules: list[Issue]) -> None:
    """An HKID (``hkid.holds``) in a ``BILLING_STRINGS`` element of the record or of a
    record it contains. Billing, who may not read HKIDs, reads every Coverage and claim:
    refused as any government number outside ``Patient.identifier``; the record names
    its patient, whose record holds the HKID where each reader's role decides."""
    if not isinstance(data, dict):
        return
    found = [(path, data)]
    held = data.get("contained")
    if isinstance(held, list):
        found += [(f"{path}.contained[{n}]", item) for n, item in enumerate(held)]
    for where, record in found:
        if not isinstance(record, dict):
            continue
        for element in billing_hkids(record):
            at = f"{where}.{element}"
            rules.append(
                Issue(
                    "business-rule",
                    f"{at}: an HKID is a government identity number, kept only in "
                    "Patient.identifier; write the insurer's or payer's own number here",
                    expression=(at,),
                )
            )
