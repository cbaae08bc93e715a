"""A government identity number is kept only in the Patient resource's own
``identifier`` list (stop 65): an Identifier anywhere else in a record (an extension's
``valueIdentifier``, a primitive's ``_x`` extension, a contained resource, an element of
type Identifier under another name) is refused with the element's path, by REST's full
validation and by the compiled check of bulk loads alike; ordinary identifiers there are
not."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

from carevault.bulk.checking import verdict
from carevault.bulk.shape import Shapes
from carevault.domain.categories import DataCategory
from carevault.fhir.categories import _identifier_categories
from carevault.fhir.content import DEFAULT_LIMITS, check_record_rules
from carevault.fhir.government import is_government_id, is_government_system
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.validate import _COMPLEX, _fields, validate_resource

HKID = "K987654(5)"
GOVERNMENT: dict[str, Any] = {"system": HKID_SYSTEM, "value": HKID}
PASSPORT_TYPED: dict[str, Any] = {
    "type": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PPN"}]
    },
    "system": "urn:oid:2.16.840.1.113883.4.330",
    "value": "X1234567",
}
#: Stop 66: government numbers of other countries as a feed sends them (a system, no
#: type), and HKIDs spelt otherwise under a local system.
OTHER_NUMBERS: dict[str, dict[str, Any]] = {
    "passport-CHN": {"system": "http://hl7.org/fhir/sid/passport-CHN", "value": "E98765432"},
    "passport-USA": {"system": "http://hl7.org/fhir/sid/passport-USA", "value": "598765432"},
    "passport-oid-840": {"system": "urn:oid:2.16.840.1.113883.4.330.840", "value": "598765432"},
    "us-ssn": {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "598765432"},
    "us-mbi": {"system": "http://hl7.org/fhir/sid/us-mbi", "value": "1EG4TE5MK73"},
    "nhs-number": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
    "us-driver-ca": {"system": "urn:oid:2.16.840.1.113883.4.3.6", "value": "D1234567"},
    "typed-MC": {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MC"}]
        },
        "system": "urn:oid:1.2.3.4.5",
        "value": "1EG4TE5MK73",
    },
    "hkid-dash": {"system": "urn:oid:2.16.344.1.99", "value": "K987654-5"},
    "hkid-named": {"system": "urn:oid:2.16.344.1.99", "value": "HKID K987654(5)"},
    "hkid-zero-width": {"system": "urn:oid:2.16.344.1.99", "value": "K987\u200b654(5)"},
}
MRN: dict[str, Any] = {"system": "http://carevault.hk/sid/mrn", "value": "MRN-0001"}
ORDER: dict[str, Any] = {"system": "urn:oid:1.2.3.4", "value": "ORD-77-2024"}


def _alt(identifier: dict[str, Any]) -> dict[str, Any]:
    return {"url": "http://example.org/alt-id", "valueIdentifier": identifier}


_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "weight"},
    "subject": {"reference": "Patient/p1"},
}

#: place → (the record holding ``identifier`` there, the path the issue names).
Place = tuple[Callable[[dict[str, Any]], dict[str, Any]], str]
PLACES: dict[str, Place] = {
    "Patient.extension": (
        lambda i: {"resourceType": "Patient", "extension": [_alt(i)]},
        "Patient.extension[0].valueIdentifier",
    ),
    "Patient.modifierExtension": (
        lambda i: {"resourceType": "Patient", "modifierExtension": [_alt(i)]},
        "Patient.modifierExtension[0].valueIdentifier",
    ),
    "Patient.extension.extension": (
        lambda i: {
            "resourceType": "Patient",
            "extension": [{"url": "http://example.org/ids", "extension": [_alt(i)]}],
        },
        "Patient.extension[0].extension[0].valueIdentifier",
    ),
    "Patient._gender": (
        lambda i: {
            "resourceType": "Patient",
            "gender": "male",
            "_gender": {"extension": [_alt(i)]},
        },
        "Patient._gender.extension[0].valueIdentifier",
    ),
    "Patient.name._family": (
        lambda i: {
            "resourceType": "Patient",
            "name": [{"family": "Wong", "_family": {"extension": [_alt(i)]}}],
        },
        "Patient.name[0]._family.extension[0].valueIdentifier",
    ),
    "Patient.name._given": (
        lambda i: {
            "resourceType": "Patient",
            "name": [{"given": ["Tai", "Man"], "_given": [None, {"extension": [_alt(i)]}]}],
        },
        "Patient.name[0]._given[1].extension[0].valueIdentifier",
    ),
    "Patient.identifier.assigner": (
        # The list item is the patient's own (an MRN); its assigner's is not.
        lambda i: {
            "resourceType": "Patient",
            "identifier": [{**MRN, "assigner": {"identifier": i}}],
        },
        "Patient.identifier[0].assigner.identifier",
    ),
    "Patient.extension.valueReference": (
        lambda i: {
            "resourceType": "Patient",
            "extension": [{"url": "http://example.org/carer", "valueReference": {"identifier": i}}],
        },
        "Patient.extension[0].valueReference.identifier",
    ),
    "Observation.extension": (
        lambda i: {**_OBSERVATION, "extension": [_alt(i)]},
        "Observation.extension[0].valueIdentifier",
    ),
    "Observation.contained.Patient.identifier": (
        lambda i: {
            **_OBSERVATION,
            "contained": [{"resourceType": "Patient", "id": "who", "identifier": [i]}],
            "performer": [{"reference": "#who"}],
        },
        "Observation.contained[0].identifier[0]",
    ),
    "Observation.contained.extension": (
        lambda i: {
            **_OBSERVATION,
            "contained": [{"resourceType": "Practitioner", "id": "by", "extension": [_alt(i)]}],
            "performer": [{"reference": "#by"}],
        },
        "Observation.contained[0].extension[0].valueIdentifier",
    ),
    "Appointment.extension": (
        lambda i: {
            "resourceType": "Appointment",
            "status": "booked",
            "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}],
            "extension": [_alt(i)],
        },
        "Appointment.extension[0].valueIdentifier",
    ),
    "Encounter.hospitalization.preAdmissionIdentifier": (
        lambda i: {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/p1"},
            "hospitalization": {"preAdmissionIdentifier": i},
        },
        "Encounter.hospitalization.preAdmissionIdentifier",
    ),
    "MedicationRequest.groupIdentifier": (
        lambda i: {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "paracetamol"},
            "subject": {"reference": "Patient/p1"},
            "groupIdentifier": i,
        },
        "MedicationRequest.groupIdentifier",
    ),
    "ServiceRequest.requisition": (
        lambda i: {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "requisition": i,
        },
        "ServiceRequest.requisition",
    ),
    "DocumentReference.masterIdentifier": (
        lambda i: {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": "Patient/p1"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
            "masterIdentifier": i,
        },
        "DocumentReference.masterIdentifier",
    ),
}


def _rules(record: dict[str, Any]) -> list[Issue]:
    rules: list[Issue] = []
    check_record_rules(record, record["resourceType"], rules)
    return rules


@pytest.mark.parametrize(
    "identifier",
    [GOVERNMENT, PASSPORT_TYPED, *OTHER_NUMBERS.values()],
    ids=["hkid", "passport", *OTHER_NUMBERS],
)
@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_government_number_outside_patient_identifier_is_refused_at_its_path(
    place: str, identifier: dict[str, Any]
) -> None:
    build, where = PLACES[place]
    record = build(identifier)

    [issue] = _rules(record)
    assert issue.code == "business-rule"
    assert issue.expression == (where,)
    assert "Patient.identifier" in issue.diagnostics
    assert identifier["value"] not in issue.diagnostics

    with pytest.raises(FhirError) as refused:
        validate_resource(record, record["resourceType"])
    assert refused.value.status == 422
    assert [i.expression for i in refused.value.issues] == [(where,)]
    # A bulk load refuses it too, whichever check sees it, and says why as REST does.
    assert not Shapes(DEFAULT_LIMITS).certainly_valid(record)
    fast = verdict(record, None, DEFAULT_LIMITS, compiled=True)
    assert fast is not None and fast == verdict(record, None, DEFAULT_LIMITS, compiled=False)
    assert "Patient.identifier" in fast and identifier["value"] not in fast


@pytest.mark.parametrize("identifier", [MRN, ORDER], ids=["mrn", "order-number"])
@pytest.mark.parametrize("place", sorted(PLACES))
def test_an_ordinary_identifier_there_is_kept(place: str, identifier: dict[str, Any]) -> None:
    build, _ = PLACES[place]
    record = build(identifier)

    assert _rules(record) == []
    validate_resource(record, record["resourceType"])
    assert verdict(record, None, DEFAULT_LIMITS, compiled=True) is None
    # The compiled check models every place but a primitive's extension (which it leaves
    # to the full validation), so its refusal above is the rule's.
    assert Shapes(DEFAULT_LIMITS).certainly_valid(record) is ("._" not in place)


def test_the_patients_own_identifier_list_keeps_a_government_number() -> None:
    record = {
        "resourceType": "Patient",
        "identifier": [MRN, GOVERNMENT, PASSPORT_TYPED, *OTHER_NUMBERS.values()],
    }

    assert _rules(record) == []
    validate_resource(record, "Patient")
    assert Shapes(DEFAULT_LIMITS).certainly_valid(record)


@pytest.mark.parametrize("number", sorted(OTHER_NUMBERS))
def test_another_countrys_number_in_the_patients_list_is_a_government_id(number: str) -> None:
    """What a front desk and billing are not shown (``categories``, the read side)."""
    assert is_government_id(OTHER_NUMBERS[number], unnamed=True)
    assert _identifier_categories(OTHER_NUMBERS[number]) == {DataCategory.GOVERNMENT_ID}


@pytest.mark.parametrize(
    "system",
    [
        "http://carevault.hk/sid/hkid",
        "http://hl7.org/fhir/sid/passport-HKG",
        "http://hl7.org/fhir/sid/passport-CHN",
        "http://hl7.org/fhir/sid/passport-gbr",  # a URI's case is the feed's slip
        "HTTP://HL7.ORG/fhir/sid/passport-PHL",
        "https://hl7.org/fhir/sid/us-ssn",
        " http://hl7.org/fhir/sid/us-ssn ",
        "urn:oid:2.16.840.1.113883.4.1",
        "urn:oid:2.16.840.1.113883.4.330",
        "urn:oid:2.16.840.1.113883.4.330.156",
        "urn:oid:2.16.840.1.113883.4.3.25",
        "http://hl7.org/fhir/sid/us-mbi",
        "http://hl7.org/fhir/sid/us-medicare",
        "http://ns.electronichealth.net.au/id/hi/ihi/1.0",
        "https://fhir.nhs.uk/Id/nhs-number",
        "http://fhir.nl/fhir/NamingSystem/bsn",
        "http://hl7.org/fhir/sid/us-ssn/",  # a slash after it (review of stop 66)
        "2.16.840.1.113883.4.1",  # an OID without its urn:oid:
        "2.16.840.1.113883.4.330.156",
    ],
)
def test_government_systems(system: str) -> None:
    assert is_government_system(system)


@pytest.mark.parametrize(
    "system",
    [
        "http://carevault.hk/sid/mrn",
        "urn:oid:2.16.344.1.99",
        "http://hl7.org/fhir/sid/us-npi",  # a practitioner's number, published
        "urn:oid:2.16.840.1.113883.4.6",
        "urn:oid:2.16.840.1.113883.4.33",  # not the passport arc
        "urn:oid:2.16.840.1.113883.4.3",  # the driver's licences' root, no state
        "http://hl7.org/fhir/sid/passport",
        "http://loinc.org",
        "2.16.344.1.99",
        "/",
        "",
    ],
)
def test_other_systems_are_not(system: str) -> None:
    assert not is_government_system(system)
    assert not is_government_id({"system": system, "value": "X-1"})


COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
COVERAGE: dict[str, Any] = {
    "resourceType": "Coverage",
    "status": "active",
    "beneficiary": {"reference": "Patient/p1"},
    "payor": [{"reference": "Organization/insurer"}],
}
CLAIM: dict[str, Any] = {
    "resourceType": "Claim",
    "status": "active",
    "type": {"text": "professional"},
    "use": "claim",
    "patient": {"reference": "Patient/p1"},
    "created": "2024-05-01",
    "provider": {"reference": "Organization/clinic"},
    "priority": {"text": "normal"},
}


@pytest.mark.parametrize(
    "subscriber", ["K987654(5)", "k9876545", "K987654-5", "HKID K987654(5)", "K987\u200b654(5)"]
)
@pytest.mark.parametrize("contained", [False, True], ids=["coverage", "contained-coverage"])
def test_an_hkid_as_a_coverage_subscriber_id_is_refused(subscriber: str, contained: bool) -> None:
    """Stop 66: R4's ``Coverage.subscriberId`` is a string, which billing reads; an
    insurer keying its members by HKID sends the number there."""
    coverage = {**COVERAGE, "subscriberId": subscriber}
    if contained:
        record: dict[str, Any] = {
            **CLAIM,
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "#c"}}],
            "contained": [{**coverage, "id": "c"}],
        }
        where = "Claim.contained[0].subscriberId"
    else:
        record, where = coverage, "Coverage.subscriberId"

    [issue] = _rules(record)
    assert issue.code == "business-rule" and issue.expression == (where,)
    assert "Patient.identifier" in issue.diagnostics and "987" not in issue.diagnostics
    with pytest.raises(FhirError) as refused:
        validate_resource(record, record["resourceType"])
    assert refused.value.status == 422
    assert not Shapes(DEFAULT_LIMITS).certainly_valid(record)
    fast = verdict(record, None, DEFAULT_LIMITS, compiled=True)
    assert fast is not None and fast == verdict(record, None, DEFAULT_LIMITS, compiled=False)
    assert where in fast and "987" not in fast


@pytest.mark.parametrize(
    "subscriber",
    ["MEM-0001", "K987654", "A1234567890", "598-76-5432", "AB123456-7", "AB1234567", "M123456(2)"],
)
def test_an_insurers_member_number_is_kept(subscriber: str) -> None:
    """A member number that is no HKID (no HKID's shape, one without its check digit,
    or one shaped like an HKID whose check digit does not match: an insurer's numbers
    are shaped so too; review of stop 66) is the insurer's, written as before; in a
    class's value too."""
    plan = {"type": {"coding": [{"system": COVERAGE_CLASS, "code": "rxid"}]}, "value": subscriber}
    for record in ({**COVERAGE, "subscriberId": subscriber}, {**COVERAGE, "class": [plan]}):
        assert _rules(record) == []
        validate_resource(record, "Coverage")
        assert Shapes(DEFAULT_LIMITS).certainly_valid(record)


