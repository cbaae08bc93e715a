"""A contained resource counts as what it is, not as its container: a front desk that may
read a patient's demographics is not shown the HIV result contained in the Patient, and
may not put a clinical record there; billing sees a claim's contained Coverage but not
its contained referral; what a caller could not see is kept, as it was, by its update;
a pharmacist's prescription with its contained Medication is read and written as it was
before. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from carevault.domain.roles import Role
from carevault.fhir import jsonio
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.access.group import TM, Group, encounter
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff
from tests.support.synthea import BUNDLES

SUBSETTED = "SUBSETTED"
HIV_TEST = {"system": "http://loinc.org", "code": "75622-1", "display": "HIV 1 and 2 tests"}
HIV_RESULT = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [HIV_TEST], "text": "HIV positive"},
}
#: What a front desk may read (domain/roles.py): none of it health or an HKID.
DESK_READS = {"identity", "contact", "demographic", "visit"}


def _labels(resource: dict[str, Any]) -> list[str]:
    return [label.get("code", "") for label in resource.get("meta", {}).get("security", [])]


def _stored(api: FhirTestClient, reference: str) -> bytes:
    """The stored bytes of ``reference``, as the system reads them (nothing cut)."""
    response = api.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    return bytes(response.content)


def _patch(group: Group, who: Staff, url: str, operations: list[dict[str, Any]]) -> Any:
    headers = {**who.headers, "content-type": "application/json-patch+json"}
    return group.web.request("PATCH", url, content=json.dumps(operations), headers=headers)


def _last(group: Group, who: Staff, tag: Tag) -> AuditEvent:
    principal = f"staff:{who.account.username}"
    return [event for event in group.events(tag) if event.principal == principal][-1]


def _patient_with_hiv_result(api: FhirTestClient) -> str:
    """A patient of the insider's clinic whose record contains an HIV result."""
    made = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Ho", "given": ["Ka Yan"]}],
            "telecom": [{"system": "phone", "value": "+852 9876 5432"}],
            "contained": [HIV_RESULT],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert made.status_code == 201, made.text
    patient: str = made.json()["id"]
    # A visit at the clinic: its clinicians care for the patient.
    assert api.post_json("/fhir/Encounter", encounter(patient, TM)).status_code == 201
    return patient


