"""What a role's cut takes out of a record (``fhir/subsetting.py``, by the categories
of ``fhir/categories.py``), puts back on its update, and counts as changed: a
primitive's ``_name`` sibling goes with its element (an extension beside
``deceasedDateTime`` is as clinical as the date), and each contained resource counts as
what it is (an HIV result inside a Patient is sensitive, a Medication inside a
prescription part of it, what cannot be told the most guarded). One file for both
modules: their cases share the records built here."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.domain.categories import DataCategory as C
from carevault.fhir.categories import (
    CONTAINED_CATEGORIES,
    always_cut,
    changed_categories,
    contained_categories,
    element_categories,
    own_categories,
    possible_categories,
)
from carevault.fhir.normalise import HKID_SYSTEM as HKID
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import (
    SUBSETTED,
    HiddenItemNamed,
    mark_subsetted,
    restore_withheld,
    subset,
)

PATIENT = RESOURCE_TYPES["Patient"]
#: What a front desk may read.
DESK = frozenset({C.IDENTITY, C.CONTACT, C.DEMOGRAPHIC, C.VISIT})
CAUSE = {"extension": [{"url": "urn:cause-of-death", "valueString": "overdose"}]}


def _patient(**more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "name": [{"family": "Chan"}], **more}


def test_the_sibling_of_a_withheld_primitive_is_withheld_with_it() -> None:
    record = _patient(deceasedDateTime="2026-11-01", _deceasedDateTime=CAUSE)

    shown = subset(PATIENT, record, DESK)

    assert shown is not None
    assert set(shown) == {"resourceType", "id", "name", "meta"}
    assert shown["meta"]["security"] == [SUBSETTED]
    assert C.CLINICAL in element_categories(PATIENT, _patient(_deceasedDateTime=CAUSE))


def test_an_update_keeps_what_the_role_could_not_see_and_counts_what_it_adds() -> None:
    stored = _patient(deceasedDateTime="2026-11-01", _deceasedDateTime=CAUSE)
    sent = _patient(telecom=[{"system": "phone", "value": "5555 0123"}])

    merged = restore_withheld(PATIENT, sent, stored, DESK)

    assert merged["_deceasedDateTime"] == CAUSE and merged["deceasedDateTime"] == "2026-11-01"
    assert changed_categories(PATIENT, merged, stored) == {C.IDENTITY, C.CONTACT}
    assert C.CLINICAL in changed_categories(PATIENT, _patient(_deceasedDateTime=CAUSE), _patient())


# --- contained resources: each counts as what it is ------------------------------------

CLAIM = RESOURCE_TYPES["ExplanationOfBenefit"]
PRESCRIPTION = RESOURCE_TYPES["MedicationRequest"]
#: What billing may read.
BILLING = frozenset({C.IDENTITY, C.FINANCIAL})
HIV = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "75622-1", "display": "HIV"}]},
}
REFERRAL = {"resourceType": "ServiceRequest", "id": "referral", "status": "completed"}
COVER = {"resourceType": "Coverage", "id": "coverage", "status": "active"}
DRUG = {"resourceType": "Medication", "id": "m1", "code": {"text": "metformin 500 mg"}}


def _claim(*contained: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": "e1",
        "status": "active",
        "contained": list(contained),
    }


def test_a_contained_resource_counts_as_its_own_type_or_as_part_of_its_container() -> None:
    prescription = {"resourceType": "MedicationRequest", "id": "r1", "contained": [DRUG]}
    patient = {
        "resourceType": "Patient",
        "id": "p2",
        "identifier": [{"system": HKID, "value": "X"}],
    }

    assert contained_categories(HIV, C.IDENTITY) == {C.SENSITIVE_CLINICAL}
    assert contained_categories(REFERRAL, C.FINANCIAL) == {C.CLINICAL}
    assert contained_categories(COVER, C.FINANCIAL) == {C.FINANCIAL}
    assert contained_categories(patient, C.FINANCIAL) == {C.IDENTITY, C.GOVERNMENT_ID}
    assert contained_categories(DRUG, C.MEDICATION) == {C.MEDICATION}
    assert element_categories(PRESCRIPTION, prescription) == {C.MEDICATION}
    assert element_categories(PATIENT, _patient(contained=[HIV])) == {
        C.IDENTITY,
        C.SENSITIVE_CLINICAL,
    }
    assert element_categories(CLAIM, _claim(REFERRAL, COVER)) == {C.FINANCIAL, C.CLINICAL}


@pytest.mark.parametrize(
    "item",
    [
        {"id": "x", "status": "final"},  # no resourceType
        {"resourceType": "Basic", "id": "x"},  # a type CareVault does not know
        {"resourceType": 7, "id": "x"},
        "Observation",
        None,
        {"resourceType": "Device", "id": "d1", "patient": {"reference": "Patient/p1"}}
        | {"type": {"coding": [{"system": "http://loinc.org", "code": "75622-1", "display": "x"}]}},
        {**COVER, "contained": [HIV]},  # nested: FHIR forbids it
    ],
)
def test_a_contained_item_that_cannot_be_told_is_the_most_guarded(item: Any) -> None:
    assert contained_categories(item, C.IDENTITY) == {C.SENSITIVE_CLINICAL}
    assert subset(PATIENT, _patient(contained=[item]), DESK) == mark_subsetted(_patient())


def test_a_device_counts_as_the_container_unless_it_names_a_patient() -> None:
    device = {"resourceType": "Device", "id": "d1"}
    implant = {**device, "patient": {"reference": "Patient/p1"}}

    assert contained_categories(device, C.CLINICAL) == {C.CLINICAL}
    assert contained_categories(device, C.IDENTITY) == {C.IDENTITY}
    assert contained_categories(implant, C.IDENTITY) == {C.CLINICAL}


def test_every_type_may_hold_what_a_contained_resource_brings() -> None:
    for rt in RESOURCE_TYPES.values():
        possible = possible_categories(rt)
        assert own_categories(rt) <= possible
        assert possible >= CONTAINED_CATEGORIES
    assert {C.CLINICAL, C.FINANCIAL, C.SENSITIVE_CLINICAL, C.GOVERNMENT_ID} <= CONTAINED_CATEGORIES
    assert C.CREDENTIALS not in CONTAINED_CATEGORIES


def test_a_role_is_shown_the_contained_items_of_its_categories_only() -> None:
    record = _claim(REFERRAL, COVER)

    billing = subset(CLAIM, record, BILLING)
    clinician = subset(CLAIM, record, BILLING | {C.CLINICAL, C.SENSITIVE_CLINICAL})
    # Not sensitive records: every item of this one, labelled (its type may hold them).
    ordinary = subset(CLAIM, record, BILLING | {C.CLINICAL})

    assert billing is not None and billing["contained"] == [COVER]
    assert billing["meta"]["security"] == [SUBSETTED]
    assert clinician is record
    assert ordinary == mark_subsetted(dict(record))
    shown = subset(PATIENT, _patient(contained=[HIV], text={"div": "HIV"}), DESK)
    assert shown == mark_subsetted(_patient())


def test_an_update_keeps_the_contained_items_hidden_where_they_stood() -> None:
    stored = _claim(REFERRAL, COVER, {**REFERRAL, "id": "second"})
    billing_saw = [COVER]
    changed_cover = {**COVER, "status": "cancelled"}

    unchanged = restore_withheld(CLAIM, _claim(*billing_saw), stored, BILLING)
    changed = restore_withheld(CLAIM, _claim(changed_cover), stored, BILLING)
    removed = restore_withheld(CLAIM, {**_claim(), "contained": []}, stored, BILLING)
    left_out = restore_withheld(CLAIM, {"resourceType": "ExplanationOfBenefit"}, stored, BILLING)

    assert unchanged == stored
    assert changed_categories(CLAIM, unchanged, stored) == {C.FINANCIAL}
    assert changed["contained"] == [REFERRAL, changed_cover, {**REFERRAL, "id": "second"}]
    assert changed_categories(CLAIM, changed, stored) == {C.FINANCIAL}
    assert removed["contained"] == left_out["contained"] == [REFERRAL, {**REFERRAL, "id": "second"}]
    assert changed_categories(CLAIM, removed, stored) == {C.FINANCIAL}


def test_an_update_that_adds_or_changes_a_contained_item_counts_its_categories() -> None:
    stored = _patient(contained=[HIV])

    assert C.SENSITIVE_CLINICAL in changed_categories(PATIENT, _patient(), stored)
    assert C.SENSITIVE_CLINICAL in changed_categories(PATIENT, stored, _patient())
    assert C.CLINICAL in changed_categories(PATIENT, _patient(contained=[REFERRAL]), _patient())
    assert changed_categories(PATIENT, stored, stored) == {C.IDENTITY}


def test_an_update_may_not_reuse_the_id_of_a_contained_item_it_could_not_see() -> None:
    stored = _patient(contained=[HIV])
    impostor = {"resourceType": "Practitioner", "id": HIV["id"], "name": [{"family": "Lee"}]}

    with pytest.raises(HiddenItemNamed) as refused:
        restore_withheld(PATIENT, _patient(contained=[impostor]), stored, DESK)

    assert "Observation" not in str(refused.value) and "o1" not in str(refused.value)
    kept = restore_withheld(PATIENT, _patient(contained=[{**impostor, "id": "p9"}]), stored, DESK)
    assert kept["contained"] == [HIV, {**impostor, "id": "p9"}]


def test_items_without_an_id_are_not_taken_for_one_another() -> None:
    nameless = {key: value for key, value in HIV.items() if key != "id"}
    mine = {"resourceType": "Practitioner", "name": [{"family": "Lee"}]}

    merged = restore_withheld(
        PATIENT, _patient(contained=[mine]), _patient(contained=[nameless]), DESK
    )

    assert merged["contained"] == [nameless, mine]


def test_an_item_sent_that_is_a_hidden_item_is_kept_once() -> None:
    """Adversary round 79: a desk that typed its patient's HKID again (it may write the
    number, not read it) stored it twice; another number is added beside it."""
    number = {"system": HKID, "value": "A123456(3)"}
    other = {"system": HKID, "value": "K654321(9)"}
    stored = _patient(identifier=[number])

    again = restore_withheld(PATIENT, _patient(identifier=[dict(number)]), stored, DESK)
    added = restore_withheld(PATIENT, _patient(identifier=[other]), stored, DESK)

    assert again["identifier"] == [number]
    assert added["identifier"] == [number, other]


NARRATIVE = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">HIV</div>'}


def test_a_reader_who_may_not_see_every_category_of_a_type_gets_no_narrative() -> None:
    """The narrative may restate any category an element of the type may hold: it is cut,
    and the record labelled, whenever one of them is withheld, with a narrative or not."""
    everything = frozenset(C)
    assert always_cut(PATIENT, DESK)
    assert not always_cut(PATIENT, everything)
    assert always_cut(RESOURCE_TYPES["Encounter"], DESK)
    assert always_cut(RESOURCE_TYPES["Condition"], frozenset({C.CLINICAL}))
    assert not always_cut(RESOURCE_TYPES["Organization"], frozenset({C.IDENTITY}))

    shown = subset(PATIENT, _patient(text=NARRATIVE), DESK)
    assert shown is not None and "text" not in shown
    assert shown["meta"]["security"] == [SUBSETTED] and shown["name"] == [{"family": "Chan"}]
    plain = subset(PATIENT, _patient(), DESK)
    assert plain is not None and plain["meta"]["security"] == [SUBSETTED]
    whole = _patient(text=NARRATIVE)
    assert subset(PATIENT, whole, everything) is whole


def test_an_update_keeps_the_narrative_its_reader_was_not_shown() -> None:
    stored = _patient(text=NARRATIVE)

    assert restore_withheld(PATIENT, _patient(), stored, DESK)["text"] == NARRATIVE
    written = {"status": "generated", "div": "<div>new</div>"}
    assert restore_withheld(PATIENT, _patient(text=written), stored, DESK)["text"] == written
    assert "text" not in restore_withheld(PATIENT, _patient(), stored, frozenset(C))


#: An extension coding the patient's HIV status (SNOMED CT 86406008), as a clinic's
#: own profile might carry it on the Patient.
_HIV_EXTENSION = {
    "url": "http://example.org/fhir/StructureDefinition/hiv-status",
    "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]},
}


def test_a_sensitive_code_in_any_element_of_a_visit_booking_or_patient_is_sensitive() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Chan"}],
               "extension": [_HIV_EXTENSION]}  # fmt: skip
    plain = {**patient, "extension": [{"url": "http://example.org/x", "valueString": "F20"}]}
    rt = RESOURCE_TYPES["Patient"]
    assert C.SENSITIVE_CLINICAL in element_categories(rt, patient)
    assert C.SENSITIVE_CLINICAL not in element_categories(rt, plain)
    desk = frozenset({C.IDENTITY, C.CONTACT, C.DEMOGRAPHIC, C.VISIT})
    shown = subset(rt, patient, desk)
    assert shown is not None and "extension" not in shown and "name" in shown
    assert changed_categories(rt, plain, patient) >= {C.SENSITIVE_CLINICAL, C.DEMOGRAPHIC}


# --- a claim's lines: each judged for what it says was done ---------------------------

#: A line billing an HIV-1 viral load (LOINC 25836-8), and an ordinary one.
HIV_LINE = {
    "sequence": 2,
    "productOrService": {"coding": [{"system": "http://loinc.org", "code": "25836-8"}]},
    "net": {"value": 900, "currency": "HKD"},
}
VISIT_LINE = {
    "sequence": 1,
    "productOrService": {"coding": [{"system": "urn:fees", "code": "GP01"}]},
    "net": {"value": 300, "currency": "HKD"},
}
#: What an integration client may read: clinical, not sensitive records.
INTEGRATION = BILLING | {C.CLINICAL}


def _billed(*lines: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"resourceType": "Claim", "id": "c1", "status": "active", "item": list(lines), **more}


def test_a_claim_line_billing_a_sensitive_test_is_sensitive_line_by_line() -> None:
    claim = RESOURCE_TYPES["Claim"]
    eob = RESOURCE_TYPES["ExplanationOfBenefit"]
    record = _billed(VISIT_LINE, HIV_LINE)
    added = {**_claim(), "addItem": [{"productOrService": HIV_LINE["productOrService"]}]}

    assert element_categories(claim, record) == {C.FINANCIAL, C.SENSITIVE_CLINICAL}
    assert element_categories(claim, _billed(VISIT_LINE)) == {C.FINANCIAL}
    assert C.SENSITIVE_CLINICAL in element_categories(eob, added)
    for granted in (BILLING, INTEGRATION):
        shown = subset(claim, record, granted)
        assert shown is not None and shown["item"] == [VISIT_LINE], granted
        assert shown["meta"]["security"] == [SUBSETTED]
        explained = subset(eob, added, granted)
        assert explained is not None and "addItem" not in explained
    assert subset(claim, record, INTEGRATION | {C.SENSITIVE_CLINICAL}) is record
    # A claim typed with a sensitive code (what ``Claim?code=`` searches) is judged too.
    typed = _billed(VISIT_LINE, type=HIV["code"])
    assert element_categories(claim, typed) == {C.FINANCIAL, C.SENSITIVE_CLINICAL}
    untyped = subset(claim, typed, BILLING)
    assert untyped is not None and "type" not in untyped and untyped["item"] == [VISIT_LINE]
    # So is a code in the claim's own extensions or its insurance's (found in review),
    # not in how the insurer paid.
    coded = {"url": "urn:x", "valueCodeableConcept": HIV_LINE["productOrService"]}
    extended = _billed(VISIT_LINE, extension=[coded])
    insured = _billed(VISIT_LINE, insurance=[{"sequence": 1, "extension": [coded]}])
    paid = {**_billed(VISIT_LINE), "adjudication": [{"reason": coded["valueCodeableConcept"]}]}
    assert C.SENSITIVE_CLINICAL in element_categories(claim, extended)
    assert C.SENSITIVE_CLINICAL in element_categories(claim, insured)
    assert C.SENSITIVE_CLINICAL not in element_categories(eob, paid)


def test_billings_update_keeps_the_sensitive_line_it_was_not_shown() -> None:
    claim = RESOURCE_TYPES["Claim"]
    stored = _billed(VISIT_LINE, HIV_LINE)
    view = subset(claim, stored, BILLING)
    assert view is not None
    cancelled = {**view, "status": "cancelled"}
    corrected = {**view, "item": [{**VISIT_LINE, "net": {"value": 350, "currency": "HKD"}}]}

    kept = restore_withheld(claim, cancelled, stored, BILLING)
    changed = restore_withheld(claim, corrected, stored, BILLING)

    assert kept["item"] == [VISIT_LINE, HIV_LINE] and kept["status"] == "cancelled"
    assert changed_categories(claim, kept, stored) == {C.FINANCIAL}
    assert changed["item"] == [corrected["item"][0], HIV_LINE]
    assert changed_categories(claim, changed, stored) == {C.FINANCIAL}
    # A line sent as the hidden one (its sequence) would make two lines of one number.
    with pytest.raises(HiddenItemNamed) as refused:
        restore_withheld(claim, {**view, "item": [VISIT_LINE, {**VISIT_LINE, "sequence": 2}]},
                         stored, BILLING)  # fmt: skip
    assert "25836-8" not in str(refused.value) and "sequence" in str(refused.value)
    # Sending the hidden line back counts as writing sensitive data.
    assert C.SENSITIVE_CLINICAL in element_categories(claim, {**view, "item": [HIV_LINE]})


# --- a coverage: any element that names a sensitive programme --------------------------

COVERAGE = RESOURCE_TYPES["Coverage"]
V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HIV_PROGRAMME = {"coding": [{"system": V3, "code": "HIVAIDS", "display": "HIV-AIDS program"}]}
EXTENDED = {"coding": [{"system": V3, "code": "EHCPOL", "display": "extended healthcare"}]}
PLAN = {
    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                         "code": "plan"}]},
    "value": "B37FC",
}  # fmt: skip


def _covered(kind: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": "cov1",
        "status": "active",
        "type": kind,
        "beneficiary": {"reference": "Patient/p1"},
        "payor": [{"reference": "Organization/o1"}],
        "class": [PLAN],
        **more,
    }


def test_a_coverage_typed_as_a_sensitive_programme_is_cut_from_who_may_not_read_it() -> None:
    record = _covered(HIV_PROGRAMME)

    assert element_categories(COVERAGE, record) == {C.FINANCIAL, C.SENSITIVE_CLINICAL}
    assert element_categories(COVERAGE, _covered(EXTENDED)) == {C.FINANCIAL}
    assert C.SENSITIVE_CLINICAL in own_categories(COVERAGE)
    for granted in (BILLING, INTEGRATION):
        shown = subset(COVERAGE, record, granted)
        assert shown is not None and "type" not in shown, granted
        assert shown["class"] == [PLAN] and shown["payor"] == record["payor"]
        assert shown["meta"]["security"] == [SUBSETTED]
        # Every coverage is a view to such a reader, so the label tells nothing.
        plain = subset(COVERAGE, _covered(EXTENDED), granted)
        assert plain is not None and plain["type"] == EXTENDED
        assert plain["meta"]["security"] == [SUBSETTED]
    assert subset(COVERAGE, record, BILLING | {C.SENSITIVE_CLINICAL}) is record


def test_a_sensitive_programme_anywhere_in_a_coverage_is_judged() -> None:
    """A clinic's profile may code the programme in a class, a cost's exception or an
    extension; an ExplanationOfBenefit's contained coverage is judged as its own type."""
    in_class = _covered(EXTENDED, **{"class": [PLAN, {"type": HIV_PROGRAMME, "value": "x"}]})
    exception = [{"type": HIV_PROGRAMME}]
    in_cost = _covered(EXTENDED, costToBeneficiary=[{"type": EXTENDED, "exception": exception}])
    in_extension = _covered(
        EXTENDED, extension=[{"url": "urn:programme", "valueCodeableConcept": HIV_PROGRAMME}]
    )
    for record in (in_class, in_cost, in_extension):
        assert C.SENSITIVE_CLINICAL in element_categories(COVERAGE, record)
        shown = subset(COVERAGE, record, BILLING)
        assert shown is not None and shown["type"] == EXTENDED
    contained = {**_covered(HIV_PROGRAMME), "id": "coverage"}
    eob = {"resourceType": "ExplanationOfBenefit", "id": "e1", "contained": [contained]}
    assert C.SENSITIVE_CLINICAL in element_categories(CLAIM, eob)
    explained = subset(CLAIM, eob, BILLING)
    assert explained is not None and "contained" not in explained


