"""Why a patient came is clinical data, though a visit, a booking or a claim holds it
(an insider's pass): a front desk, which books visits, neither reads nor writes their
reasons and diagnoses; billing sees a claim's amounts, not its diagnoses; a role that
may not see sensitive records is shown a visit without its HIV reason, and a coverage
without its type when that names an HIV programme. A write that
sends such an element is refused and changes nothing, even when it sends back what the
record holds (being allowed would confirm the guess)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import (
    EXTENDED_HEALTHCARE,
    FEE_LINE,
    FLU,
    HIV,
    HIV_PROGRAMME,
    HIV_TEST_LINE,
    TM,
    Group,
    booked_today,
    build_group,
    coverage,
    created,
    encounter,
    self_paid_claim,
)
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

SUBSETTED = "SUBSETTED"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _labels(resource: dict[str, Any]) -> list[str]:
    return [label["code"] for label in resource.get("meta", {}).get("security", [])]


def _refused_as_sensitive(group: Group, who: Staff, *queries: str) -> None:
    """Each search is refused (403) as one for a sensitive code: which records match
    would tell ``who`` what its reads withhold."""
    for query in queries:
        refused = group.call(who, "GET", f"/fhir/{query}")
        assert refused.status_code == 403, (query, refused.text)
        assert "sensitive code" in refused.json()["issue"][0]["diagnostics"]


def _stored(api: FhirTestClient, reference: str) -> dict[str, Any]:
    response = api.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_desk_may_not_book_a_visit_with_a_reason(group: Group, api: FhirTestClient) -> None:
    patient = group.tm_patient.id
    before = api.get(f"/fhir/Appointment?patient={patient}").json().get("total", 0)
    visit = {**encounter(patient, TM), "diagnosis": [{"condition": {"display": "influenza"}}]}

    booked = group.call(
        group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM, reasonCode=[FLU])
    )
    put = group.call(
        group.desk_tm,
        "PUT",
        "/fhir/Appointment/desk-guess",
        booked_today(patient, TM, id="desk-guess", reasonReference=[{"reference": "Condition/x"}]),
    )
    recorded = group.call(group.desk_tm, "POST", "/fhir/Encounter", visit)

    assert booked.status_code == put.status_code == recorded.status_code == 403, booked.text
    assert "clinical" in booked.json()["issue"][0]["diagnostics"]
    assert api.get(f"/fhir/Appointment?patient={patient}").json().get("total", 0) == before
    assert api.get("/fhir/Appointment/desk-guess").status_code == 404
    refusals = [e for e in group.events() if e.outcome is not Outcome.SUCCESS]
    assert len(refusals) >= 3
    # Without the reason, the desk books as ever.
    plain = group.call(group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient, TM))
    assert plain.status_code == 201, plain.text


def test_the_desk_reads_a_booking_without_its_reason(group: Group, api: FhirTestClient) -> None:
    patient = group.tm_patient.id
    booking = created(api, booked_today(patient, TM, reasonCode=[FLU]))

    shown = group.call(group.desk_tm, "GET", f"/fhir/Appointment/{booking}")
    found = group.call(group.desk_tm, "GET", f"/fhir/Appointment?patient={patient}")
    doctor = group.call(group.doctor_tm, "GET", f"/fhir/Appointment/{booking}")

    assert shown.status_code == 200, shown.text
    assert "reasonCode" not in shown.json()
    assert SUBSETTED in _labels(shown.json())
    (entry,) = found.json()["entry"]
    assert "reasonCode" not in entry["resource"] and SUBSETTED in _labels(entry["resource"])
    read = [e for e in group.events(Tag.FHIR_READ) if e.resource_id == booking][0]
    assert "clinical" not in read.categories
    assert doctor.json()["reasonCode"] == [FLU]
    assert SUBSETTED not in _labels(doctor.json())


def test_the_desk_reschedules_without_learning_or_changing_the_reason(
    group: Group, api: FhirTestClient
) -> None:
    patient = group.tm_patient.id
    booking = created(api, booked_today(patient, TM, reasonCode=[FLU]))
    path = f"/fhir/Appointment/{booking}"
    view = group.call(group.desk_tm, "GET", path).json()

    moved = group.call(group.desk_tm, "PUT", path, {**view, "status": "cancelled"})

    assert moved.status_code == 200, moved.text
    assert "reasonCode" not in moved.json()
    stored = _stored(api, f"Appointment/{booking}")
    assert (stored["status"], stored["reasonCode"]) == ("cancelled", [FLU])
    # Sending a reason, whether the one stored (a guess confirmed by being allowed) or
    # another, is refused and changes nothing.
    for reason in (FLU, HIV):
        guess = group.call(group.desk_tm, "PUT", path, {**view, "reasonCode": [reason]})
        assert guess.status_code == 403, guess.text
    # A booking may hold a reason: the desk cancels it (above), it does not delete it.
    assert group.call(group.desk_tm, "DELETE", path).status_code == 403
    assert _stored(api, f"Appointment/{booking}") == stored


def test_the_desk_is_shown_a_booking_without_its_hiv_label_and_keeps_it_on_an_update(
    group: Group, api: FhirTestClient
) -> None:
    """A booking another system labelled with the HIV sensitivity policy (v3 ActCode
    ``HIV`` in ``meta.security``): the label tells a front desk what a withheld reason
    would, so its view goes without it (SUBSETTED); its reschedule keeps the label it was
    not shown; a doctor sees it."""
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}
    booking = created(api, {**booked_today(group.tm_patient.id, TM), "meta": {"security": [label]}})
    path = f"/fhir/Appointment/{booking}"

    view = group.call(group.desk_tm, "GET", path).json()
    found = group.call(group.desk_tm, "GET", f"/fhir/Appointment?_id={booking}").json()
    moved = group.call(group.desk_tm, "PUT", path, {**view, "status": "cancelled"})

    assert _labels(view) == [SUBSETTED]
    assert _labels(found["entry"][0]["resource"]) == [SUBSETTED]
    assert moved.status_code == 200, moved.text
    assert _labels(moved.json()) == [SUBSETTED]
    stored = _stored(api, f"Appointment/{booking}")
    assert (stored["status"], _labels(stored)) == ("cancelled", ["HIV"])
    assert _labels(group.call(group.doctor_tm, "GET", path).json()) == ["HIV"]


def test_a_delete_is_judged_on_what_the_record_holds(group: Group, api: FhirTestClient) -> None:
    """A booking with no reason is visit data, which the desk writes: it deletes it (a
    booking made in error). A physician deletes a visit they may write whatever care
    window has passed, as long as it holds no clinical element."""
    patient = group.tm_patient.id
    plain = created(api, booked_today(patient, TM))
    assert group.call(group.desk_tm, "DELETE", f"/fhir/Appointment/{plain}").status_code == 204
    assert api.get(f"/fhir/Appointment/{plain}").status_code == 410
    visit = created(api, encounter(patient, TM))
    assert group.call(group.desk_tm, "DELETE", f"/fhir/Encounter/{visit}").status_code == 204
    with_reason = created(api, {**encounter(patient, TM), "reasonCode": [FLU]})
    refused = group.call(group.desk_tm, "DELETE", f"/fhir/Encounter/{with_reason}")
    assert refused.status_code == 403, refused.text
    assert api.get(f"/fhir/Encounter/{with_reason}").status_code == 200


def test_billing_sees_and_writes_a_claim_without_its_diagnoses(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    diagnosis = [{"sequence": 1, "diagnosisCodeableConcept": FLU}]
    claim = created(api, self_paid_claim(patient, diagnosis=diagnosis))
    path = f"/fhir/Claim/{claim}"

    shown = group.call(billing, "GET", path)
    written = group.call(
        billing, "POST", "/fhir/Claim", self_paid_claim(patient, diagnosis=diagnosis)
    )
    updated = group.call(billing, "PUT", path, {**shown.json(), "status": "cancelled"})
    guessed = group.call(billing, "PUT", path, {**shown.json(), "diagnosis": diagnosis})

    assert shown.status_code == 200, shown.text
    assert "diagnosis" not in shown.json() and SUBSETTED in _labels(shown.json())
    assert written.status_code == 403, written.text
    assert updated.status_code == 200, updated.text
    assert guessed.status_code == 403, guessed.text
    stored = _stored(api, f"Claim/{claim}")
    assert (stored["status"], stored["diagnosis"]) == ("cancelled", diagnosis)
    plain = group.call(billing, "POST", "/fhir/Claim", self_paid_claim(patient))
    assert plain.status_code == 201, plain.text


def test_a_visits_sensitive_reason_is_cut_from_who_may_not_see_sensitive_records(
    group: Group, api: FhirTestClient
) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    patient = group.tm_patient.id
    sensitive = created(api, booked_today(patient, TM, reasonCode=[HIV]))
    ordinary = created(api, booked_today(patient, TM, reasonCode=[FLU]))

    hidden = group.call(pharmacist, "GET", f"/fhir/Appointment/{sensitive}")
    shown = group.call(pharmacist, "GET", f"/fhir/Appointment/{ordinary}")

    assert hidden.status_code == 200, hidden.text
    assert "reasonCode" not in hidden.json() and SUBSETTED in _labels(hidden.json())
    assert shown.json()["reasonCode"] == [FLU]
    assert group.call(group.doctor_tm, "GET", f"/fhir/Appointment/{sensitive}").json()[
        "reasonCode"
    ] == [HIV]


#: A visit typed as HIV care (SNOMED CT 86406008, HIV infection), a booking for it.
HIV_TYPE = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}


def test_a_sensitive_code_in_a_visits_type_is_cut_and_may_not_be_searched_for(
    group: Group, api: FhirTestClient
) -> None:
    patient = group.tm_patient.id
    visit = created(api, {**encounter(patient, TM), "type": [HIV_TYPE]})
    booking = created(api, booked_today(patient, TM, serviceType=[HIV_TYPE]))

    for reference in (f"Encounter/{visit}", f"Appointment/{booking}"):
        shown = group.call(group.desk_tm, "GET", f"/fhir/{reference}")
        assert shown.status_code == 200, shown.text
        assert not {"type", "serviceType"} & set(shown.json()), reference
        assert SUBSETTED in _labels(shown.json())
        full = group.call(group.doctor_tm, "GET", f"/fhir/{reference}").json()
        assert {"type", "serviceType"} & set(full), reference

    # Which visits match an HIV code would tell the desk what the read withholds.
    _refused_as_sensitive(
        group,
        group.desk_tm,
        "Encounter?type=http://snomed.info/sct|86406008",
        "Encounter?type=86406008",
        "Appointment?service-type=http://snomed.info/sct|86406008,http://snomed.info/sct|1",
    )
    # An ordinary code is searched as ever, and the doctor searches any.
    plain = group.call(group.desk_tm, "GET", "/fhir/Encounter?type=http://snomed.info/sct|1")
    assert plain.status_code == 200, plain.text
    found = group.call(
        group.doctor_tm, "GET", f"/fhir/Encounter?type=86406008&patient={patient}"
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [visit]


def test_billing_is_shown_a_claim_without_the_line_that_bills_an_hiv_test(
    group: Group, api: FhirTestClient
) -> None:
    """Billing, the one member of staff who reads claims, may not read sensitive records:
    a line billing an HIV viral load tells it what the claim's diagnoses would. A front
    desk and a doctor read no claim at all (financial data)."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    claim = created(api, self_paid_claim(patient, item=[FEE_LINE, HIV_TEST_LINE]))

    shown = group.call(billing, "GET", f"/fhir/Claim/{claim}")
    found = group.call(billing, "GET", f"/fhir/Claim?patient={patient}")

    assert shown.status_code == 200, shown.text
    assert shown.json()["item"] == [FEE_LINE] and SUBSETTED in _labels(shown.json())
    (entry,) = found.json()["entry"]
    assert entry["resource"]["item"] == [FEE_LINE]
    read = [e for e in group.events(Tag.FHIR_READ) if e.resource_id == claim][0]
    assert "sensitive_clinical" not in read.categories
    for other in (group.desk_tm, group.doctor_tm):
        assert group.call(other, "GET", f"/fhir/Claim/{claim}").status_code == 403
    assert _stored(api, f"Claim/{claim}")["item"] == [FEE_LINE, HIV_TEST_LINE]
    # An ordinary claim is billing's whole, as before.
    plain = created(api, self_paid_claim(patient, item=[FEE_LINE]))
    assert group.call(billing, "GET", f"/fhir/Claim/{plain}").json()["item"] == [FEE_LINE]