@pytest.mark.parametrize("member", ["K987654(5)", "K987654-5", "HKID K987654(5)"])
def test_an_hkid_as_a_coverage_class_value_is_refused(member: str) -> None:
    """Review of stop 66: the coverage class ``rxid`` is the member's id with the
    insurer, a string billing reads as it reads ``subscriberId``."""
    group = {"type": {"coding": [{"system": COVERAGE_CLASS, "code": "group"}]}, "value": "G1"}
    member_id = {"type": {"coding": [{"system": COVERAGE_CLASS, "code": "rxid"}]}, "value": member}
    record = {**COVERAGE, "class": [group, member_id]}
    [issue] = _rules(record)
    assert issue.expression == ("Coverage.class[1].value",) and "987" not in issue.diagnostics
    assert not Shapes(DEFAULT_LIMITS).certainly_valid(record)


def _identifier_elements_of_every_model() -> dict[str, set[str]]:
    """Every element name of every R4B model (resources, backbone elements, data
    types), with the names of the types it has wherever it appears."""
    import fhir.resources.R4B as r4b

    types: dict[str, set[str]] = {}
    for module_info in pkgutil.iter_modules(r4b.__path__):
        try:
            module = importlib.import_module(f"{r4b.__name__}.{module_info.name}")
        except ImportError:
            continue
        for model in vars(module).values():
            if not (isinstance(model, type) and hasattr(model, "model_fields")):
                continue
            if model.__module__ != module.__name__:
                continue
            for name, (_, kind, detail, _tier) in _fields(model).items():
                shown = detail.__name__ if kind == _COMPLEX and isinstance(detail, type) else "-"
                types.setdefault(name, set()).add(shown)
    return types


