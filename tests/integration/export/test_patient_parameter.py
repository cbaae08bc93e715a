"""The ``patient`` kick-off parameter (Bulk Data v2: POST only, Patient and Group level,
each a ``valueReference`` to ``Patient/[id]``) narrows an export to the patients named,
and only narrows it: a patient the export could not reach without it is refused in the
words of an unknown id (no existence oracle), the officers approve the narrowed job as
its record shows it, and the files and the ledger hold exactly the patients named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import Response

from carevault.export.model import Level, as_dict
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.ledger.events import AuditEvent, Tag
from carevault.vault.writer import Delete
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, OTHER, SYSTEM, Clinic
from tests.integration.export.test_export import (
    ASYNC,
    approve_and_run,
    events,
    files,
    status,
)
from tests.integration.export.test_post_kick_off import job_of, post_kick_off

pytestmark = pytest.mark.postgres

#: The bound docs/export.md gives for the ``patient`` list.
MAX_PATIENTS = 1000


def named(*patient_ids: str) -> list[dict[str, Any]]:
    return [
        {"name": "patient", "valueReference": {"reference": f"Patient/{p}"}} for p in patient_ids
    ]


def refusals(clinic: Clinic) -> list[AuditEvent]:
    found = [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]
    return [e for e in found if e.tag is Tag.EXPORT_REFUSED]


def nothing_made(clinic: Clinic) -> None:
    assert clinic.services.exports is not None
    assert clinic.services.exports.jobs.all() == []
    assert not [e for e in _all(clinic) if e.tag is Tag.EXPORT_REQUESTED]


def _all(clinic: Clinic) -> list[AuditEvent]:
    return [
        AuditEvent.from_canonical(data) for _, data in clinic.services.audit_ledger.store.entries()
    ]


def diagnostics(response: Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    text: str = body["issue"][0]["diagnostics"]
    return text


def test_patient_narrows_a_patient_export_to_those_named_end_to_end(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    chosen = [clinic.mine[3], clinic.mine[1]]
    job = job_of(clinic, post_kick_off(clinic, token, named(*chosen)))
    assert job.patients == tuple(chosen)

    # What the officers approve shows the narrowing, as it shows _type and _since.
    shown = clinic.web.get(f"/admin/exports/{job.job_id}", headers=clinic.officers[0].headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["patients"] == chosen
    (requested,) = [e for e in _all(clinic) if e.tag is Tag.EXPORT_REQUESTED]
    assert requested.detail["patients"] == 2
    assert job.approvals_needed == 1  # as without the list: the client's reach decides
    waiting = status(clinic, token, job.job_id)
    assert waiting.status_code == 202
    assert waiting.headers["x-progress"] == "awaiting privacy officer approval (0 of 1)"

    approve_and_run(clinic, job.job_id)
    done = status(clinic, token, job.job_id)
    assert done.status_code == 200, done.text
    exported = files(clinic, token, done.json())
    assert sorted(p["id"] for p in exported["Patient"]) == sorted(chosen)
    assert sorted(o["subject"]["reference"] for o in exported["Observation"]) == sorted(
        f"Patient/{p}" for p in chosen for _ in range(2)
    )
    # One ledger entry per exported patient: exactly those named.
    recorded = events(clinic, Tag.FHIR_EXPORT, job.job_id)
    assert sorted(e.resource_id for e in recorded if e.resource_id) == sorted(chosen)
    assert len(recorded) == 2
    (completed,) = events(clinic, Tag.EXPORT_COMPLETED, job.job_id)
    assert completed.detail["patients"] == 2
    assert clinic.services.exports is not None
    finished = clinic.services.exports.job(job.job_id)
    assert (finished.patients_total, finished.patients_done) == (2, 2)


def test_patient_narrows_a_group_export_too(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    parts = [{"name": "_type", "valueString": "Patient"}, *named(clinic.mine[0])]
    job = job_of(clinic, post_kick_off(clinic, token, parts, f"/fhir/Group/{MINE}/$export"))
    assert (job.level, job.patients) == (Level.GROUP, (clinic.mine[0],))
    approve_and_run(clinic, job.job_id)
    exported = files(clinic, token, status(clinic, token, job.job_id).json())
    assert [p["id"] for p in exported["Patient"]] == [clinic.mine[0]]
    recorded = events(clinic, Tag.FHIR_EXPORT, job.job_id)
    assert [e.resource_id for e in recorded] == [clinic.mine[0]]


def test_a_patient_of_another_clinic_is_refused_in_the_words_of_an_unknown_id(
    clinic: Clinic,
) -> None:
    """The client (of MINE) names another clinic's patient beside its own: nothing is
    made, and the answer is the one an id never used gets, word for word, so it tells
    no more than a read of the client's own patients does."""
    token = clinic.client("exporter", "system/*.read")
    theirs = post_kick_off(clinic, token, named(clinic.mine[0], clinic.other[0]))
    unknown = post_kick_off(clinic, token, named(clinic.mine[0], "no-such-patient"))
    assert theirs.status_code == unknown.status_code == 400, theirs.text
    said = diagnostics(theirs)
    assert said.startswith("patient: ")
    assert said.replace(clinic.other[0], "X") == diagnostics(unknown).replace(
        "no-such-patient", "X"
    )
    assert set(theirs.headers) - {"content-length"} == set(unknown.headers) - {"content-length"}
    nothing_made(clinic)
    assert len(refusals(clinic)) == 2


