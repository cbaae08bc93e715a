"""Adversary round 54, as an integration client (client credentials, bound to an
integration account of one clinic) sends ``$import``: records that bear a care
relationship (visits, bookings, care teams, referrals, episodes of care) naming another
clinic's patient, or this clinic's patient and another clinic's doctor; lines that
overwrite or move another clinic's records; and what the refusal of each line tells.

Each attack is compared with what the same staff and the client were answered before
it, so a test fails if the import opened anything, to anyone, in any words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carevault.domain.roles import Role
from carevault.fhir import jsonio
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.writer import Delete
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import (
    MINE,
    OTHER,
    SYSTEM,
    observation,
    patient,
    put,
)
from tests.integration.importjobs.conftest import Clinic
from tests.integration.importjobs.test_import_api import ndjson, outcome_of, refused_lines
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

WHEN = "2026-12-05T09:00:00+08:00"
#: What a reader was answered: (path, status, the OperationOutcome's words or the ids of
#: a Bundle's entries, or the record's version).
Answer = tuple[str, int, str]


def _importer(clinic: Clinic) -> str:
    """A client-credentials token of an app bound to an integration account of MINE."""
    account = make_staff(clinic.services, Role.INTEGRATION, [MINE])
    return clinic.client("feed", account=account.account.username)


def _answers(clinic: Clinic, headers: dict[str, str], paths: list[str]) -> list[Answer]:
    seen: list[Answer] = []
    for path in paths:
        response = clinic.web.get(path, headers=headers)
        body = response.json()
        if body.get("resourceType") == "OperationOutcome":
            told = "; ".join(issue.get("diagnostics", "") for issue in body["issue"])
        elif body.get("resourceType") == "Bundle":
            told = " ".join(
                sorted(
                    entry["resource"]["resourceType"] + "/" + entry["resource"]["id"]
                    for entry in body.get("entry", [])
                    if entry["resource"]["resourceType"] != "OperationOutcome"
                )
            )
        else:
            told = f"{body['resourceType']}/{body['id']} v{body['meta']['versionId']}"
        seen.append((path, response.status_code, told))
    return seen


def _run(clinic: Clinic, token: str, *lines: dict[str, Any]) -> dict[int, str]:
    job = clinic.kick_off(token, ndjson(*lines))
    clinic.work()
    return refused_lines(outcome_of(clinic, token, job))


def _visit(record_id: str, patient_id: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": record_id,
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "serviceProvider": {"reference": f"Organization/{MINE}"},
        "period": {"start": WHEN},
        **more,
    }


def _care_lines(patient_id: str, practitioner: str) -> list[dict[str, Any]]:
    """Every record that bears a care relationship, for ``patient_id``, at MINE, naming
    ``practitioner`` where a record names people."""
    someone = {"reference": f"Practitioner/{practitioner}"}
    return [
        _visit(f"e-{patient_id}", patient_id, participant=[{"individual": someone}]),
        {
            "resourceType": "Appointment",
            "id": f"a-{patient_id}",
            "status": "booked",
            "start": WHEN,
            "end": "2026-12-05T09:15:00+08:00",
            "participant": [
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
                {"actor": {"reference": f"Organization/{MINE}"}, "status": "accepted"},
                {"actor": someone, "status": "accepted"},
            ],
        },
        {
            "resourceType": "CareTeam",
            "id": f"ct-{patient_id}",
            "status": "active",
            "subject": {"reference": f"Patient/{patient_id}"},
            "managingOrganization": [{"reference": f"Organization/{MINE}"}],
            "participant": [{"member": someone}, {"member": {"reference": f"Organization/{MINE}"}}],
        },
        {
            "resourceType": "ServiceRequest",
            "id": f"sr-{patient_id}",
            "status": "active",
            "intent": "order",
            "code": {"text": "endocrinology review"},
            "subject": {"reference": f"Patient/{patient_id}"},
            "authoredOn": WHEN,
            "performer": [someone, {"reference": f"Organization/{MINE}"}],
        },
        {
            "resourceType": "EpisodeOfCare",
            "id": f"ep-{patient_id}",
            "status": "active",
            "patient": {"reference": f"Patient/{patient_id}"},
            "managingOrganization": {"reference": f"Organization/{MINE}"},
        },
    ]


def _their_records(patient_id: str) -> list[str]:
    return [
        f"/fhir/Patient/{patient_id}",
        f"/fhir/Observation/o-{patient_id}",
        f"/fhir/Patient?_id={patient_id}",
        f"/fhir/Observation?patient={patient_id}",
        f"/fhir/Patient/{patient_id}/$everything",
        f"/fhir/Patient/{patient_id}/_history",
    ]


def test_imported_care_for_another_clinics_patient_opens_them_to_no_one_at_the_importers(
    clinic: Clinic,
) -> None:
    """A visit, booking, care team, referral and episode at MINE, naming MINE's doctor,
    for OTHER's patient: whatever of it is accepted, the client, the doctor named, a
    colleague and the desk are answered about the patient exactly as before."""
    put(clinic.services, observation("o-pb0", "pb0", "70.0"))
    token = _importer(clinic)
    readers: dict[str, Callable[[], dict[str, str]]] = {}
    named = make_staff(clinic.services, Role.PHYSICIAN, [MINE], practitioner_id="dr-mine")
    colleague = make_staff(clinic.services, Role.NURSE, [MINE])
    desk = make_staff(clinic.services, Role.FRONT_DESK, [MINE])
    readers = {
        "client": lambda: bearer(token),
        "doctor named": lambda: named.headers,
        "nurse": lambda: colleague.headers,
        "desk": lambda: desk.headers,
    }
    before = {who: _answers(clinic, h(), _their_records("pb0")) for who, h in readers.items()}
    assert all(status in (403, 404) for _, status, _ in before["doctor named"][:2])

    refused = _run(clinic, token, *_care_lines("pb0", "dr-mine"))

    after = {who: _answers(clinic, h(), _their_records("pb0")) for who, h in readers.items()}
    assert after == before
    # The measure can tell an opening: the system's own visit there registers the
    # patient, and the doctor it names reads them.
    put(
        clinic.services,
        _visit(
            "e-system", "pb0", participant=[{"individual": {"reference": "Practitioner/dr-mine"}}]
        ),
    )
    assert clinic.web.get("/fhir/Observation/o-pb0", headers=named.headers).status_code == 200
    # The refusals of the lines name no value of the patient's record.
    assert not any("Family1" in reason for reason in refused.values())


def test_an_imported_care_team_or_referral_opens_its_clinics_patient_to_no_other_clinic(
    clinic: Clinic,
) -> None:
    """MINE cares for its patient (a visit today); the client vouches for them to
    OTHER's doctor by a care team and a referral. A client cares for no one, so nothing
    opens to the doctor it names; the same care team written by MINE's doctor does (the
    measure can tell an opening)."""
    put(
        clinic.services,
        {"resourceType": "Practitioner", "id": "dr-other", "name": [{"family": "Wong"}]},
        observation("o-pa0", "pa0", "61.0"),
        _visit("e-today", "pa0"),
    )
    token = _importer(clinic)
    theirs = make_staff(clinic.services, Role.PHYSICIAN, [OTHER], practitioner_id="dr-other")
    before = _answers(clinic, theirs.headers, _their_records("pa0"))
    assert before[1][1] == 403

    refused = _run(clinic, token, *_care_lines("pa0", "dr-other")[2:4])

    assert refused == {}  # written, as a feed writes them: they open nothing
    assert _answers(clinic, theirs.headers, _their_records("pa0")) == before
    ours = make_staff(clinic.services, Role.PHYSICIAN, [MINE])
    team = {**_care_lines("pa0", "dr-other")[2]}
    del team["id"]
    written = clinic.web.post(
        "/fhir/CareTeam",
        content=jsonio.dumps(team),
        headers={**ours.headers, "content-type": "application/fhir+json"},
    )
    assert written.status_code == 201, written.text
    assert clinic.web.get("/fhir/Observation/o-pa0", headers=theirs.headers).status_code == 200


def test_a_line_naming_a_deleted_patient_of_another_clinic_is_refused_as_an_unknown_id(
    clinic: Clinic,
) -> None:
    """A read of another clinic's deleted patient answers 404, as for an id never used;
    an import line naming one is refused in the same words as one naming no patient."""
    put(clinic.services, patient("pb-gone", OTHER, "Gone"))
    clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Patient"], "pb-gone")])
    token = _importer(clinic)

    refused = _run(
        clinic,
        token,
        observation("o-1", "pb-gone", "1.0"),
        observation("o-2", "never-used", "1.0"),
        _visit("e-1", "pb-gone"),
        _visit("e-2", "never-used"),
    )

    assert sorted(refused) == [1, 2, 3, 4]
    assert refused[1].replace("pb-gone", "<id>") == refused[2].replace("never-used", "<id>")
    assert refused[3].replace("pb-gone", "<id>") == refused[4].replace("never-used", "<id>")


def test_a_line_over_another_clinics_record_is_refused_alike_whichever_patient_it_names(
    clinic: Clinic,
) -> None:
    """OTHER's observation sent back naming MINE's patient (a move), or naming its own
    patient (a guess confirmed): refused in the same words, and nothing written. The
    take-over of OTHER's patient is sent in an import of its own: in the same one, its
    refusal refuses the lines naming that patient for it (round 62), which tells the
    client only what its own refused line did."""
    put(clinic.services, observation("o-pb0", "pb0", "70.0"))
    token = _importer(clinic)

    refused = _run(
        clinic,
        token,
        observation("o-pb0", "pa0", "71.0"),
        observation("o-pb0", "pb0", "71.0"),
    )
    taken = _run(clinic, token, {**patient("pb0", MINE, "Taken")})

    assert sorted(refused) == [1, 2]
    assert list(taken) == [1]
    assert refused[1] == refused[2]
    stored = clinic.services.gate.read(SYSTEM, RESOURCE_TYPES["Observation"], "o-pb0").body
    assert stored is not None and jsonio.load(stored)["meta"]["versionId"] == "1"
    kept = jsonio.load(clinic.services.gate.read(SYSTEM, RESOURCE_TYPES["Patient"], "pb0").body)
    assert kept["managingOrganization"]["reference"] == f"Organization/{OTHER}"
    assert kept["meta"]["versionId"] == "1"


def test_a_deleted_patient_of_another_clinic_is_not_brought_back_by_an_import(
    clinic: Clinic,
) -> None:
    """A Patient line under a deleted patient's id at the client's clinic: refused, the
    patient stays deleted at OTHER and nothing of them opens to the client."""
    put(clinic.services, patient("pb-gone", OTHER, "Gone"), observation("o-gone", "pb-gone", "1"))
    clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Observation"], "o-gone")])
    clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Patient"], "pb-gone")])
    token = _importer(clinic)
    paths = ["/fhir/Patient/pb-gone", "/fhir/Patient/pb-gone/_history/1"]
    before = _answers(clinic, bearer(token), paths)
    assert [status for _, status, _ in before] == [404, 404]

    refused = _run(clinic, token, patient("pb-gone", MINE, "Back"))

    assert list(refused) == [1]
    assert _answers(clinic, bearer(token), paths) == before


def test_a_line_naming_another_clinics_deleted_visit_is_answered_as_one_naming_no_visit(
    clinic: Clinic,
) -> None:
    """The client's patient's observation naming OTHER's deleted visit as its encounter
    was placed at OTHER and refused, where one naming an id never used went in: the
    report told the client which ids had been OTHER's visits."""
    other_visit = {
        **_visit("e-gone", "pb0"),
        "serviceProvider": {"reference": f"Organization/{OTHER}"},
    }
    put(clinic.services, other_visit)
    clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Encounter"], "e-gone")])
    token = _importer(clinic)
    assert clinic.web.get("/fhir/Encounter/e-gone", headers=bearer(token)).status_code == 404

    refused = _run(
        clinic,
        token,
        {**observation("o-1", "pa0", "1.0"), "encounter": {"reference": "Encounter/e-gone"}},
        {**observation("o-2", "pa0", "1.0"), "encounter": {"reference": "Encounter/e-never"}},
    )

    assert refused == {}
    for record in ("o-1", "o-2"):
        assert (
            clinic.web.get(f"/fhir/Observation/{record}", headers=bearer(token)).status_code == 200
        )