@pytest.mark.slow
def test_the_identifier_elements_are_every_element_of_type_identifier_in_r4() -> None:
    """The walk knows Identifiers by name (no model needed, so it costs what a walk of
    containers costs); the names are checked here against the models. Three of them name
    other types too, none of which holds a ``system``, a string ``value`` or a ``type``
    that ``is_government_id`` reads, so they are never taken for a government number."""
    from carevault.fhir.government import IDENTIFIER_ELEMENTS

    types = _identifier_elements_of_every_model()
    of_identifier = {name for name, kinds in types.items() if "Identifier" in kinds}

    assert of_identifier == IDENTIFIER_ELEMENTS
    shared = {
        name: kinds - {"Identifier"} for name, kinds in types.items() if name in of_identifier
    }
    assert {name: kinds for name, kinds in shared.items() if kinds} == {
        "identifier": {"-"},  # a string (MessageHeader.response's, ValueSet.expansion's)
        "reference": {"-", "Reference"},  # a Reference's string, and References
        "component": {
            "ObservationComponent",
            "SearchParameterComponent",
            "MeasureGroupStratifierComponent",
            "MeasureReportGroupStratifierStratumComponent",
        },
    }


#: A clinic's own numbers of two letters and seven digits whose last digit is no HKID
#: check digit of the rest: accession, claim, visit and hospital numbers.
CLINIC_NUMBERS = ("AC2024001", "CL2024117", "VN1234567", "LA1234567", "HN1234567")