def test_a_group_export_refuses_a_patient_of_the_client_outside_the_group_alike(
    clinic: Clinic,
) -> None:
    """A client of both clinics may export OTHER's patients, but not through Group MINE:
    a patient outside the Group is refused as an unknown id is (the IG's error for a
    patient "not members of the group")."""
    token = clinic.client("both-clinics", "system/*.read", [MINE, OTHER])
    path = f"/fhir/Group/{MINE}/$export"
    outside = post_kick_off(clinic, token, named(clinic.other[0]), path)
    unknown = post_kick_off(clinic, token, named("no-such-patient"), path)
    assert outside.status_code == unknown.status_code == 400
    assert diagnostics(outside).startswith(f"patient: Patient/{clinic.other[0]} ")
    assert diagnostics(outside).replace(clinic.other[0], "X") == diagnostics(unknown).replace(
        "no-such-patient", "X"
    )
    nothing_made(clinic)


def test_lenient_handling_does_not_turn_the_refusal_into_leaving_out(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    body = {"resourceType": "Parameters", "parameter": named(clinic.mine[0], clinic.other[0])}
    refused = clinic.web.post(
        "/fhir/Patient/$export",
        content=json.dumps(body),
        headers={
            **bearer(token),
            "prefer": "respond-async, handling=lenient",
            "accept": "application/fhir+json",
            "content-type": "application/fhir+json",
        },
    )
    assert refused.status_code == 400
    assert "patient: " in diagnostics(refused)
    nothing_made(clinic)


def test_a_patient_who_leaves_the_clients_reach_after_the_kick_off_is_not_exported(
    clinic: Clinic,
) -> None:
    """The list is judged again by the worker, on the reach as it is then: a patient
    deleted meanwhile (all their records first) is not exported, nor in the ledger."""
    token = clinic.client("exporter", "system/*.read")
    stays, leaves = clinic.mine[0], clinic.mine[1]
    job = job_of(clinic, post_kick_off(clinic, token, named(stays, leaves)))
    observations, patients = RESOURCE_TYPES["Observation"], RESOURCE_TYPES["Patient"]
    clinic.services.gate.write(
        SYSTEM,
        [
            Delete(observations, f"o-{leaves}-1"),
            Delete(observations, f"o-{leaves}-2"),
            Delete(patients, leaves),
        ],
    )
    approve_and_run(clinic, job.job_id)
    exported = files(clinic, token, status(clinic, token, job.job_id).json())
    assert [p["id"] for p in exported["Patient"]] == [stays]
    assert [e.resource_id for e in events(clinic, Tag.FHIR_EXPORT, job.job_id)] == [stays]


@pytest.mark.parametrize(
    ("parts", "said"),
    [
        (
            [{"name": "patient", "valueString": "Patient/pa0"}],
            "patient: a valueString is not accepted (give valueReference)",
        ),
        ([{"name": "patient"}], "patient: the parameter has no value"),
        (
            [{"name": "patient", "valueReference": {"reference": "Observation/o-pa0-1"}}],
            "is not a reference to Patient/[id]",
        ),
        (
            [
                {
                    "name": "patient",
                    "valueReference": {"reference": "https://x.test/fhir/Patient/pa0"},
                }
            ],
            "is not a reference to Patient/[id]",
        ),
        (
            [{"name": "patient", "valueReference": {"reference": "Patient/pa0/_history/1"}}],
            "is not a reference to Patient/[id]",
        ),
        (
            [{"name": "patient", "valueReference": {"identifier": {"value": "A123456(7)"}}}],
            "patient: a valueReference with a reference to Patient/[id]",
        ),
        ([{"name": "patient", "valueReference": "Patient/pa0"}], "a valueReference with"),
        (named("pa0", "pa1", "pa0"), "patient: Patient/pa0 is given twice"),
        (named(*(f"p{i}" for i in range(MAX_PATIENTS + 1))), f"at most {MAX_PATIENTS} patients"),
    ],
)
def test_a_bad_patient_parameter_is_refused_naming_it_and_nothing_is_made(
    clinic: Clinic, parts: list[dict[str, Any]], said: str
) -> None:
    token = clinic.client("exporter", "system/*.read")
    refused = post_kick_off(clinic, token, parts)
    assert refused.status_code == 400, refused.text
    assert said in diagnostics(refused)
    nothing_made(clinic)
    assert len(refusals(clinic)) == 1


def test_a_list_at_the_bound_is_taken_and_judged_whole(clinic: Clinic) -> None:
    """A list of exactly the bound is read and matched against the reach in one query
    (on both backends), not refused for its length."""
    token = clinic.client("exporter", "system/*.read")
    unknown = [f"p{i}" for i in range(MAX_PATIENTS - 1)]
    refused = post_kick_off(clinic, token, named(clinic.mine[0], *unknown))
    assert refused.status_code == 400
    said = diagnostics(refused)
    assert said.startswith("patient: Patient/p0 is not a patient this export may reach")
    assert f"({MAX_PATIENTS - 1} of those named are not)" in said
    nothing_made(clinic)
    accepted = job_of(clinic, post_kick_off(clinic, token, named(*clinic.mine)))
    assert accepted.patients == tuple(clinic.mine)


def test_patient_is_not_taken_by_a_system_level_export(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    refused = post_kick_off(clinic, token, named(clinic.mine[0]), "/fhir/$export")
    assert refused.status_code == 400
    assert "patient: not applicable to a system-level export" in diagnostics(refused)
    nothing_made(clinic)


def test_patient_in_the_query_string_is_refused_it_is_a_post_parameter(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    refused = clinic.web.get(
        f"/fhir/Patient/$export?patient=Patient/{clinic.mine[0]}",
        headers={**bearer(token), **ASYNC},
    )
    assert refused.status_code == 400
    assert "patient: give it in a POST's Parameters body" in diagnostics(refused)
    nothing_made(clinic)


def test_the_cli_and_the_desk_show_the_list_the_officers_approve(clinic: Clinic) -> None:
    token = clinic.client("exporter", "system/*.read")
    job = job_of(clinic, post_kick_off(clinic, token, named(clinic.mine[2])))
    assert as_dict(job)["patients"] == [clinic.mine[2]]
    listed = clinic.web.get("/admin/exports?status=pending", headers=clinic.officers[0].headers)
    assert [item["patients"] for item in listed.json()] == [[clinic.mine[2]]]