def test_the_desk_is_not_shown_an_hiv_result_contained_in_a_patient(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: ``contained`` took the Patient's category (identity), so the desk read the
    HIV result in full, by read, search, a view and $everything."""
    patient = _patient_with_hiv_result(api)
    desk = group.desk_tm

    for path in (
        f"/fhir/Patient/{patient}",
        f"/fhir/Patient/{patient}?_elements=contained,name",
        f"/fhir/Patient?_id={patient}",
        f"/fhir/Patient/{patient}/$everything",
    ):
        response = group.call(desk, "GET", path)
        assert response.status_code == 200, response.text
        assert "HIV" not in response.text and "75622-1" not in response.text, path
        body = response.json()
        shown = body["entry"][0]["resource"] if body["resourceType"] == "Bundle" else body
        assert "contained" not in shown, path
        assert SUBSETTED in _labels(shown), path
        assert shown["name"][0]["family"] == "Ho"

    read = _last(group, desk, Tag.FHIR_READ)
    assert read.outcome is Outcome.SUCCESS
    assert set(read.categories) <= DESK_READS
    for tag in (Tag.FHIR_SEARCH, Tag.FHIR_EVERYTHING):
        assert set(_last(group, desk, tag).categories) <= DESK_READS
    # The doctor who cares for the patient is shown it, and the ledger says so.
    doctor = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}")
    assert doctor.json()["contained"] == [HIV_RESULT]
    assert SUBSETTED not in _labels(doctor.json())
    assert "sensitive_clinical" in _last(group, group.doctor_tm, Tag.FHIR_READ).categories


def _synthea_claim(patient: str) -> dict[str, Any]:
    """A Synthea ExplanationOfBenefit (its contained referral and Coverage as Synthea
    writes them), made this group's patient's at the insider's clinic."""
    bundle = json.loads(BUNDLES[0].read_text())
    patient_urn = next(
        entry["fullUrl"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Patient"
    )
    (claim,) = [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "ExplanationOfBenefit"
    ][:1]
    text = json.dumps(claim).replace(patient_urn, f"Patient/{patient}")
    made: dict[str, Any] = json.loads(text)
    made.pop("id")
    made["provider"] = {"reference": f"Organization/{TM}"}
    assert [item["resourceType"] for item in made["contained"]] == ["ServiceRequest", "Coverage"]
    return made


def test_billing_sees_a_claims_contained_coverage_but_not_its_referral(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: billing read an ExplanationOfBenefit's contained ServiceRequest (clinical)."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    claim = _synthea_claim(group.tm_patient.id)
    made = api.post_json("/fhir/ExplanationOfBenefit", claim)
    assert made.status_code == 201, made.text
    reference = f"ExplanationOfBenefit/{made.json()['id']}"

    shown = group.call(billing, "GET", f"/fhir/{reference}")

    assert shown.status_code == 200, shown.text
    assert [item["resourceType"] for item in shown.json()["contained"]] == ["Coverage"]
    assert SUBSETTED in _labels(shown.json())
    assert set(_last(group, billing, Tag.FHIR_READ).categories) == {"financial"}
    whole = json.loads(_stored(api, reference))
    assert [item["resourceType"] for item in whole["contained"]] == ["ServiceRequest", "Coverage"]


def test_billing_may_not_write_a_claims_clinical_contained_referral(
    group: Group, api: FhirTestClient
) -> None:
    """Billing writes financial records only: a Synthea claim with its contained referral
    (clinical) is refused to billing as any clinical write is; without it (and without
    its diagnoses and procedures, clinical too), it is billing's to write. The
    integration account that loads Synthea may write both."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    claim = _synthea_claim(group.tm_patient.id)

    refused = group.call(billing, "POST", "/fhir/ExplanationOfBenefit", claim)
    financial = {**claim, "contained": claim["contained"][1:]}
    for clinical in ("referral", "diagnosis", "procedure"):
        financial.pop(clinical, None)
    allowed = group.call(billing, "POST", "/fhir/ExplanationOfBenefit", financial)

    assert refused.status_code == 403, refused.text
    assert allowed.status_code == 201, allowed.text
    found = api.get(f"/fhir/ExplanationOfBenefit?patient={group.tm_patient.id}").json()
    assert [entry["resource"]["id"] for entry in found.get("entry", [])] == [allowed.json()["id"]]


def test_the_desk_may_not_put_a_clinical_record_inside_a_patient(
    group: Group, api: FhirTestClient
) -> None:
    """Hole: the desk wrote clinical data by putting it in a Patient's ``contained``."""
    desk = group.desk_tm
    ordinary = {**HIV_RESULT, "code": {"text": "HbA1c 7.2 %"}}
    new = {
        "resourceType": "Patient",
        "name": [{"family": "Yip"}],
        "contained": [ordinary],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    url = f"/fhir/Patient/{group.tm_patient.id}"
    before = _stored(api, f"Patient/{group.tm_patient.id}")
    view = group.call(desk, "GET", url).json()
    for mark in ("security", "tag"):  # SUBSETTED in both: without either, not a view
        view["meta"].pop(mark)

    created = group.call(desk, "POST", "/fhir/Patient", new)
    updated = group.call(desk, "PUT", url, {**view, "contained": [ordinary]})
    patched = _patch(group, desk, url, [{"op": "add", "path": "/contained", "value": [ordinary]}])

    for refused in (created, updated, patched):
        assert refused.status_code == 403, refused.text
    assert api.get("/fhir/Patient?family=Yip").json().get("total") == 0
    assert _stored(api, f"Patient/{group.tm_patient.id}") == before
    denied = [e for e in group.events() if e.principal == f"staff:{desk.account.username}"]
    assert [e.outcome for e in denied if e.tag in (Tag.FHIR_CREATE, Tag.FHIR_UPDATE)] == [
        Outcome.DENIED,
        Outcome.DENIED,
        Outcome.DENIED,
    ]


def test_the_desks_update_keeps_the_contained_result_it_could_not_see(
    group: Group, api: FhirTestClient
) -> None:
    """The desk saves back its view with a new phone number (PUT and PATCH, labelled or
    not): the contained result stays, byte for byte, and is not handed back; sending a
    resource of its own under the result's id (to replace it) is refused."""
    patient = _patient_with_hiv_result(api)
    url = f"/fhir/Patient/{patient}"
    held = jsonio.dumps([HIV_RESULT])
    desk = group.desk_tm
    view = group.call(desk, "GET", url).json()
    marks = ("security", "tag")  # SUBSETTED is in both: without either, not a view
    unlabelled = {**view, "meta": {k: v for k, v in view["meta"].items() if k not in marks}}

    put = group.call(
        desk, "PUT", url, {**unlabelled, "telecom": [{"system": "phone", "value": "1"}]}
    )
    labelled = group.call(
        desk, "PUT", url, {**view, "telecom": [{"system": "phone", "value": "2"}]}
    )
    patch = [{"op": "replace", "path": "/telecom/0/value", "value": "3"}]
    patched = _patch(group, desk, url, patch)

    for answer in (put, labelled, patched):
        assert answer.status_code == 200, answer.text
        assert "HIV" not in answer.text and "contained" not in answer.json()
    stored = _stored(api, f"Patient/{patient}")
    assert f'"contained":{held.decode()}'.encode() in stored
    assert json.loads(stored)["telecom"] == [{"system": "phone", "value": "3"}]
    assert all(json.loads(stored)["meta"].get(mark) is None for mark in marks)

    impostor = {"resourceType": "Practitioner", "id": "o1", "name": [{"family": "Fake"}]}
    current = group.call(desk, "GET", url).json()
    for mark in marks:
        current["meta"].pop(mark)
    replacing = group.call(desk, "PUT", url, {**current, "contained": [impostor]})
    assert replacing.status_code == 403, replacing.text
    assert "o1" not in replacing.text and "Observation" not in replacing.text
    assert _stored(api, f"Patient/{patient}") == stored
    mine = {**impostor, "id": "pr1"}
    added = group.call(desk, "PUT", url, {**current, "contained": [mine]})
    assert added.status_code == 200, added.text
    assert json.loads(_stored(api, f"Patient/{patient}"))["contained"] == [HIV_RESULT, mine]


def test_a_pharmacists_prescription_with_a_contained_medication_is_as_before(
    group: Group,
) -> None:
    """A Medication is no one's patient data: contained in a prescription it is part of
    it (medication), which the pharmacist writes and reads in full. Labelled SUBSETTED,
    as every prescription the pharmacist reads is: a prescription may hold sensitive
    data, which the pharmacist may not see, so its narrative is never shown to them."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    prescription = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {"text": "metformin"}}],
        "medicationReference": {"reference": "#m1"},
        "subject": {"reference": f"Patient/{group.tm_patient.id}"},
        "authoredOn": "2026-11-30T09:00:00+08:00",
    }

    made = group.call(pharmacist, "POST", "/fhir/MedicationRequest", prescription)
    assert made.status_code == 201, made.text
    url = f"/fhir/MedicationRequest/{made.json()['id']}"
    read = group.call(pharmacist, "GET", url).json()
    read["contained"][0]["code"]["text"] = "metformin 500 mg"
    changed = group.call(pharmacist, "PUT", url, read)

    assert changed.status_code == 200, changed.text
    again = group.call(pharmacist, "GET", url).json()
    assert again["contained"][0]["code"]["text"] == "metformin 500 mg"
    assert _labels(again) == [SUBSETTED]
    assert set(_last(group, pharmacist, Tag.FHIR_READ).categories) == {"medication"}
    assert set(_last(group, pharmacist, Tag.FHIR_UPDATE).categories) == {"medication"}


def test_billings_patch_and_view_of_a_claim_keep_the_referral_in_its_place(
    group: Group, api: FhirTestClient
) -> None:
    """Billing's view holds the claim's Coverage at ``/contained/0``; the referral it does
    not see is stored before it. A JSON Patch of that path changes the Coverage, not the
    referral; removing ``contained`` from its view leaves the referral alone; a labelled
    ``_elements`` view saved back names what billing saw and would erase (its Coverage),
    never the referral. Removing the Coverage that ``insurance`` still refers to is
    refused (R4 ref-1), by the element billing sees, never by the referral's."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    made = api.post_json("/fhir/ExplanationOfBenefit", _synthea_claim(group.tm_patient.id))
    assert made.status_code == 201, made.text
    reference = f"ExplanationOfBenefit/{made.json()['id']}"
    url = f"/fhir/{reference}"
    referral = json.loads(_stored(api, reference))["contained"][0]

    patched = _patch(
        group,
        billing,
        url,
        [{"op": "replace", "path": "/contained/0/status", "value": "cancelled"}],
    )

    assert patched.status_code == 200, patched.text
    stored = json.loads(_stored(api, reference))["contained"]
    assert stored[0] == referral and stored[1]["resourceType"] == "Coverage"
    assert stored[1]["status"] == "cancelled"
    view = group.call(billing, "GET", f"{url}?_elements=status").json()
    erasing = group.call(billing, "PUT", url, view)
    assert erasing.status_code == 422, erasing.text
    assert "contained" in erasing.text and "ServiceRequest" not in erasing.text
    dangling = _patch(group, billing, url, [{"op": "remove", "path": "/contained"}])
    assert dangling.status_code == 400, dangling.text
    [issue] = dangling.json()["issue"]
    assert issue["expression"] == ["ExplanationOfBenefit.insurance[0].coverage.reference"]
    assert "ref-1" in issue["diagnostics"]
    assert "referral" not in dangling.text and "ServiceRequest" not in dangling.text
    self_pay = {"display": "self-pay"}
    removed = _patch(
        group,
        billing,
        url,
        [
            {"op": "remove", "path": "/contained"},
            {"op": "replace", "path": "/insurance/0/coverage", "value": self_pay},
        ],
    )
    assert removed.status_code == 200, removed.text
    assert json.loads(_stored(api, reference))["contained"] == [referral]


def test_a_view_saved_back_by_the_desk_does_not_name_what_it_could_not_see(
    group: Group, api: FhirTestClient
) -> None:
    """The desk saves back its ``_elements=name`` view of a patient whose record contains
    an HIV result: refused for the telecom it would erase, and ``contained``, which the
    desk was never shown, is not named."""
    patient = _patient_with_hiv_result(api)
    url = f"/fhir/Patient/{patient}"
    view = group.call(group.desk_tm, "GET", f"{url}?_elements=name").json()

    erasing = group.call(group.desk_tm, "PUT", url, view)

    assert erasing.status_code == 422, erasing.text
    assert "telecom" in erasing.text and "contained" not in erasing.text


def test_a_contained_resource_that_cannot_be_told_is_kept_from_all_but_the_most_trusted(
    group: Group, api: FhirTestClient
) -> None:
    """A contained resource of a type CareVault does not hold (Basic: anything at all)
    counts as sensitive_clinical: the desk may neither write nor see one, the doctor who
    cares for the patient may; one with no resourceType is not a resource (400)."""
    unknown = {"resourceType": "Basic", "id": "b1", "code": {"text": "anything at all"}}
    stored = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": "Kwok"}],
            "contained": [unknown],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert stored.status_code == 201, stored.text
    assert api.post_json("/fhir/Encounter", encounter(stored.json()["id"], TM)).status_code == 201
    url = f"/fhir/Patient/{stored.json()['id']}"
    new = {"resourceType": "Patient", "name": [{"family": "Kwok"}]}

    desk_reads = group.call(group.desk_tm, "GET", url)
    doctor_reads = group.call(group.doctor_tm, "GET", url)
    desk_writes = group.call(
        group.desk_tm, "POST", "/fhir/Patient", {**new, "contained": [unknown]}
    )
    untyped = {key: value for key, value in unknown.items() if key != "resourceType"}
    malformed = group.call(group.desk_tm, "POST", "/fhir/Patient", {**new, "contained": [untyped]})

    assert "anything at all" not in desk_reads.text and "contained" not in desk_reads.json()
    assert SUBSETTED in _labels(desk_reads.json())
    assert doctor_reads.json()["contained"] == [unknown]
    assert desk_writes.status_code == 403, desk_writes.text
    assert malformed.status_code == 400, malformed.text
