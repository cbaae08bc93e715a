"""An incident's scope names the patients its compromised principals registered at a
clinic or moved to another home: access they gave, which no read shows and which stays
after the incident until an officer reviews it (left open at stop 62: a stolen desk
login registering patients by what it knew appeared in no part of the scope unless it
went on to read them).

SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.incidents import Actor, declare_case, scope_document
from carevault.incidents.html import to_html
from carevault.incidents.report import render
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.access.group import TM, TW, Group, build_group, register_body
from tests.integration.gate.presence import planted, registered_at_tsuen_wan
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _scope(group: Group, username: str) -> dict[str, Any]:
    case = {"title": "Desk login phished", "accounts": [username], "since": "2020-01-01"}
    incident = declare_case(group.services, Actor("staff:officer1", "10.1.2.3"), case)
    return scope_document(group.services, incident.incident_id)


def _registrations(group: Group, patient: str) -> list[tuple[int, AuditEvent]]:
    """The patient's successful registrations, in the ledger's order, by position."""
    found = (
        (seq, AuditEvent.from_canonical(data, seq=seq))
        for seq, data in group.services.audit_ledger.store.entries()
    )
    return [
        (seq, event)
        for seq, event in found
        if event.tag is Tag.PATIENT_REGISTERED
        and event.outcome is Outcome.SUCCESS
        and event.resource_id == patient
    ]


def test_the_patients_a_compromised_desk_registered_are_listed_with_the_clinic(
    group: Group,
) -> None:
    """Tsuen Wan's desk registers Tuen Mun's patient on what it knows (their HKID and
    birth date), once more (already registered: nothing given), and a never-seen record
    Tuen Mun's desk wrote (a first presence: its home moves). Both are in the scope of
    Tsuen Wan's desk login, at Tsuen Wan, each with the entry that gave it."""
    patient = group.tm_patient
    body = register_body(patient.hkid, patient.birth_date)
    for _ in range(2):
        answer = group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body)
        assert answer.status_code == 200, answer.text
    newcomer = planted(group)
    registered_at_tsuen_wan(group)

    document = _scope(group, group.desk_tw.login.username)

    lines = {line["patient"]: line for line in document["registered"]}
    assert set(lines) == {patient.id, newcomer}
    assert document["counts"]["registered"] == 2
    (given, _), (_, again) = _registrations(group, patient.id)
    assert again.reason == "already registered"
    assert lines[patient.id]["evidence"] == [given]
    assert lines[patient.id]["registered_at"] == [TW]
    assert lines[newcomer]["registered_at"] == [TW]
    # The first presence took the record from the home the planter gave it.
    assert lines[newcomer]["ended_at"] == [TM]
    assert "ended_at" not in lines[patient.id]
    assert TW in lines[newcomer]["clinics"]
    for line in lines.values():
        assert line["ledger"] == "audit"
        assert line["checkpoint"] is not None
        assert line["checkpoint"] > max(line["evidence"])
        assert line["categories"] == []


def test_the_registered_lines_are_in_every_format(group: Group) -> None:
    patient = group.tm_patient
    body = register_body(patient.hkid, patient.birth_date)
    assert group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body).status_code == 200

    document = _scope(group, group.desk_tw.login.username)

    rows = list(csv.reader(io.StringIO(render(document, "csv"))))
    header, *lines = rows
    (line,) = [dict(zip(header, row, strict=True)) for row in lines if row[0] == "registered"]
    # The clinic it was given to is in every format, not only the JSON (review of stop 63).
    assert (line["patient"], line["registered_at"], line["ended_at"]) == (patient.id, TW, "")
    page = to_html(document)
    assert "Access given or taken" in page
    assert "<td>registered</td>" in page and f"(registered at {TW})" in page


def test_a_registration_more_since_the_last_run_is_among_its_changes(group: Group) -> None:
    """A kept run's ``incident.changes`` compared only the tiers: a registration made
    since the previous run was in no run's changes (review of stop 63)."""
    from carevault.incidents import Actor, declare_case

    case = {"title": "Desk login phished", "accounts": [group.desk_tw.login.username]}
    incident = declare_case(
        group.services, Actor("staff:officer1", "10.1.2.3"), {**case, "since": "2020-01-01"}
    )
    first = scope_document(group.services, incident.incident_id)
    assert first["registered"] == []
    patient = group.tm_patient
    body = register_body(patient.hkid, patient.birth_date)
    assert group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body).status_code == 200

    second = scope_document(group.services, incident.incident_id)

    changes = second["incident"]["changes"]
    assert changes["registered"]["added"] == [patient.id]


def test_a_desk_that_registered_no_one_has_no_registered_lines(group: Group) -> None:
    """Registrations by another login, and a registration the compromised desk was
    refused, are not its."""
    patient = group.tm_patient
    body = register_body(patient.hkid, patient.birth_date)
    assert group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body).status_code == 200
    wrong = register_body(patient.hkid, "1999-01-01")
    assert group.call(group.desk_tm, "POST", "/fhir/Patient/$register", wrong).status_code in (
        404,
        409,
    )

    document = _scope(group, group.desk_tm.login.username)

    assert document["registered"] == []
    assert document["counts"]["registered"] == 0
    assert "Access given" not in to_html(document)


def test_the_registrations_an_officer_ended_are_listed_with_the_clinic(group: Group) -> None:
    """A compromised officer's login ends Tsuen Wan's registration of a patient it
    treats: the patient, cut off from the clinic, is in the officer's scope with the
    clinic (they were only in the potentially tier: review of stop 63); ending one that
    is not there changed nothing and is not evidence."""
    from carevault.gate.registration import unregister
    from tests.support.staff import caller_of

    patient = group.tm_patient
    body = register_body(patient.hkid, patient.birth_date)
    assert group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body).status_code == 200
    officer = caller_of(group.services, group.officer)
    assert unregister(group.services.gate, officer, patient.id, TW, "registered-in-error")
    assert not unregister(group.services.gate, officer, patient.id, TW, "registered-in-error")

    document = _scope(group, group.officer.login.username)

    (line,) = document["registered"]
    assert line["patient"] == patient.id
    assert line["ended_at"] == [TW] and "registered_at" not in line
    assert len(line["evidence"]) == 1