def test_billings_update_of_a_coverage_keeps_the_type_it_was_not_shown() -> None:
    stored = _covered(HIV_PROGRAMME)
    view = subset(COVERAGE, stored, BILLING)
    assert view is not None

    kept = restore_withheld(COVERAGE, {**view, "status": "cancelled"}, stored, BILLING)

    assert kept["type"] == HIV_PROGRAMME and kept["status"] == "cancelled"
    assert changed_categories(COVERAGE, kept, stored) == {C.FINANCIAL}
    # Another type in its place changes (erases) the sensitive one; sending it is writing it.
    retyped = restore_withheld(COVERAGE, {**view, "type": EXTENDED}, stored, BILLING)
    assert C.SENSITIVE_CLINICAL in changed_categories(COVERAGE, retyped, stored)
    assert C.SENSITIVE_CLINICAL in element_categories(COVERAGE, {**view, "type": HIV_PROGRAMME})


def test_a_sensitive_code_in_a_records_meta_marks_it_as_a_label_does() -> None:
    """Adversary round 46: an HIV code tagged on a record (``meta.tag``, or a coding in
    ``meta.security`` that is no policy label) was shown to every reader of ``meta``."""
    hiv = {"system": "http://snomed.info/sct", "code": "86406008"}
    workflow = {"system": "urn:example:workflow", "code": "triaged"}
    condition = RESOURCE_TYPES["Condition"]
    flu = {"resourceType": "Condition", "code": {"text": "flu"}, "meta": {"tag": [hiv]}}
    assert element_categories(condition, flu) == {C.SENSITIVE_CLINICAL}
    assert subset(condition, flu, frozenset({C.CLINICAL})) is None

    for kind in ("tag", "security"):
        tagged = _patient(meta={kind: [workflow, hiv]})
        assert C.SENSITIVE_CLINICAL in element_categories(PATIENT, tagged)
        shown = subset(PATIENT, tagged, DESK)
        assert shown is not None and hiv not in shown["meta"].get(kind, [])
        assert workflow in shown["meta"].get(kind, []) and SUBSETTED in shown["meta"]["security"]
        saved = restore_withheld(PATIENT, {**shown, "gender": "female"}, tagged, DESK)
        assert hiv in saved["meta"][kind] and workflow in saved["meta"][kind]
        # Inside another record, such a patient is as sensitive as its tag.
        held = {**_patient(id="p2"), "contained": [{**tagged, "id": "kin"}]}
        assert "contained" not in (subset(PATIENT, held, DESK) or {})


