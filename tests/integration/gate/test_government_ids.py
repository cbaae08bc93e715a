"""An HKID stored without the HKID system is withheld as one (an adversary's finding: it
was read back by every role).

``fhir/categories._identifier_categories`` makes a Patient identifier a government id
only when its ``system`` is one of ``GOVERNMENT_ID_SYSTEMS``; any other identifier is
identity, which the front desk, billing (group-wide) and the privacy officer (group-wide)
read. An HKID that came without that exact system (no system at all, as many legacy
sources and hand-typed registrations send it; or typed ``NNHKG`` under an OID) is
therefore shown in full to all of them, although the rest of CareVault knows it for an
HKID: search folds any HKID-shaped value into the HKID form (``normalise.identifier_any``)
and finds the patient by it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import (
    HKID_SYSTEM,
    TM,
    Group,
    booked_today,
    build_group,
    coverage,
    encounter,
    observation,
)
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

HKID = "K987654(5)"

SHAPES: dict[str, dict[str, Any]] = {
    "no-system": {"value": HKID},
    "typed-under-an-oid": {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NNHKG"}]
        },
        "system": "urn:oid:2.16.344.1",
        "value": HKID,
    },
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.BILLING, Role.PRIVACY_OFFICER])
def test_an_hkid_without_the_hkid_system_is_still_withheld_from_who_may_not_read_hkids(
    group: Group, api: FhirTestClient, shape: str, role: Role
) -> None:
    # Written by the system, as a bulk load or an import of a legacy chart writes it.
    created = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "identifier": [SHAPES[shape]],
            "name": [{"family": "Wong", "given": ["Tai Man"]}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert created.status_code == 201, created.text
    reader = make_staff(group.services, role, [TM])

    shown = group.call(reader, "GET", f"/fhir/Patient/{created.json()['id']}")

    assert shown.status_code == 200, shown.text
    assert "987654" not in shown.text, f"{role} read an HKID back: {shown.json().get('identifier')}"


@pytest.mark.parametrize("where", ["reference", "practitioner"])
def test_an_hkid_outside_patient_identifier_is_refused(
    group: Group, api: FhirTestClient, where: str
) -> None:
    """A Reference may carry the patient's identifier beside the literal reference (HL7
    v2 feeds put PID-3 there), and a Practitioner (readable by anyone) may carry a staff
    member's HKID: a government number is kept only in ``Patient.identifier``, where
    each reader's role decides whether it is shown, so anywhere else it is refused."""
    patient = group.tm_patient
    if where == "reference":
        path, body = (
            "/fhir/Encounter",
            {
                **encounter(patient.id, TM),
                "subject": {
                    "reference": f"Patient/{patient.id}",
                    "identifier": {"system": HKID_SYSTEM, "value": patient.hkid},
                },
            },
        )
    else:
        path, body = (
            "/fhir/Practitioner",
            {
                "resourceType": "Practitioner",
                "identifier": [{"value": patient.hkid}],
                "name": [{"family": "Ho"}],
            },
        )
    before = api.get(f"{path}?_summary=count").json()["total"]

    refused = api.post_json(path, body)

    assert refused.status_code == 422, refused.text
    assert "Patient.identifier" in refused.text
    assert patient.hkid not in refused.text
    assert api.get(f"{path}?_summary=count").json()["total"] == before


ALT_ID = "http://example.org/alt-id"


def _alt(identifier: dict[str, Any]) -> dict[str, Any]:
    return {"url": ALT_ID, "valueIdentifier": identifier}