@pytest.mark.parametrize("number", CLINIC_NUMBERS)
def test_a_clinics_own_number_shaped_like_an_hkid_is_no_government_number(number: str) -> None:
    """Adversary round 85: any value of an HKID's letters and digits was one, whatever
    its check digit and system, so a doctor's Encounter carrying the clinic's visit
    number was refused (and a hospital number hidden from the desk). Only one whose
    check digit matches is."""
    visit = {"system": "http://tm.example.hk/sid/visit", "value": number}
    assert not is_government_id(visit)
    encounter = {"resourceType": "Encounter", "status": "finished", "identifier": [visit]}
    encounter["class"] = {"code": "AMB"}
    assert _rules(encounter) == []
    assert Shapes(DEFAULT_LIMITS).certainly_valid(encounter)


#: An HKID written with what surrounds it in records: a full stop, a dependant's suffix,
#: square brackets, a label or a word before it, quotes, a slash or a dot before the
#: check digit, a dash after the letters, a Cyrillic letter drawn as a Latin one.
SURROUNDED = (
    "K987654(5).",
    "K987654(5)-01",
    "K987654(5)/01",
    "K987654[5]",
    "Member K987654(5)",
    "HKID=K987654(5)",
    "HKIC-K987654(5)",
    "HK K987654(5)",
    "K987654(5) HKID",
    '"K987654(5)"',
    "(K987654(5))",
    "K987654/5",
    "K987654.5",
    "K-987654(5)",
    "\u041a987654(5)",
    "K 987 654 5",
    "HKIDK987654(5)",
    "K987654\u30105\u3011",
)


