"""``carevault patients register``: the privacy officer's answer to a registration
``Patient/$register`` refused for them (409 "ask the privacy officer"): the officer
confirms who the person is and registers them, with a fresh code and a reason from a
fixed list, in the ledger as theirs. Anyone else, a wrong code, a reason off the list, a
clinic not the group's or active containment changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.access.registrations import CACHE_SECONDS
from carevault.bootstrap import Services
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import TM, TW, Group, build_group, register_body
from tests.integration.gate.presence import NEW_BORN, NEW_HKID, clinics, second_number_beside
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import Staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _refused_at_tsuen_wan(group: Group) -> str:
    """Tuen Mun's patient given a second HKID beside their own: Tsuen Wan's desk is
    sent to the privacy officer (409); the patient's id, as the refusal's entry names it."""
    chart = group.tm_patient.id
    second_number_beside(group, chart)
    refused = group.call(
        group.desk_tw, "POST", "/fhir/Patient/$register", register_body(NEW_HKID, NEW_BORN)
    )
    assert refused.status_code == 409, refused.text
    [entry] = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.principal == f"staff:{group.desk_tw.account.username}"
    ]
    assert entry.resource_id == chart
    return chart


def _register(group: Group, who: Staff, patient: str, *more: str, code: str | None = None) -> Any:
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)
    return invoke_cli(
        env,
        "patients",
        "register",
        f"Patient/{patient}",
        "--officer",
        who.account.username,
        "--totp",
        code or who.totp(),
        *more,
    )


def test_the_officer_registers_the_patient_the_desk_was_sent_to_them_for(group: Group) -> None:
    patient = _refused_at_tsuen_wan(group)

    done = _register(
        group, group.officer, patient, "--clinic", TW, "--reason", "identity-confirmed"
    )

    assert done.returncode == 0, done.stderr
    assert f"registered at {TW}" in done.stdout
    assert clinics(group, patient) == {TM, TW}
    # The command opened services of its own: these ones' answers of where the patient
    # is registered are kept for as long as session state may be stale.
    time.sleep(CACHE_SECONDS + 0.1)
    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}").status_code == 200
    [entry] = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.principal == f"staff:{group.officer.account.username}"
    ]
    assert entry.outcome == Outcome.SUCCESS
    assert entry.detail["proof"] == "officer" and entry.detail["why"] == "identity-confirmed"
    assert entry.patient_pseudonym and entry.source_address == "cli"
    again = _register(
        group, group.officer, patient, "--clinic", TW, "--reason", "identity-confirmed"
    )
    assert again.returncode == 0, again.stderr
    assert "already" in again.stdout


def test_a_wrong_code_registers_no_one_and_is_recorded(group: Group) -> None:
    patient = _refused_at_tsuen_wan(group)

    refused = _register(
        group,
        group.officer,
        patient,
        "--clinic",
        TW,
        "--reason",
        "identity-confirmed",
        code="000000",
    )

    assert refused.returncode == 1
    assert clinics(group, patient) == {TM}
    denied = [
        event
        for event in group.events(Tag.PATIENT_REGISTERED)
        if event.principal == f"staff:{group.officer.account.username}"
    ]
    assert [event.outcome for event in denied] == [Outcome.DENIED]


def test_only_a_privacy_officer_registers_on_confirmation(group: Group) -> None:
    patient = _refused_at_tsuen_wan(group)

    refused = _register(
        group, group.desk_tw, patient, "--clinic", TW, "--reason", "identity-confirmed"
    )

    assert refused.returncode == 1
    assert "privacy officer" in refused.stderr
    assert clinics(group, patient) == {TM}


@pytest.mark.parametrize(
    ("clinic", "reason", "said"),
    [
        (TW, "because", "reason must be one of"),
        ("clinic-nowhere", "identity-confirmed", "one of the group's"),
    ],
)
def test_a_reason_off_the_list_or_a_clinic_not_the_groups_changes_nothing(
    group: Group, clinic: str, reason: str, said: str
) -> None:
    patient = _refused_at_tsuen_wan(group)

    refused = _register(group, group.officer, patient, "--clinic", clinic, "--reason", reason)

    assert refused.returncode == 1
    assert said in refused.stderr
    assert clinics(group, patient) == {TM}


def test_containment_refuses_a_registration_on_confirmation(group: Group) -> None:
    patient = _refused_at_tsuen_wan(group)
    body = {
        "mode": "phi-offline",
        "target": None,
        "reason": "incident 42",
        "totp": group.officer.totp(),
    }
    started = group.web.post("/admin/containment", json=body, headers=group.officer.headers)
    assert started.status_code == 201, started.text

    refused = _register(
        group, group.officer, patient, "--clinic", TW, "--reason", "identity-confirmed"
    )

    assert refused.returncode == 3  # try again later: when containment ends
    assert clinics(group, patient) == {TM}