def _written_anywhere(group: Group, place: str, identifier: dict[str, Any]) -> dict[str, Any]:
    """A record of the group's patient holding ``identifier`` at ``place``."""
    patient = group.tm_patient.id
    registered = {
        "resourceType": "Patient",
        "name": [{"family": "Wong", "given": ["Tai Man"]}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    subject = {"subject": {"reference": f"Patient/{patient}"}}
    order = {"status": "active", "intent": "order", **subject}
    bodies: dict[str, dict[str, Any]] = {
        "Patient.extension": {**registered, "extension": [_alt(identifier)]},
        "Patient._gender": {
            **registered,
            "gender": "male",
            "_gender": {"extension": [_alt(identifier)]},
        },
        "Patient.name._family": {
            **registered,
            "name": [{"family": "Wong", "_family": {"extension": [_alt(identifier)]}}],
        },
        "Observation.extension": {**observation(patient), "extension": [_alt(identifier)]},
        "Appointment.extension": booked_today(patient, TM, extension=[_alt(identifier)]),
        "Encounter.hospitalization.preAdmissionIdentifier": {
            **encounter(patient, TM),
            "hospitalization": {"preAdmissionIdentifier": identifier},
        },
        "MedicationRequest.groupIdentifier": {
            "resourceType": "MedicationRequest",
            **order,
            "medicationCodeableConcept": {"text": "paracetamol 500 mg"},
            "groupIdentifier": identifier,
        },
        "ServiceRequest.requisition": {
            "resourceType": "ServiceRequest",
            **order,
            "code": {"text": "HbA1c"},
            "requisition": identifier,
        },
        "DocumentReference.masterIdentifier": {
            "resourceType": "DocumentReference",
            "status": "current",
            **subject,
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
            "masterIdentifier": identifier,
        },
    }
    return bodies[place]


PLACES = [
    "Patient.extension",
    "Patient._gender",
    "Patient.name._family",
    "Observation.extension",
    "Appointment.extension",
    "Encounter.hospitalization.preAdmissionIdentifier",
    "MedicationRequest.groupIdentifier",
    "ServiceRequest.requisition",
    "DocumentReference.masterIdentifier",
]


@pytest.mark.parametrize("place", PLACES)
def test_an_hkid_in_any_identifier_but_patient_identifier_is_refused(
    group: Group, api: FhirTestClient, place: str
) -> None:
    """Stop 65: an HKID as an extension's ``valueIdentifier`` (on the record or on one of
    its primitives) or in an element of type Identifier not named ``identifier`` was
    stored (201), and a front desk and billing read it back; it is refused as it is in
    ``Observation.identifier``, naming the element. The same record holding a record
    number there is written."""
    hkid = {"system": HKID_SYSTEM, "value": group.tm_patient.hkid}
    body = _written_anywhere(group, place, hkid)
    path = f"/fhir/{body['resourceType']}"
    before = api.get(f"{path}?_summary=count").json()["total"]

    refused = api.post_json(path, body)

    assert refused.status_code == 422, refused.text
    [issue] = refused.json()["issue"]
    assert issue["code"] == "business-rule"
    assert "Patient.identifier" in issue["diagnostics"]
    assert issue["expression"][0].startswith(place.split(".")[0] + ".")
    assert group.tm_patient.hkid not in refused.text
    assert api.get(f"{path}?_summary=count").json()["total"] == before
    ordinary = _written_anywhere(group, place, {"system": "urn:oid:1.2.3.4", "value": "ORD-7"})
    assert api.post_json(path, ordinary).status_code == 201


JSON_PATCH = {"content-type": "application/json-patch+json"}
MERGE_PATCH = {"content-type": "application/merge-patch+json"}


@pytest.mark.parametrize("media", [JSON_PATCH, MERGE_PATCH], ids=["json-patch", "merge-patch"])
def test_a_patch_adding_an_hkid_extension_is_refused(
    group: Group, api: FhirTestClient, media: dict[str, str]
) -> None:
    """A patch is judged as the record it makes: adding the extension to the patient is
    refused as writing it would be, and the stored version stays."""
    path = f"/fhir/Patient/{group.tm_patient.id}"
    stored = api.get(path).json()
    extension = [_alt({"system": HKID_SYSTEM, "value": group.tm_patient.hkid})]
    body: Any = (
        [{"op": "add", "path": "/extension", "value": extension}]
        if media is JSON_PATCH
        else {"extension": extension}
    )

    refused = api.patch(path, content=json.dumps(body).encode(), headers=media)

    assert refused.status_code == 422, refused.text
    assert "Patient.extension[0].valueIdentifier" in refused.text
    assert group.tm_patient.hkid not in refused.text
    assert api.get(path).json()["meta"]["versionId"] == stored["meta"]["versionId"]


#: Stop 66: government numbers of other countries as a feed sends them (the system, no
#: type coding); only the HKID system and ``passport-HKG`` counted before.
OTHER_COUNTRIES: dict[str, dict[str, str]] = {
    "passport-CHN": {"system": "http://hl7.org/fhir/sid/passport-CHN", "value": "E98765432"},
    "passport-USA": {"system": "http://hl7.org/fhir/sid/passport-USA", "value": "598765432"},
    "passport-USA-oid": {"system": "urn:oid:2.16.840.1.113883.4.330.840", "value": "598765432"},
    "us-ssn": {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "598-76-5432"},
}
#: Stop 66: an HKID spelt as people and legacy feeds spell it, under a local system.
SPELT_OTHERWISE = {
    "dash": "K987654-5",
    "named": "HKID K987654(5)",
    "zero-width-space": "K987\u200b654(5)",
    # Adversary round 85: with what surrounds it in records, or a look-alike letter.
    "full-stop": "K987654(5).",
    "dependant": "K987654(5)-01",
    "square-brackets": "K987654[5]",
    "cyrillic-ka": "\u041a987654(5)",
    # Review of stop 67: spaces inside the serial, read plainly by the rule of round 85.
    "spaced": "K987 654 5",
}
LOCAL = "urn:oid:2.16.344.1.99"


def _registered(**more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["John"]}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
        **more,
    }


def _numbers() -> dict[str, dict[str, str]]:
    spelt = {f"hkid-{k}": {"system": LOCAL, "value": v} for k, v in SPELT_OTHERWISE.items()}
    return {**OTHER_COUNTRIES, **spelt}


@pytest.mark.parametrize("number", sorted(_numbers()))
@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.BILLING])
def test_another_countrys_number_or_a_spelt_hkid_is_withheld_from_the_desk_and_billing(
    group: Group, api: FhirTestClient, number: str, role: Role
) -> None:
    identifier = _numbers()[number]
    created = api.post_json("/fhir/Patient", _registered(identifier=[identifier]))
    assert created.status_code == 201, created.text
    reader = make_staff(group.services, role, [TM])

    shown = group.call(reader, "GET", f"/fhir/Patient/{created.json()['id']}")
    found = group.call(reader, "GET", "/fhir/Patient?family=Smith")

    assert shown.status_code == 200, shown.text
    assert found.status_code == 200, found.text
    digits = identifier["value"][1:7]
    assert digits not in shown.text, f"{role} read {shown.json().get('identifier')}"
    assert digits not in found.text
    # The clinic's doctor, who may read government numbers, reads it.
    doctor = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{created.json()['id']}")
    assert (
        doctor.status_code == 200 and identifier["value"] in doctor.json()["identifier"][0]["value"]
    )