def test_a_client_does_not_rewrite_another_clinics_directory_records(clinic: Clinic) -> None:
    """The integration role keeps its clinic's own directory records; another clinic's
    Organization, the Practitioner record of a doctor who works there and its Location
    are refused by line and stay as they were."""
    put(
        clinic.services,
        {"resourceType": "Practitioner", "id": "dr-other", "name": [{"family": "Wong"}]},
        {
            "resourceType": "Location",
            "id": "loc-other",
            "name": "Room 1",
            "managingOrganization": {"reference": f"Organization/{OTHER}"},
        },
    )
    make_staff(clinic.services, Role.PHYSICIAN, [OTHER], practitioner_id="dr-other")
    records = [("Organization", OTHER), ("Practitioner", "dr-other"), ("Location", "loc-other")]

    def stored() -> list[bytes | None]:
        return [
            clinic.services.gate.read(SYSTEM, RESOURCE_TYPES[kind], ident).body
            for kind, ident in records
        ]

    before = stored()
    refused = _run(
        clinic,
        _importer(clinic),
        {"resourceType": "Organization", "id": OTHER, "name": "Renamed"},
        {"resourceType": "Practitioner", "id": "dr-other", "name": [{"family": "Evil"}]},
        {
            "resourceType": "Location",
            "id": "loc-other",
            "name": "Room 1",
            "managingOrganization": {"reference": f"Organization/{MINE}"},
        },
    )

    assert sorted(refused) == [1, 2, 3]
    assert stored() == before
