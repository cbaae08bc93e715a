"""Two entries of a Bundle that name one thing (``rest/bundle_identities.py``): one
``fullUrl`` (R4 Bundle invariant bdl-7), or, in a transaction, one set of conditional
criteria (R4 http.html#trules: resolved identities that overlap fail the transaction).
Both are refused on the Bundle's own text, before any entry is looked up, and write
nothing. The first two tests are the round 72 integrator's findings, as they sent them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import TM, Group, build_group
from tests.integration.rest.test_interactions import HKID_SYSTEM, create, patient
from tests.support.client import FhirTestClient

MRN = "http://carevault.hk/sid/mrn"


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def _by_mrn(value: str) -> str:
    return f"identifier={MRN}|{value}"


def _fed(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": value}],
        "name": [{"family": "Feed"}],
    }


def _conditional(resource: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource, "request": request}


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _total(api: FhirTestClient, **params: str) -> int:
    total: int = api.get("/fhir/Patient", params=params).json()["total"]
    return total


def test_a_transaction_naming_two_entries_by_one_full_url_is_refused(
    api: FhirTestClient,
) -> None:
    """R4 Bundle invariant bdl-7: "FullUrl must be unique in a bundle, or else entries
    with the same fullUrl must have different meta.versionId (except in history
    bundles)". A transaction whose two Patient entries share one ``urn:uuid:`` was
    answered 200: both patients created, and the Observation that referenced that
    fullUrl silently filed under the last of them (rest/transaction.py
    ``_resolve_references``: ``assigned[entry.full_url] = ...`` overwrites). Which
    patient a result belongs to must never be a guess: 400 naming the entry, nothing
    written."""
    shared = f"urn:uuid:{uuid.uuid4()}"
    first = patient(family="Dup-A", hkid="A123456(3)")
    second = patient(family="Dup-B", hkid="B123456(6)")
    result = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "which patient?"},
        "subject": {"reference": shared},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            _entry(shared, first),
            _entry(shared, second),
            {"resource": result, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    answer = api.post_json("/fhir", bundle)
    assert answer.status_code == 400, answer.text[:1000]
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "fullUrl" in outcome["issue"][0]["diagnostics"]
    assert outcome["issue"][0]["code"] == "invalid"
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].fullUrl"]
    assert api.get("/fhir/Patient", params={"family": "Dup-B"}).json()["total"] == 0
    assert api.get("/fhir/Patient", params={"family": "Dup-A"}).json()["total"] == 0
    assert api.get("/fhir/Observation").json()["total"] == 0


@pytest.mark.parametrize("how", ["ifNoneExist", "conditional PUT"])
def test_two_entries_of_one_transaction_with_the_same_criteria_make_one_patient(
    api: FhirTestClient, how: str
) -> None:
    """A lab feed batches two results for one new patient into one transaction, each
    with its Patient as a conditional create (``request.ifNoneExist``) or a conditional
    update (``PUT Patient?identifier=...``) on the same MRN, as R4 http.html#cond-update
    suggests for feeds. Each entry's criteria were resolved before any entry was
    written, both matched nothing, and the transaction created two Patients with the
    one MRN (200, two ``201 Created``). From then on every conditional write by that
    MRN is ``412`` (multiple matches): the feed is stuck, and the patient's results are
    split over two records. The server already refuses two entries whose criteria find
    one existing record ("written by Bundle.entry", R4 http.html#trules: "If any
    resource identities (including resolved identities from conditional update/delete)
    overlap in steps 1-3, then the transaction SHALL fail"); two that would create the
    one record are the same overlap. Either refused (400, nothing written) or one
    Patient."""
    value = f"R72-{uuid.uuid4().hex[:8]}"
    body = _fed(value)
    if how == "ifNoneExist":
        request = {"method": "POST", "url": "Patient", "ifNoneExist": _by_mrn(value)}
    else:
        request = {"method": "PUT", "url": f"Patient?{_by_mrn(value)}"}
    bundle = _bundle("transaction", _conditional(body, request), _conditional(body, request))
    answer = api.post_json("/fhir", bundle)
    assert answer.status_code in (200, 400), answer.text
    found = _total(api, identifier=f"{MRN}|{value}")
    assert found == (1 if answer.status_code == 200 else 0), answer.text[:600]


def test_a_batch_naming_two_entries_by_one_full_url_is_refused_whole(
    api: FhirTestClient,
) -> None:
    """bdl-7 excepts only history Bundles: a batch with a repeated fullUrl is not a valid
    Bundle, and none of its entries is run (as a batch with a PATCH entry)."""
    shared = f"urn:uuid:{uuid.uuid4()}"
    bundle = _bundle(
        "batch",
        _entry(shared, patient(family="Dup-A", hkid="A123456(3)")),
        _entry(shared, patient(family="Dup-B", hkid="B123456(6)")),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 400, answer.text
    issue = answer.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].fullUrl"]
    assert "Bundle.entry[0]" in issue["diagnostics"]
    assert _total(api, family="Dup-A") == 0


def test_a_repeated_full_url_is_refused_whatever_versions_the_entries_carry(
    api: FhirTestClient,
) -> None:
    """A reference names an entry by its fullUrl alone, and the server assigns versions
    itself: distinct ``meta.versionId`` (which bdl-7 allows elsewhere) tell two write
    entries apart for no one."""
    made = create(api, patient())
    full = f"http://example.org/fhir/Patient/{made['id']}"
    first = {**made, "gender": "female", "meta": {"versionId": "1"}}
    second = {**made, "gender": "other", "meta": {"versionId": "2"}}
    put = {"method": "PUT", "url": f"Patient/{made['id']}"}
    bundle = _bundle(
        "transaction",
        {"fullUrl": full, "resource": first, "request": put},
        {"fullUrl": full, "resource": second, "request": put},
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 400, answer.text
    assert answer.json()["issue"][0]["expression"] == ["Bundle.entry[1].fullUrl"]
    assert api.get(f"/fhir/Patient/{made['id']}").json()["meta"]["versionId"] == "1"


def test_the_same_criteria_in_another_order_or_another_entry_kind_are_refused(
    api: FhirTestClient,
) -> None:
    """A conditional create and a conditional update, their parameters in another order
    (``[type]?`` before ifNoneExist, as alone): one Patient either way, so refused."""
    value = f"R72-{uuid.uuid4().hex[:8]}"
    create_by = {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": f"Patient?family=Feed&{_by_mrn(value)}",
    }
    update_by = {"method": "PUT", "url": f"Patient?{_by_mrn(value)}&family=Feed"}
    bundle = _bundle(
        "transaction", _conditional(_fed(value), create_by), _conditional(_fed(value), update_by)
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 400, answer.text
    issue = answer.json()["issue"][0]
    assert issue["code"] == "invalid"
    assert issue["expression"] == ["Bundle.entry[1].request.url"]
    assert value not in issue["diagnostics"]
    assert _total(api, identifier=f"{MRN}|{value}") == 0


def test_the_same_criteria_are_refused_alike_whether_a_record_matches(
    api: FhirTestClient,
) -> None:
    """Decided before either entry is looked up: the answer is the same where the MRN is
    held (the record is left as it was) and where it is not."""
    held = create(api, _fed("R72-held"))

    def twice(value: str) -> Any:
        request = {"method": "PUT", "url": f"Patient?{_by_mrn(value)}"}
        bundle = _bundle(
            "transaction",
            _conditional(_fed(value), request),
            _conditional({**_fed(value), "gender": "female"}, request),
        )
        return api.post_json("/fhir", bundle)

    found, none = twice("R72-held"), twice("R72-nobody")

    assert found.status_code == none.status_code == 400, found.text
    assert found.json() == none.json()
    assert api.get(f"/fhir/Patient/{held['id']}").json()["meta"]["versionId"] == "1"
    assert _total(api, identifier=f"{MRN}|R72-nobody") == 0


def test_two_conditional_creates_of_different_patients_are_both_made(
    api: FhirTestClient,
) -> None:
    one, other = f"R72-{uuid.uuid4().hex[:8]}", f"R72-{uuid.uuid4().hex[:8]}"
    bundle = _bundle(
        "transaction",
        _conditional(_fed(one), {"method": "POST", "url": "Patient", "ifNoneExist": _by_mrn(one)}),
        _conditional(
            _fed(other), {"method": "POST", "url": "Patient", "ifNoneExist": _by_mrn(other)}
        ),
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    assert _total(api, identifier=f"{MRN}|{one}") == _total(api, identifier=f"{MRN}|{other}") == 1


def test_a_batch_with_the_same_criteria_twice_makes_one_patient(api: FhirTestClient) -> None:
    """A batch's entries are found and written one after another: the second finds the
    record the first made (``200``), so a batch is not refused for them."""
    value = f"R72-{uuid.uuid4().hex[:8]}"
    request = {"method": "POST", "url": "Patient", "ifNoneExist": _by_mrn(value)}
    bundle = _bundle(
        "batch", _conditional(_fed(value), request), _conditional(_fed(value), request)
    )

    answer = api.post_json("/fhir", bundle)

    assert answer.status_code == 200, answer.text
    statuses = [entry["response"]["status"][:3] for entry in answer.json()["entry"]]
    assert statuses == ["201", "200"]
    assert _total(api, identifier=f"{MRN}|{value}") == 1


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def planted(hkid: str) -> dict[str, Any]:
    """A Patient a desk of Tuen Mun sends with ``hkid``."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": hkid}],
        "name": [{"family": "Lee", "given": ["Planted"]}],
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }


def told_nothing(group: Group, send: Callable[[str], Any]) -> None:
    """``send`` (a desk's transaction by an HKID) answers the 400 of a number no one holds
    where it names another clinic's patient's, and leaves that patient as it was."""
    hidden, nobody = send(group.tw_patient.hkid), send("Z000000(1)")

    assert hidden.status_code == nobody.status_code == 400, hidden.text
    assert hidden.json() == nobody.json()
    held = group.call(group.desk_tw, "GET", f"/fhir/Patient/{group.tw_patient.id}").json()
    assert held["meta"]["versionId"] == "1" and "Planted" not in str(held)


def test_the_same_criteria_matching_only_another_clinics_patient_tell_nothing_of_it(
    group: Group,
) -> None:
    """Alone, a desk's conditional update matching only another clinic's patient is a
    409 (a failed registration); twice in one transaction it is the 400 the same Bundle
    gets for an HKID no one holds, and the hidden record is not looked up."""

    def twice(hkid: str) -> Any:
        request = {"method": "PUT", "url": f"Patient?identifier={HKID_SYSTEM}|{hkid}"}
        body = planted(hkid)
        bundle = _bundle("transaction", _conditional(body, request), _conditional(body, request))
        return group.call(group.desk_tm, "POST", "/fhir", bundle)

    told_nothing(group, twice)