def test_a_confidentiality_level_names_no_condition() -> None:
    """A patient marked restricted (R, V) holds no sensitive clinical data: a desk may
    mark one so (and is shown the record without the label); HIV or PSY labels tell
    what a diagnosis would."""
    confidentiality = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
    for code in ("R", "V"):
        level = {"system": confidentiality, "code": code}
        marked = _patient(meta={"security": [level]})
        assert C.SENSITIVE_CLINICAL not in element_categories(PATIENT, marked)
        shown = subset(PATIENT, marked, DESK)
        assert shown is not None and level not in shown["meta"].get("security", [])
    for code in ("HIV", "psy"):
        label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}
        assert C.SENSITIVE_CLINICAL in element_categories(
            PATIENT, _patient(meta={"security": [label]})
        )


@pytest.mark.parametrize(
    "label",
    [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"},
    ],
)
def test_a_documents_own_security_label_marks_it_as_a_label_in_its_meta_does(
    label: dict[str, str],
) -> None:
    """Adversary round 47: a DocumentReference carries its labels in ``securityLabel``
    (R4), where a pharmacist was shown a note labelled psychiatry or restricted."""
    document = RESOURCE_TYPES["DocumentReference"]
    note = {
        "resourceType": "DocumentReference",
        "status": "current",
        "securityLabel": [{"coding": [label]}],
        "content": [{"attachment": {"contentType": "text/plain", "data": "bm90ZQ=="}}],
    }
    normal = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}
    ordinary = {**note, "securityLabel": [{"coding": [normal]}]}
    assert element_categories(document, note) == {C.SENSITIVE_CLINICAL}
    assert subset(document, note, frozenset({C.CLINICAL})) is None
    assert subset(document, ordinary, frozenset({C.CLINICAL})) is not None
    # Contained in a visit, such a note is cut from a desk as any sensitive item is.
    visit = RESOURCE_TYPES["Encounter"]
    held = {"resourceType": "Encounter", "status": "finished", "contained": [{**note, "id": "n"}]}
    assert "contained" not in (subset(visit, held, DESK) or {})


