"""A POST kick-off's Parameters body is applied exactly as the same parameters in a GET's
query string, or refused naming what is not applied: never ignored (an ignored filter
would export more patient data than was asked)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import Response

from carevault.export.model import Job
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import Clinic, observation, put
from tests.integration.export.test_export import (
    ASYNC,
    approve_and_run,
    files,
    kick_off,
    status,
)

pytestmark = pytest.mark.postgres


def post_kick_off(
    clinic: Clinic, token: str, parts: list[dict[str, Any]], path: str = "/fhir/Patient/$export"
) -> Response:
    body = {"resourceType": "Parameters", "parameter": parts}
    return clinic.web.post(
        path,
        content=json.dumps(body),
        headers={**bearer(token), **ASYNC, "content-type": "application/fhir+json"},
    )


def job_of(clinic: Clinic, response: Response) -> Job:
    assert response.status_code == 202, response.text
    assert clinic.services.exports is not None
    return clinic.services.exports.job(response.headers["content-location"].rsplit("/", 1)[1])


def since_after_first_export(clinic: Clinic) -> str:
    """An instant after every record so far; one observation changed after it."""
    token = clinic.client("first", "system/*.read")
    job_id = kick_off(clinic, token)
    approve_and_run(clinic, job_id)
    since: str = status(clinic, token, job_id).json()["transactionTime"]
    changed = clinic.mine[1]
    put(clinic.services, observation(f"o-{changed}-1", changed, "70.00"))
    return since


def test_since_as_value_instant_exports_what_the_same_since_in_the_query_does(
    clinic: Clinic,
) -> None:
    since = since_after_first_export(clinic)
    by_get = clinic.client("by-get", "system/*.read")
    by_post = clinic.client("by-post", "system/*.read")
    asked = job_of(
        clinic,
        clinic.web.get(
            f"/fhir/Patient/$export?_since={since}", headers={**bearer(by_get), **ASYNC}
        ),
    )
    posted = job_of(
        clinic, post_kick_off(clinic, by_post, [{"name": "_since", "valueInstant": since}])
    )
    assert posted.since_us is not None
    assert (posted.since_us, posted.types) == (asked.since_us, asked.types)

    approve_and_run(clinic, asked.job_id)
    approve_and_run(clinic, posted.job_id)
    from_get = files(clinic, by_get, status(clinic, by_get, asked.job_id).json())
    from_post = files(clinic, by_post, status(clinic, by_post, posted.job_id).json())
    assert from_post == from_get
    assert [o["id"] for o in from_post["Observation"]] == [f"o-{clinic.mine[1]}-1"]
    assert "Patient" not in from_post


def test_repeated_and_comma_separated_types_are_merged(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    parts = [
        {"name": "_type", "valueString": "Patient"},
        {"name": "_type", "valueString": "Observation,Patient"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
    ]
    job = job_of(clinic, post_kick_off(clinic, token, parts))
    assert job.types == ("Patient", "Observation")


@pytest.mark.parametrize(
    ("part", "named"),
    [
        ({"name": "_typeFilter", "valueString": "Observation?status=final"}, "_typeFilter"),
        ({"name": "_elements", "valueString": "id"}, "_elements"),
        ({"name": "includeAssociatedData", "valueCode": "LatestProvenanceResources"}, "include"),
        ({"name": "_since", "valueInteger": 2024}, "_since: a valueInteger is not accepted"),
        ({"name": "_type", "valueCoding": {"code": "Patient"}}, "_type: a valueCoding"),
        ({"name": "_since"}, "_since: the parameter has no value"),
        ({"name": "_since", "valueDateTime": "2024-01-01"}, "_since: give a full instant"),
        ({"name": "_sincee", "valueInstant": "2024-01-01T00:00:00Z"}, "unknown parameter"),
    ],
)
def test_a_part_not_applied_is_refused_naming_it_and_no_job_is_made(
    clinic: Clinic, part: dict[str, Any], named: str
) -> None:
    token = clinic.client("exporter", "system/*.read")
    refused = post_kick_off(clinic, token, [{"name": "_type", "valueString": "Patient"}, part])
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["resourceType"] == "OperationOutcome"
    assert named in body["issue"][0]["diagnostics"]
    assert clinic.services.exports is not None
    assert clinic.services.exports.jobs.all() == []


def test_since_given_twice_is_refused(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    twice = [
        {"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"},
        {"name": "_since", "valueInstant": "2025-01-01T00:00:00Z"},
    ]
    refused = post_kick_off(clinic, token, twice)
    assert refused.status_code == 400
    assert "_since: give it once" in refused.json()["issue"][0]["diagnostics"]
    query = "_since=2024-01-01T00:00:00Z&_since=2025-01-01T00:00:00Z"
    by_get = clinic.web.get(f"/fhir/Patient/$export?{query}", headers={**bearer(token), **ASYNC})
    assert by_get.status_code == 400


def test_a_kick_off_refused_before_the_service_reads_it_is_recorded_as_an_export_refusal(
    clinic: Clinic,
) -> None:
    """A body that is no Parameters, or no Prefer header, was refused by the route with
    only a generic request refusal in the ledger (stop 35's adversary): an officer who
    watches refused exports saw nothing of it."""
    token = clinic.client("exporter", "system/*.read")
    malformed = clinic.web.post(
        "/fhir/Patient/$export",
        content=json.dumps({"resourceType": "Parameters", "parameter": {"name": "_type"}}),
        headers={**bearer(token), **ASYNC, "content-type": "application/fhir+json"},
    )
    no_prefer = clinic.web.get("/fhir/Patient/$export", headers=bearer(token))
    assert malformed.status_code == no_prefer.status_code == 400
    found = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    refused = [event for event in found if event.tag is Tag.EXPORT_REFUSED]
    assert len(refused) == 2, [event.reason for event in refused]
    assert all(event.principal.startswith("client:") for event in refused)
    assert "Prefer: respond-async" in refused[1].reason
