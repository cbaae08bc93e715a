"""Adversary round 51: a search that names its patients (``patient=``, ``subject=``) tells
something of each of them even when it shows no record: ``Appointment?patient=X
&_summary=count`` (or ``_count=0``) says how many bookings X has, and with a code
(``Condition?patient=X&code=...``) whether X has that diagnosis. Its ledger entry named no
patient and the release budget spent nothing, so a desk (or a clinician) asked of one
patient after another, or of a list of them in one request, past the budget, and the
detectors and the patients' access reports never saw whom. Now every patient a search
names is named in its ledger entries and counted by the release budget, records shown or
not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from carevault.db import read_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.tables import detect_release
from carevault.vault.tables import resource_head
from tests.integration.detect.conftest import (
    RAISE_ONLY,
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)

#: The desk's budget in ``detect_settings``: distinct patients an hour.
BUDGET = 30


@pytest.fixture
def booked(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    """Clinic A's 45 patients, each with a booking the desk made."""
    settings = clinic_settings(
        backend,
        tmp_path,
        request,
        release_budget=f"front_desk={BUDGET}/100",
        detect_responses=RAISE_ONLY,
    )
    with opened_clinic(settings, clinic_patients()) as clinic:
        for patient in clinic.patients:
            made = clinic.web.post_json(
                "/fhir/Appointment",
                {
                    "resourceType": "Appointment",
                    "status": "booked",
                    "start": "2030-01-01T09:00:00Z",
                    "end": "2030-01-01T09:15:00Z",
                    "participant": [
                        {"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}
                    ],
                },
                **clinic.desk.headers,
            )
            assert made.status_code == 201, made.text
        yield clinic


def _released(clinic: Clinic) -> int:
    with read_transaction(clinic.services.engine) as connection:
        return len(connection.execute(select(detect_release.c.pseudonym)).all())


@pytest.mark.parametrize("count_only", ["_summary=count", "_count=0"])
def test_counts_asked_patient_by_patient_stop_at_the_release_budget(
    booked: Clinic, count_only: str
) -> None:
    statuses = [
        booked.web.get(
            f"/fhir/Appointment?patient={patient}&{count_only}", headers=booked.desk.headers
        ).status_code
        for patient in booked.patients
    ]
    assert statuses == [200] * BUDGET + [429] * (len(booked.patients) - BUDGET)
    assert _released(booked) == BUDGET
    assert "release-budget" in {a["detector"] for a in alerts_as_dicts(booked.services)}


def test_a_count_of_a_list_of_patients_names_each_of_them(booked: Clinic) -> None:
    few = booked.patients[:5]
    answered = booked.web.get(
        f"/fhir/Appointment?patient={','.join(few)}&_summary=count",
        headers=booked.desk.headers,
    )
    assert answered.status_code == 200
    assert answered.json()["total"] == 5
    assert _released(booked) == 5
    many = booked.web.get(
        f"/fhir/Appointment?patient={','.join(booked.patients)}&_summary=count",
        headers=booked.desk.headers,
    )
    assert many.status_code == 429


def test_a_search_by_patient_that_shows_nothing_still_names_the_patient(booked: Clinic) -> None:
    patient = booked.patients[0]
    empty = booked.web.get(
        f"/fhir/Appointment?patient={patient}&date=2020-01-01", headers=booked.desk.headers
    )
    assert empty.status_code == 200
    assert empty.json()["total"] == 0
    assert _released(booked) == 1


def _bookings(clinic: Clinic) -> list[str]:
    """The ids of the desk's bookings, one per patient (from the index: any search of
    them by the desk would spend its budget)."""
    head = resource_head.c
    with read_transaction(clinic.services.engine) as connection:
        rows = connection.execute(
            select(head.resource_id).where(head.resource_type == "Appointment")
        ).all()
    return sorted(row.resource_id for row in rows)


@pytest.mark.parametrize("named_by", ["actor", "_id"])
def test_a_count_naming_a_patient_otherwise_names_them_too(booked: Clinic, named_by: str) -> None:
    # ``actor`` may point at a Patient without being a patient parameter; a booking's
    # ``_id`` names the booking, and so its patient.
    if named_by == "actor":
        asked = [f"Appointment?actor=Patient/{patient}" for patient in booked.patients[:12]]
    else:
        asked = [f"Appointment?_id={booking}" for booking in _bookings(booked)[:12]]
    for query in asked:
        answered = booked.web.get(f"/fhir/{query}&_summary=count", headers=booked.desk.headers)
        assert answered.status_code == 200
        assert answered.json()["total"] == 1
    assert _released(booked) == 12