def test_billings_update_of_a_claim_keeps_the_hiv_line_it_was_not_shown(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    claim = created(api, self_paid_claim(group.tm_patient.id, item=[FEE_LINE, HIV_TEST_LINE]))
    path = f"/fhir/Claim/{claim}"
    view = group.call(billing, "GET", path).json()

    updated = group.call(billing, "PUT", path, {**view, "status": "cancelled"})

    assert updated.status_code == 200, updated.text
    assert updated.json()["item"] == [FEE_LINE]
    stored = _stored(api, f"Claim/{claim}")
    assert (stored["status"], stored["item"]) == ("cancelled", [FEE_LINE, HIV_TEST_LINE])
    # The line sent back (a guess confirmed by being allowed), a line sent under its
    # number, a new claim billing it, or deleting the claim that holds it: refused.
    renumbered = {**FEE_LINE, "sequence": 2}
    for body in (
        {**view, "item": [FEE_LINE, HIV_TEST_LINE]},
        {**view, "item": [FEE_LINE, renumbered]},
    ):
        refused = group.call(billing, "PUT", path, body)
        assert refused.status_code == 403, refused.text
        assert "25836-8" not in refused.text
    written = group.call(
        billing, "POST", "/fhir/Claim", self_paid_claim(group.tm_patient.id, item=[HIV_TEST_LINE])
    )
    assert written.status_code == 403, written.text
    assert group.call(billing, "DELETE", path).status_code == 403
    assert _stored(api, f"Claim/{claim}") == stored


def test_billing_may_not_search_claims_for_a_sensitive_code(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    created(api, self_paid_claim(group.tm_patient.id, item=[FEE_LINE, HIV_TEST_LINE]))

    _refused_as_sensitive(
        group,
        billing,
        "Claim?code=http://loinc.org|25836-8",
        "Claim?code=25836-8",
        "ExplanationOfBenefit?code=http://hl7.org/fhir/sid/icd-10|B20,professional",
    )
    claim_type = "http://terminology.hl7.org/CodeSystem/claim-type|professional"
    plain = group.call(billing, "GET", f"/fhir/Claim?code={claim_type}")
    assert plain.status_code == 200, plain.text
    assert plain.json()["total"] == 1


def test_billing_is_shown_a_coverage_without_the_type_that_names_an_hiv_programme(
    group: Group, api: FhirTestClient
) -> None:
    """Billing checks insurance but may not read sensitive records: a Coverage typed
    "HIV-AIDS program" (v3 ActCode HIVAIDS) tells it what the patient's records would. A
    front desk and a doctor read no coverage at all (financial data); the system, which
    may read everything, reads the type."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    covered = created(api, coverage(patient, HIV_PROGRAMME))

    shown = group.call(billing, "GET", f"/fhir/Coverage/{covered}")
    found = group.call(billing, "GET", f"/fhir/Coverage?patient={patient}")

    assert shown.status_code == 200, shown.text
    assert "type" not in shown.json() and SUBSETTED in _labels(shown.json())
    assert shown.json()["subscriberId"] == "HK-778812"
    (entry,) = found.json()["entry"]
    assert "type" not in entry["resource"] and SUBSETTED in _labels(entry["resource"])
    assert "HIVAIDS" not in shown.text + found.text
    read = [e for e in group.events(Tag.FHIR_READ) if e.resource_id == covered][0]
    assert "sensitive_clinical" not in read.categories
    for other in (group.desk_tm, group.doctor_tm):
        assert group.call(other, "GET", f"/fhir/Coverage/{covered}").status_code == 403
    assert _stored(api, f"Coverage/{covered}")["type"] == HIV_PROGRAMME
    # An ordinary coverage's type billing reads, in a view labelled as every one is.
    plain = created(api, coverage(patient, EXTENDED_HEALTHCARE))
    plain_view = group.call(billing, "GET", f"/fhir/Coverage/{plain}").json()
    assert plain_view["type"] == EXTENDED_HEALTHCARE and SUBSETTED in _labels(plain_view)


def test_billings_update_of_a_coverage_keeps_the_programme_it_was_not_shown(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    patient = group.tm_patient.id
    covered = created(api, coverage(patient, HIV_PROGRAMME))
    path = f"/fhir/Coverage/{covered}"
    view = group.call(billing, "GET", path).json()

    updated = group.call(billing, "PUT", path, {**view, "status": "cancelled"})

    assert updated.status_code == 200, updated.text
    assert "type" not in updated.json()
    stored = _stored(api, f"Coverage/{covered}")
    assert (stored["status"], stored["type"]) == ("cancelled", HIV_PROGRAMME)
    # The type sent back (a guess confirmed by being allowed), another type in its place
    # (erasing it), or a new coverage of the programme: refused, and nothing changes.
    for body in ({**view, "type": HIV_PROGRAMME}, {**view, "type": EXTENDED_HEALTHCARE}):
        refused = group.call(billing, "PUT", path, body)
        assert refused.status_code == 403, refused.text
        assert "HIVAIDS" not in refused.text
    written = group.call(billing, "POST", "/fhir/Coverage", coverage(patient, HIV_PROGRAMME))
    assert written.status_code == 403, written.text
    assert _stored(api, f"Coverage/{covered}") == stored
    ordinary = group.call(billing, "POST", "/fhir/Coverage", coverage(patient, EXTENDED_HEALTHCARE))
    assert ordinary.status_code == 201, ordinary.text


def test_billing_may_not_search_coverages_for_a_sensitive_programme(
    group: Group, api: FhirTestClient
) -> None:
    billing = make_staff(group.services, Role.BILLING, [TM])
    created(api, coverage(group.tm_patient.id, HIV_PROGRAMME))
    created(api, coverage(group.tm_patient.id, EXTENDED_HEALTHCARE))

    _refused_as_sensitive(
        group,
        billing,
        "Coverage?type=HIVAIDS",
        "Coverage?type=http://terminology.hl7.org/CodeSystem/v3-ActCode|HIVAIDS",
        "Coverage?type=urn:oid:2.16.840.1.113883.5.4|MENTPRG",
        "Coverage?type=EHCPOL,SUBPRG",
    )
    plain = group.call(billing, "GET", "/fhir/Coverage?type=EHCPOL")
    assert plain.status_code == 200, plain.text
    assert plain.json()["total"] == 1
    # The system (which may read sensitive records) finds the programme's coverage.
    found = api.get("/fhir/Coverage?type=HIVAIDS").json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["type"] == HIV_PROGRAMME