@pytest.mark.parametrize("value", SURROUNDED)
def test_an_hkid_with_what_surrounds_it_is_a_government_number(value: str) -> None:
    """Adversary round 85: these spellings folded to no HKID, so they were written in
    an extension's Identifier and a Coverage's ``subscriberId`` and read by the desk and
    billing."""
    record = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "identifier": [{"system": "urn:oid:1.2.3.4", "value": value}],
    }
    [issue] = _rules(record)
    assert issue.expression == ("Encounter.identifier[0]",)
    [issue] = _rules({**COVERAGE, "subscriberId": value})
    assert issue.expression == ("Coverage.subscriberId",)
    assert not Shapes(DEFAULT_LIMITS).certainly_valid({**COVERAGE, "subscriberId": value})


_INSURANCE = {"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({**COVERAGE, "dependent": HKID}, "Coverage.dependent"),
        (
            {**COVERAGE, "class": [{"type": {"text": "plan"}, "value": "P1", "name": HKID}]},
            "Coverage.class[0].name",
        ),
        (
            {**CLAIM, "insurance": [{**_INSURANCE, "preAuthRef": ["PA-1", HKID]}]},
            "Claim.insurance[0].preAuthRef[1]",
        ),
        (
            {**CLAIM, "insurance": [{**_INSURANCE, "businessArrangement": HKID}]},
            "Claim.insurance[0].businessArrangement",
        ),
        (
            {"resourceType": "ExplanationOfBenefit", "preAuthRef": [HKID]},
            "ExplanationOfBenefit.preAuthRef[0]",
        ),
        (
            {"resourceType": "ExplanationOfBenefit", "insurance": [{"preAuthRef": [HKID]}]},
            "ExplanationOfBenefit.insurance[0].preAuthRef[0]",
        ),
    ],
    ids=["dependent", "class-name", "pre-auth", "arrangement", "eob-pre-auth", "eob-insurance"],
)
def test_an_hkid_in_another_string_billing_reads_is_refused(
    record: dict[str, Any], where: str
) -> None:
    """Adversary round 85: a Coverage's dependant number and class names, a claim's
    pre-authorisation references and business arrangement are strings billing reads
    that carry a person's number with an insurer, as ``subscriberId`` does."""
    [issue] = _rules(record)
    assert issue.code == "business-rule" and issue.expression == (where,)
    assert "987" not in issue.diagnostics
    assert not Shapes(DEFAULT_LIMITS).certainly_valid(record)
    # The insurer's own numbers there are written.
    kept = json.loads(json.dumps(record).replace(json.dumps(HKID), json.dumps("MEM-0001")))
    assert _rules(kept) == []


def test_an_hkid_printed_with_a_wrong_check_digit_is_a_government_number_in_an_identifier() -> None:
    """Under any system, ``A123456(4)`` is a mistyped HKID, and tells the real one; as a
    Coverage string it is an insurer's (``test_an_insurers_member_number_is_kept``)."""
    assert is_government_id({"system": "urn:oid:2.16.344.1.1", "value": "A123456(4)"})
    assert not is_government_id({"system": "urn:oid:2.16.344.1.1", "value": "A1234564"})
