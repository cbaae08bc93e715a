"""A DELETE of a record its caller does not know of deletes nothing and succeeds (R4
http.html#delete: 204 "if the resource does not exist at all"), on its own and in a
transaction, so a client replaying a Bulk Data export's ``deleted`` is not stopped by a
record it never held. An id never used and a record hidden from the caller (another
clinic's, a deleted patient of another clinic) are answered alike, and nothing of theirs
changes; the gate records the refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Outcome
from tests.integration.access.group import (
    TM,
    Group,
    build_group,
    deleted_patient,
    observation,
    registered_patient,
)
from tests.support.client import FhirTestClient


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _transaction(*urls: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": url}} for url in urls],
    }


def _gone_observation(group: Group, api: FhirTestClient) -> str:
    """A Tsuen Wan observation, deleted: Tuen Mun's doctor may not know of it."""
    hidden = group.tw_patient.observation
    deleted = api.delete(f"/fhir/Observation/{hidden}")
    assert deleted.status_code == 204, deleted.text
    return hidden


def test_a_delete_of_an_id_never_used_or_hidden_deletes_nothing_alike(
    group: Group, api: FhirTestClient
) -> None:
    gone = deleted_patient(group, api)
    hidden = _gone_observation(group, api)
    answers = [
        group.call(who, "DELETE", f"/fhir/{path}")
        for who, path in (
            (group.desk_tm, "Patient/never-used"),
            (group.desk_tm, f"Patient/{gone}"),
            (group.doctor_tm, "Observation/never-used"),
            (group.doctor_tm, f"Observation/{hidden}"),
        )
    ]
    assert [(a.status_code, a.content, a.headers.get("etag")) for a in answers] == [
        (204, b"", None)
    ] * 4
    # Nothing of theirs changed: the history of each still ends in its one deletion.
    for path in (f"Patient/{gone}", f"Observation/{hidden}"):
        history = api.get(f"/fhir/{path}/_history").json()
        assert history["total"] == 2, path
    # Each was recorded as the refusal it is, naming the record asked for; an id no record
    # holds by its keyed digest (it was typed: adversary round 67).
    desk = f"staff:{group.desk_tm.account.username}"
    doctor = f"staff:{group.doctor_tm.account.username}"
    refused = {(e.principal, e.reason) for e in group.events() if e.outcome is Outcome.FAILED}
    never_used = {
        t: group.services.vault.unknown_id(t, "never-used") for t in ("Patient", "Observation")
    }
    assert {
        (desk, f"Patient/{never_used['Patient']} is not known"),
        (desk, f"Patient/{gone} is not known"),
        (doctor, f"Observation/{never_used['Observation']} is not known"),
        (doctor, f"Observation/{hidden} is not known"),
    } <= refused


def test_with_if_match_a_record_not_known_is_still_refused(
    group: Group, api: FhirTestClient
) -> None:
    """If-Match names a version that is not current: 412 (RFC 9110 13.1.1, 13.2.1; it was
    404 until integrator round 59), alike for every record the caller may not know of,
    not a deletion of nothing."""
    gone = deleted_patient(group, api)
    for path in ("Patient/never-used", f"Patient/{gone}"):
        answered = group.web.delete(
            f"/fhir/{path}", headers={**group.desk_tm.headers, "If-Match": 'W/"1"'}
        )
        assert answered.status_code == 412, path


def test_a_transaction_deletes_what_it_may_and_nothing_of_what_it_does_not_know(
    group: Group, api: FhirTestClient
) -> None:
    mine = registered_patient(api, TM, "Yip")
    gone = deleted_patient(group, api)
    bundle = _transaction(f"Patient/{mine}", f"Patient/{gone}", "Patient/never-used")
    answered = group.call(group.desk_tm, "POST", "/fhir", bundle)
    assert answered.status_code == 200, answered.text
    statuses = [entry["response"]["status"] for entry in answered.json()["entry"]]
    assert statuses == ["204 No Content"] * 3
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{mine}").status_code == 410
    history = api.get(f"/fhir/Patient/{gone}/_history").json()
    assert history["total"] == 2


def test_a_transaction_still_fails_on_what_it_may_not_do(group: Group, api: FhirTestClient) -> None:
    """Only a DELETE of a record not known deletes nothing: a refusal of anything else
    still fails the whole transaction, and nothing of it is written."""
    mine = registered_patient(api, TM, "Yip")
    bundle = _transaction(f"Patient/{mine}", "Patient/never-used")
    bundle["entry"].append(
        {
            "resource": observation(group.tm_patient.id),
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    answered = group.call(group.desk_tm, "POST", "/fhir", bundle)
    assert answered.status_code == 403, answered.text
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{mine}").status_code == 200