@pytest.mark.parametrize("number", sorted(_numbers()))
def test_another_countrys_number_or_a_spelt_hkid_is_refused_outside_patient_identifier(
    group: Group, api: FhirTestClient, number: str
) -> None:
    identifier = _numbers()[number]
    in_extension = api.post_json("/fhir/Patient", _registered(extension=[_alt(identifier)]))
    practitioner = api.post_json(
        "/fhir/Practitioner",
        {"resourceType": "Practitioner", "identifier": [identifier], "name": [{"family": "Ho"}]},
    )

    assert (in_extension.status_code, practitioner.status_code) == (422, 422)
    assert "Patient.extension[0].valueIdentifier" in in_extension.text
    assert "Practitioner.identifier[0]" in practitioner.text
    for answer in (in_extension, practitioner):
        assert identifier["value"] not in answer.text
        assert identifier["value"][1:7] not in answer.text


def test_a_bare_number_without_its_check_digit_under_the_hkid_system_is_refused(
    api: FhirTestClient,
) -> None:
    """Under a local system ``K987654`` is a record number like any other (kept, shown);
    under the HKID system it is no valid HKID (422), as before stop 66."""
    refused = api.post_json(
        "/fhir/Patient", _registered(identifier=[{"system": HKID_SYSTEM, "value": "K987654"}])
    )
    assert refused.status_code == 422, refused.text
    assert "not a valid HKID number" in refused.text and "K987654" not in refused.text
    kept = api.post_json(
        "/fhir/Patient", _registered(identifier=[{"system": LOCAL, "value": "K987654"}])
    )
    assert kept.status_code == 201, kept.text


@pytest.mark.parametrize("spelling", ["K987654(5)", "K987654-5", "HKID K987654(5)"])
def test_an_hkid_as_a_coverage_subscriber_id_is_refused(
    group: Group, api: FhirTestClient, spelling: str
) -> None:
    """Stop 66: ``Coverage.subscriberId`` is a string in R4, read by billing (who may not
    read HKIDs); an HKID there is refused as in any Identifier outside
    ``Patient.identifier``, the element named and the number not quoted. An insurer's
    member number is written."""
    patient = group.tm_patient.id
    before = api.get("/fhir/Coverage?_summary=count").json()["total"]

    refused = api.post_json(
        "/fhir/Coverage", coverage(patient, {"text": "private"}, subscriberId=spelling)
    )

    assert refused.status_code == 422, refused.text
    [issue] = refused.json()["issue"]
    assert issue["expression"] == ["Coverage.subscriberId"]
    assert "Patient.identifier" in issue["diagnostics"]
    assert "987654" not in refused.text
    assert api.get("/fhir/Coverage?_summary=count").json()["total"] == before
    kept = api.post_json("/fhir/Coverage", coverage(patient, {"text": "private"}))
    assert kept.status_code == 201, kept.text