_HIV_TYPE = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}


def test_a_sensitive_code_in_a_patients_identifier_or_a_shared_contained_item_counts() -> None:
    """Adversary round 47: the items of an itemised element were judged by what they are
    alone, never for a sensitive code: a patient's HIV clinic number typed with SNOMED's
    HIV disease was shown to a desk, billing and an officer, and a Location, Practitioner
    or Medication contained in a visit or a claim coded so to a desk or billing."""
    hiv_number = {"system": "urn:tm:hiv-clinic", "value": "HIVC-0042", "type": _HIV_TYPE}
    record_number = {"system": "urn:tm:mrn", "value": "MRN-1"}
    patient = _patient(identifier=[record_number, hiv_number])
    assert C.SENSITIVE_CLINICAL in element_categories(PATIENT, patient)
    shown = subset(PATIENT, patient, DESK)
    assert shown is not None and shown["identifier"] == [record_number]
    kept = restore_withheld(PATIENT, {**shown, "gender": "female"}, patient, DESK)
    assert kept["identifier"] == [record_number, hiv_number]
    assert C.SENSITIVE_CLINICAL in changed_categories(PATIENT, _patient(), patient)

    place = {"resourceType": "Location", "id": "l1", "type": [_HIV_TYPE]}
    drug = {"resourceType": "Medication", "id": "m1", "code": _HIV_TYPE}
    assert contained_categories(place, C.VISIT) == {C.VISIT, C.SENSITIVE_CLINICAL}
    assert contained_categories(drug, C.FINANCIAL) == {C.FINANCIAL, C.SENSITIVE_CLINICAL}
    assert contained_categories(DRUG, C.FINANCIAL) == {C.FINANCIAL}
    visit = RESOURCE_TYPES["Encounter"]
    held = {"resourceType": "Encounter", "status": "finished", "contained": [place]}
    assert "contained" not in (subset(visit, held, DESK) or {})
    billed = _claim(drug, COVER)
    assert (subset(CLAIM, billed, BILLING) or {})["contained"] == [COVER]


def test_a_shared_item_contained_in_a_health_record_is_judged_by_its_labels_too() -> None:
    """The record's own walk (``main_category``) saw every code of its contained items,
    not their labels: a Medication labelled restricted is sensitive, one coded HIV makes
    the whole record so, and a plain one is the record's own category."""
    request = RESOURCE_TYPES["MedicationRequest"]

    def ordered(medication: dict[str, Any]) -> dict[str, Any]:
        return {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "contained": [{"resourceType": "Medication", "id": "med", **medication}],
            "medicationReference": {"reference": "#med"},
            "subject": {"reference": "Patient/p1"},
        }

    plain = {"code": {"text": "amlodipine"}}
    restricted = {**plain, "meta": {"security": [{"code": "R"}]}}
    hiv = {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}}
    assert C.SENSITIVE_CLINICAL not in element_categories(request, ordered(plain))
    assert C.SENSITIVE_CLINICAL in element_categories(request, ordered(restricted))
    assert element_categories(request, ordered(hiv)) == {C.SENSITIVE_CLINICAL}
