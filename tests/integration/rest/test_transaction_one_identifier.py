"""Two entries of one transaction that come to one patient by an identifier spelt two
ways (review of stop 64, left open): ``PUT Patient?identifier=<system>|<HKID>`` beside
``POST Patient`` with ``ifNoneExist: identifier=<HKID>``, or a plain ``POST Patient``
carrying the HKID beside a conditional write of it. Each conditional entry was searched
among the records stored before the Bundle and its criteria compared with the others' as
written, so the transaction made two patients holding one HKID (every ``$register`` of
them ambiguous from then on). R4 http.html#trules: "If any resource identities
(including resolved identities from conditional update/delete) overlap in steps 1-3,
then the transaction SHALL fail": refused whole (400, nothing written), decided on the
Bundle's text as the search reads it, before any entry is looked up. A batch runs its
entries one after another: the later one finds what the earlier made. On SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import Group, build_group
from tests.integration.rest.test_interactions import HKID_SYSTEM, create, patient
from tests.integration.rest.test_transaction_identities import planted, told_nothing
from tests.support.client import FhirTestClient

HKID = "A123456(3)"
#: The same number as a desk types it: no brackets, lower case.
TYPED = "a1234563"
MRN = "http://carevault.hk/sid/mrn"


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _entry(resource: dict[str, Any] | None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "request": request}
    if resource is not None:
        entry["resource"] = resource
    return entry


def _put_by(criteria: str, resource: dict[str, Any]) -> dict[str, Any]:
    return _entry(resource, method="PUT", url=f"Patient?{criteria}")


def _create_unless(criteria: str, resource: dict[str, Any]) -> dict[str, Any]:
    return _entry(resource, method="POST", url="Patient", ifNoneExist=criteria)


def _post(resource: dict[str, Any]) -> dict[str, Any]:
    return _entry(resource, method="POST", url="Patient")


def _holding(api: FhirTestClient, value: str = HKID) -> int:
    found = api.get("/fhir/Patient", params={"identifier": value})
    assert found.status_code == 200, found.text
    total: int = found.json()["total"]
    return total


def _refused(answer: Any) -> dict[str, Any]:
    """The one issue of a refusal that names no identifier value."""
    assert answer.status_code == 400, answer.text[:1000]
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["code"] == "invalid"
    for spelt in (HKID, TYPED, "A1234563", "123456"):
        assert spelt.lower() not in answer.text.lower()
    return dict(issue)


#: Pairs of entries that come to one patient, the second spelling the HKID otherwise.
ONE_PATIENT = {
    "conditional update with the system, conditional create without": lambda: (
        _put_by(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
        _create_unless(f"identifier={TYPED}", patient(hkid=HKID)),
    ),
    "conditional updates with and without the system": lambda: (
        _put_by(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
        _put_by(f"identifier={HKID}", patient(hkid=HKID)),
    ),
    "conditional creates spelt two ways under the system": lambda: (
        _create_unless(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
        _create_unless(f"identifier={HKID_SYSTEM}|{TYPED}", patient(hkid=HKID)),
    ),
    "a plain create carrying the HKID and a conditional update by it": lambda: (
        _post(patient(hkid=HKID)),
        _put_by(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
    ),
    "a plain create carrying it and a conditional create by it": lambda: (
        _create_unless(f"identifier={TYPED}", patient(hkid=HKID)),
        _post(patient("Chan", "Siu Ming", HKID)),
    ),
    # Review of stop 65: criteria of an identifier and more (a common ifNoneExist).
    "identifier and birth date spelt two ways": lambda: (
        _put_by(f"identifier={HKID_SYSTEM}|{HKID}&birthdate=1980-05-01", patient(hkid=HKID)),
        _create_unless(f"identifier={TYPED}&birthdate=1980-05-01", patient(hkid=HKID)),
    ),
    "identifier and family name spelt two ways": lambda: (
        _create_unless(f"identifier={HKID_SYSTEM}|{HKID}&family=Chan", patient(hkid=HKID)),
        _create_unless(f"identifier={TYPED}&family=chan", patient(hkid=HKID)),
    ),
    "a conditional update by the HKID and a create carrying it under a local system": lambda: (
        _put_by(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
        _post({**patient(), "identifier": [{"system": "urn:oid:2.16.344.1.9", "value": TYPED}]}),
    ),
}


@pytest.mark.parametrize("pair", list(ONE_PATIENT), ids=list(ONE_PATIENT))
def test_two_entries_of_one_transaction_coming_to_one_patient_are_refused(
    api: FhirTestClient, pair: str
) -> None:
    first, second = ONE_PATIENT[pair]()

    for entries in ((first, second), (second, first)):
        answer = api.post_json("/fhir", _bundle("transaction", *entries))

        issue = _refused(answer)
        assert "written by Bundle.entry" in issue["diagnostics"], issue
        assert _holding(api) == 0


def test_the_refusal_is_alike_whether_the_patient_is_held(api: FhirTestClient) -> None:
    """Decided on the Bundle's text, before either entry is looked up: the stored patient
    is left as it was, and the answer is the one an HKID no one holds gets."""

    def pair(hkid: str, typed: str) -> Any:
        bundle = _bundle(
            "transaction",
            _put_by(f"identifier={HKID_SYSTEM}|{hkid}", {**patient(hkid=hkid), "gender": "other"}),
            _create_unless(f"identifier={typed}", patient(hkid=hkid)),
        )
        return api.post_json("/fhir", bundle)

    held = create(api, patient(hkid=HKID))

    found, nobody = pair(HKID, TYPED), pair("Z000000(1)", "z0000001")

    _refused(found)
    assert found.json() == nobody.json()
    assert api.get(f"/fhir/Patient/{held['id']}").json()["meta"]["versionId"] == "1"
    assert _holding(api) == 1
    assert _holding(api, "Z000000(1)") == 0


def test_a_conditional_create_beside_a_conditional_delete_of_its_patient_is_refused(
    api: FhirTestClient,
) -> None:
    """Searched before the Bundle, the create found the patient the delete removes, and
    answered ``200`` with a record the same transaction deleted."""
    held = create(api, patient(hkid=HKID))
    bundle = _bundle(
        "transaction",
        _entry(None, method="DELETE", url=f"Patient?identifier={TYPED}"),
        _create_unless(f"identifier={HKID_SYSTEM}|{HKID}", patient(hkid=HKID)),
    )

    answer = api.post_json("/fhir", bundle)

    _refused(answer)
    assert api.get(f"/fhir/Patient/{held['id']}").status_code == 200


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_desks_pair_naming_another_clinics_patient_tells_nothing_of_them(
    group: Group,
) -> None:
    """Alone, the desk's conditional update by another clinic's patient's HKID is a 409
    (a failed registration); paired with its create spelt otherwise it is the 400 of a
    number no one holds, and the hidden patient is not looked up."""

    def pair(hkid: str) -> Any:
        typed = hkid.replace("(", "").replace(")", "").lower()
        bundle = _bundle(
            "transaction",
            _put_by(f"identifier={HKID_SYSTEM}|{hkid}", planted(hkid)),
            _create_unless(f"identifier={typed}", planted(hkid)),
        )
        return group.call(group.desk_tm, "POST", "/fhir", bundle)

    told_nothing(group, pair)


# --- a batch: one entry after another ---------------------------------------------------


@pytest.mark.parametrize(
    "pair",
    [
        "conditional update with the system, conditional create without",
        "conditional updates with and without the system",
        "conditional creates spelt two ways under the system",
        "a plain create carrying the HKID and a conditional update by it",
    ],
)
def test_a_batch_of_two_entries_coming_to_one_patient_makes_one(
    api: FhirTestClient, pair: str
) -> None:
    """Each entry of a batch is searched once the one before it is written: the second
    finds the patient the first made (updated, or answered ``200`` with it)."""
    first, second = ONE_PATIENT[pair]()

    answer = api.post_json("/fhir", _bundle("batch", first, second))

    assert answer.status_code == 200, answer.text
    statuses = [entry["response"]["status"][:3] for entry in answer.json()["entry"]]
    assert statuses == ["201", "200"], answer.text[:1000]
    assert _holding(api) == 1


# --- guards: transactions that do not come to one patient -------------------------------


def test_guard_a_conditional_delete_then_a_create_carrying_its_identifier_replaces_it(
    api: FhirTestClient,
) -> None:
    """R4 orders a transaction's deletions before its creations: the delete finds the
    stored patient, the create makes its successor, and one patient holds the HKID."""
    held = create(api, patient(hkid=HKID))
    bundle = _bundle(
        "transaction",
        _post(patient("Chan", "Siu Ming", HKID)),
        _entry(None, method="DELETE", url=f"Patient?identifier={HKID_SYSTEM}|{HKID}"),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    assert api.get(f"/fhir/Patient/{held['id']}").status_code == 410
    assert _holding(api) == 1


def test_guard_one_number_under_two_systems_names_two_patients(api: FhirTestClient) -> None:
    """A medical record number of the group and a number of another system with the same
    digits are two identifiers: the search by one does not find the other's holder."""
    local = "http://clinic.example/sid/patient-number"
    by_mrn = {**patient(hkid="B123456(6)"), "identifier": [{"system": MRN, "value": "40017"}]}
    other = {**patient(hkid="G123456(A)"), "identifier": [{"system": local, "value": "40017"}]}
    bundle = _bundle(
        "transaction",
        _put_by(f"identifier={MRN}|40017", by_mrn),
        _post(other),
        _create_unless(f"identifier={local}|40018", patient(hkid="CA182361(1)")),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    assert _holding(api, f"{MRN}|40017") == 1
    assert _holding(api, f"{local}|40017") == 1


def test_guard_a_family_of_new_patients_each_by_their_own_hkid(api: FhirTestClient) -> None:
    """A converter's transaction: each patient created unless their HKID is held, each
    carrying their own, a result filed under one of them."""
    people = [("Chan", "Tai Man", HKID), ("Chan", "Siu Ming", "B123456(6)")]
    entries = [
        _create_unless(f"identifier={HKID_SYSTEM}|{hkid}", patient(family, given, hkid))
        for family, given, hkid in people
    ]
    result = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "height"},
        "subject": {"reference": entries[0]["fullUrl"]},
    }
    bundle = _bundle("transaction", *entries, _entry(result, method="POST", url="Observation"))

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    assert _holding(api) == _holding(api, "B123456(6)") == 1