@pytest.mark.parametrize("media", [JSON_PATCH, MERGE_PATCH], ids=["json-patch", "merge-patch"])
def test_a_patch_or_a_transaction_putting_an_hkid_in_subscriber_id_is_refused(
    group: Group, api: FhirTestClient, media: dict[str, str]
) -> None:
    patient = group.tm_patient.id
    made = api.post_json("/fhir/Coverage", coverage(patient, {"text": "private"}))
    assert made.status_code == 201, made.text
    path = f"/fhir/Coverage/{made.json()['id']}"
    body: Any = (
        [{"op": "replace", "path": "/subscriberId", "value": "K987654-5"}]
        if media is JSON_PATCH
        else {"subscriberId": "K987654-5"}
    )

    patched = api.patch(path, content=json.dumps(body).encode(), headers=media)
    bundle = api.post_json(
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": coverage(patient, {"text": "private"}, subscriberId="K987654(5)"),
                    "request": {"method": "POST", "url": "Coverage"},
                }
            ],
        },
    )

    assert patched.status_code == 422, patched.text
    assert "Coverage.subscriberId" in patched.text and "987654" not in patched.text
    assert api.get(path).json()["meta"]["versionId"] == made.json()["meta"]["versionId"]
    # A transaction's entry refused by a content rule fails the Bundle (400), naming it.
    assert bundle.status_code == 400, bundle.text
    [issue] = bundle.json()["issue"]
    assert issue["code"] == "business-rule" and "Coverage.subscriberId" in issue["diagnostics"]
    assert "987654" not in bundle.text


def test_a_search_by_a_foreign_passport_system_alone_is_refused_to_the_desk(
    group: Group, api: FhirTestClient
) -> None:
    """``identifier=<system>|`` of a government system lists who holds such a number: a
    role that may not read government ids is refused it on every type (on Patient, any
    system alone), passports of every country now among them."""
    desk = make_staff(group.services, Role.FRONT_DESK, [TM])
    system = "http://hl7.org/fhir/sid/passport-CHN"

    on_booking = group.call(desk, "GET", f"/fhir/Appointment?identifier={system}|")
    local = group.call(desk, "GET", f"/fhir/Appointment?identifier={LOCAL}|")

    assert on_booking.status_code == 403, on_booking.text
    assert local.status_code == 200, local.text


@pytest.mark.parametrize(
    ("resource_type", "identifier"),
    [
        ("Encounter", {"system": "http://tm.example.hk/sid/icu-admission", "value": "ICU2024003"}),
        ("Encounter", {"system": "http://tm.example.hk/sid/claim", "value": "CL123456-1"}),
        (
            "DiagnosticReport",
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": "ACSN"}]},
                "system": "http://lab.example.hk/sid/accession",
                "value": "M123456-2",
            },
        ),
        # Adversary round 85: two letters and seven digits, the last no check digit of
        # the rest: refused whatever its system before.
        ("Encounter", {"system": "http://tm.example.hk/sid/visit", "value": "VN1234567"}),
        ("Encounter", {"system": "http://tm.example.hk/sid/claim", "value": "CL2024117"}),
    ],
    ids=["icu-admission", "claim-suffix", "accession-suffix", "visit", "claim"],
)  # fmt: skip
def test_a_clinics_own_numbers_shaped_like_a_spelt_hkid_are_written(
    group: Group, resource_type: str, identifier: dict[str, Any]
) -> None:
    """Review of stop 66: the card's name was read after spaces were folded away, so an
    ICU admission number (``IC`` then ``U2024003``) was an HKID, and so was any number
    with a dash before its last digit (an accession's container, a claim's resubmission),
    whatever the check digit: a doctor's Encounter or report carrying one was refused
    (422), written before. Those spellings count only with a check digit that matches."""
    if resource_type == "Encounter":
        body = encounter(group.tm_patient.id, TM, "dr-tm")
    else:
        body = {"resourceType": "DiagnosticReport", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "630-4"}]},
                "subject": {"reference": f"Patient/{group.tm_patient.id}"}}  # fmt: skip
    body["identifier"] = [identifier]
    created = group.call(group.doctor_tm, "POST", f"/fhir/{resource_type}", body)
    assert created.status_code == 201, created.text
    read = group.call(group.doctor_tm, "GET", f"/fhir/{resource_type}/{created.json()['id']}")
    assert read.json()["identifier"][0]["value"] == identifier["value"]


def test_a_hospital_number_shaped_like_an_hkid_is_shown_to_the_desk(
    group: Group, api: FhirTestClient
) -> None:
    """Adversary round 85: a hospital number of two letters and seven digits, under the
    clinic's own system, was withheld from the desk that registers patients by it, as
    an HKID would be; its last digit is no check digit of the rest."""
    number = {"system": "http://tm.example.hk/sid/mrn", "value": "HN1234567"}
    created = api.post_json("/fhir/Patient", _registered(identifier=[number]))
    assert created.status_code == 201, created.text
    desk = make_staff(group.services, Role.FRONT_DESK, [TM])
    shown = group.call(desk, "GET", f"/fhir/Patient/{created.json()['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["identifier"] == [number]
