"""``carevault patients register``: the privacy officer's answer to a registration
``Patient/$register`` refused for them (409 "ask the privacy officer"): the officer
confirms who the person is and registers them, with a fresh code and a reason from a
fixed list, in the ledger as theirs. Anyone else, a wrong code, a reason off the list, a
clinic not the group's or active containment changes nothing (SQLite and PostgreSQL).

``carevault patients identifiers`` and ``remove-identifier``: the officer lists a
patient's identifiers (a read, in the ledger before anything is printed) and takes off
the HKID a desk mistyped beside the patient's own, which the desk may neither read nor
remove (stop 63); the ledger names the system and the reason, never the value."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from carevault.access.registrations import CACHE_SECONDS
from carevault.bootstrap import Services
from carevault.domain.categories import DataCategory
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.trail import AuditUnavailable
from carevault.ledger.writer import LedgerWriter
from tests.integration.access.group import TM, TW, Group, booked_today, build_group, register_body
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
    return _patients(group, "register", who, patient, *more, code=code)


def _patients(
    group: Group, command: str, who: Staff, patient: str, *more: str, code: str | None = None
) -> Any:
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)
    return invoke_cli(
        env,
        "patients",
        command,
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


def _phi_offline(group: Group, mode: str = "phi-offline", target: str | None = None) -> None:
    """The officer starts containment (by default, takes PHI offline)."""
    body = {
        "mode": mode,
        "target": target,
        "reason": "incident 42",
        "totp": group.officer.totp(),
    }
    started = group.web.post("/admin/containment", json=body, headers=group.officer.headers)
    assert started.status_code == 201, started.text


def test_containment_refuses_a_registration_on_confirmation(group: Group) -> None:
    patient = _refused_at_tsuen_wan(group)
    _phi_offline(group)

    refused = _register(
        group, group.officer, patient, "--clinic", TW, "--reason", "identity-confirmed"
    )

    assert refused.returncode == 3  # try again later: when containment ends
    assert clinics(group, patient) == {TM}


#: The HKID Tuen Mun's desk mistypes beside its patient's own (a valid check digit).
MISTYPED = NEW_HKID


def _mistyped_beside(group: Group) -> str:
    """Tuen Mun's desk saves its view of its patient with a mistyped HKID added (the one
    it was not shown is kept): Tsuen Wan's desk, shown the patient's own HKID and birth
    date, is sent to the privacy officer (409). The patient's id."""
    patient = group.tm_patient
    path = f"/fhir/Patient/{patient.id}"
    shown = group.call(group.desk_tm, "GET", path).json()
    body = {key: value for key, value in shown.items() if key != "meta"}
    body["identifier"] = [*body.get("identifier", []), {"system": HKID_SYSTEM, "value": MISTYPED}]
    saved = group.call(group.desk_tm, "PUT", path, body)
    assert saved.status_code == 200, saved.text
    assert _desk_tw_registers(group).status_code == 409
    return patient.id


def _desk_tw_registers(group: Group, hkid: str | None = None) -> Any:
    patient = group.tm_patient
    body = register_body(hkid or patient.hkid, patient.birth_date)
    return group.call(group.desk_tw, "POST", "/fhir/Patient/$register", body)


def _remove(group: Group, who: Staff, patient: str, *more: str, code: str | None = None) -> Any:
    return _patients(group, "remove-identifier", who, patient, *more, code=code)


#: What ``remove-identifier`` is given to take the mistyped number off.
TAKE_OFF = ("--system", HKID_SYSTEM, "--value", MISTYPED, "--reason", "mistyped")


def _correcting(
    group: Group, command: str, who: Staff, patient: str, code: str | None = None
) -> Any:
    """``command`` (``identifiers``, or ``remove-identifier`` of the mistyped number)."""
    more = TAKE_OFF if command == "remove-identifier" else ()
    return _patients(group, command, who, patient, *more, code=code)


def _version(group: Group, patient: str) -> int:
    return group.services.vault.locate("Patient", patient).head.version_id


def _officers(group: Group, tag: Tag) -> list[AuditEvent]:
    officer = f"staff:{group.officer.account.username}"
    return [event for event in group.events(tag) if event.principal == officer]


def _no_value_in_the_ledger(group: Group) -> None:
    """Nothing of the mistyped number in any entry, in any spelling."""
    for event in group.events():
        written = event.canonical().decode()
        assert "654321" not in written, written


def test_the_officer_removes_a_mistyped_hkid_and_the_patient_registers_normally(
    group: Group,
) -> None:
    patient = _mistyped_beside(group)

    listed = _patients(group, "identifiers", group.officer, patient)
    removed = _remove(
        group,
        group.officer,
        patient,
        "--system",
        HKID_SYSTEM,
        "--value",
        "k 654321 (9)",  # as the index reads it: the same number
        "--reason",
        "mistyped",
    )

    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.strip().splitlines()) == 1
    assert f"{HKID_SYSTEM}|{group.tm_patient.hkid}" in listed.stdout
    assert f"{HKID_SYSTEM}|{MISTYPED}" in listed.stdout
    [read] = [e for e in _officers(group, Tag.FHIR_READ) if e.resource_id == patient]
    assert read.outcome is Outcome.SUCCESS and read.purpose == "HOPERAT"
    assert read.patient_pseudonym and read.source_address == "cli"
    assert DataCategory.GOVERNMENT_ID in read.categories
    assert read.detail["released_for"] == "identifier-correction"
    assert removed.returncode == 0, removed.stderr
    [entry] = _officers(group, Tag.PATIENT_IDENTIFIER_REMOVED)
    assert entry.outcome is Outcome.SUCCESS and entry.resource_id == patient
    assert entry.detail["why"] == "mistyped"
    assert entry.detail["identifier_system"] == HKID_SYSTEM
    [written] = [e for e in _officers(group, Tag.FHIR_UPDATE) if e.resource_id == patient]
    assert written.detail["why"] == "mistyped"
    _no_value_in_the_ledger(group)
    # The patient's own number is all the record holds: registered as any patient is.
    assert _desk_tw_registers(group).status_code == 200
    assert clinics(group, patient) == {TM, TW}
    # The blind index no longer finds the patient by the mistyped number.
    assert _desk_tw_registers(group, MISTYPED).status_code == 404
    again = _patients(group, "identifiers", group.officer, patient)
    assert MISTYPED not in again.stdout and group.tm_patient.hkid in again.stdout


def test_a_list_the_ledger_cannot_record_is_not_printed(
    group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = _mistyped_beside(group)
    record = LedgerWriter.record

    def unavailable(self: LedgerWriter, events: Any, *args: Any, **kwargs: Any) -> None:
        if any(event.tag is Tag.FHIR_READ for event in events):
            raise AuditUnavailable("the audit ledger could not be written")
        record(self, events, *args, **kwargs)

    monkeypatch.setattr(LedgerWriter, "record", unavailable)

    listed = _patients(group, "identifiers", group.officer, patient)

    assert listed.returncode == 3
    assert group.tm_patient.hkid not in listed.stdout + listed.stderr
    assert MISTYPED not in listed.stdout + listed.stderr


@pytest.mark.parametrize("command", ["identifiers", "remove-identifier"])
def test_a_wrong_code_corrects_nothing_and_is_recorded(group: Group, command: str) -> None:
    patient = _mistyped_beside(group)
    before = _version(group, patient)

    refused = _correcting(group, command, group.officer, patient, code="000000")

    assert refused.returncode == 1
    assert MISTYPED not in refused.stdout and group.tm_patient.hkid not in refused.stdout
    assert _version(group, patient) == before
    tag = Tag.PATIENT_IDENTIFIER_REMOVED if command == "remove-identifier" else Tag.FHIR_READ
    assert [event.outcome for event in _officers(group, tag)] == [Outcome.DENIED]


@pytest.mark.parametrize("command", ["identifiers", "remove-identifier"])
def test_only_a_privacy_officer_corrects_identifiers(group: Group, command: str) -> None:
    patient = _mistyped_beside(group)
    before = _version(group, patient)

    refused = _correcting(group, command, group.desk_tm, patient)

    assert refused.returncode == 1
    assert "privacy officer" in refused.stderr
    assert MISTYPED not in refused.stdout
    assert _version(group, patient) == before
    assert _desk_tw_registers(group).status_code == 409


@pytest.mark.parametrize(
    ("system", "value", "reason", "said"),
    [
        (HKID_SYSTEM, "A765432(1)", "mistyped", "holds no such identifier"),
        ("urn:other", MISTYPED, "mistyped", "holds no such identifier"),
        (HKID_SYSTEM, MISTYPED, "because K654321(9) is wrong", "reason must be one of"),
    ],
)
def test_an_identifier_not_held_or_a_reason_off_the_list_changes_nothing(
    group: Group, system: str, value: str, reason: str, said: str
) -> None:
    patient = _mistyped_beside(group)
    before = _version(group, patient)

    refused = _remove(
        group,
        group.officer,
        patient,
        "--system",
        system,
        "--value",
        value,
        "--reason",
        reason,
    )

    assert refused.returncode == 1
    assert said in refused.stderr
    assert _version(group, patient) == before
    [entry] = _officers(group, Tag.PATIENT_IDENTIFIER_REMOVED)
    assert entry.outcome is not Outcome.SUCCESS
    assert "identifier_system" not in entry.detail
    _no_value_in_the_ledger(group)
    assert _desk_tw_registers(group).status_code == 409


def test_an_unknown_patient_is_refused(group: Group) -> None:
    refused = _remove(group, group.officer, "no-such-patient", *TAKE_OFF)

    assert refused.returncode == 1
    [entry] = _officers(group, Tag.PATIENT_IDENTIFIER_REMOVED)
    assert entry.outcome is not Outcome.SUCCESS
    _no_value_in_the_ledger(group)


@pytest.mark.parametrize(
    ("command", "mode", "target"),
    [
        ("identifiers", "phi-offline", None),
        ("remove-identifier", "phi-offline", None),
        ("identifiers", "clinic-lock", TM),
        ("remove-identifier", "clinic-lock", TM),
    ],
)
def test_containment_refuses_a_correction_and_its_list(
    group: Group, command: str, mode: str, target: str | None
) -> None:
    patient = _mistyped_beside(group)
    before = _version(group, patient)
    _phi_offline(group, mode, target)

    refused = _correcting(group, command, group.officer, patient)

    assert refused.returncode == 3  # try again later: when containment ends
    assert MISTYPED not in refused.stdout
    assert _version(group, patient) == before


def _tsuen_wan_registers_tuen_muns_patient(group: Group) -> str:
    """Tsuen Wan's desk registers Tuen Mun's patient on what it knows, and books them
    with its doctor (a stolen desk login's doing, in an incident's scope as registered)."""
    patient = group.tm_patient
    answer = group.call(
        group.desk_tw,
        "POST",
        "/fhir/Patient/$register",
        register_body(patient.hkid, patient.birth_date),
    )
    assert answer.status_code == 200, answer.text
    booked = group.call(
        group.desk_tw, "POST", "/fhir/Appointment", booked_today(patient.id, TW, "dr-tw")
    )
    assert booked.status_code == 201, booked.text
    assert (
        group.call(group.doctor_tw, "GET", f"/fhir/Observation/{patient.observation}").status_code
        == 200
    )
    return patient.id


def _unregister(group: Group, who: Staff, patient: str, *more: str, code: str | None = None) -> Any:
    return _patients(group, "unregister", who, patient, *more, code=code)


def test_the_officer_ends_a_registration_a_stolen_login_made(group: Group) -> None:
    """What an incident's scope lists as a compromised desk's registrations is undone
    one by one: Tsuen Wan no longer reaches the patient (its desk, and its doctor, whose
    care the desk's booking opened), Tuen Mun, the home, still does; in the ledger as
    the officer's, and in the patient's access report."""
    patient = _tsuen_wan_registers_tuen_muns_patient(group)

    done = _unregister(
        group, group.officer, patient, "--clinic", TW, "--reason", "compromised-account"
    )

    assert done.returncode == 0, done.stderr
    assert f"registration at {TW} ended" in done.stdout
    assert clinics(group, patient) == {TM}
    time.sleep(CACHE_SECONDS + 0.1)
    assert group.call(group.desk_tw, "GET", f"/fhir/Patient/{patient}").status_code in (403, 404)
    observation = f"/fhir/Observation/{group.tm_patient.observation}"
    assert group.call(group.doctor_tw, "GET", observation).status_code in (403, 404)
    assert group.call(group.desk_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200
    [entry] = _officers(group, Tag.PATIENT_UNREGISTERED)
    assert entry.outcome == Outcome.SUCCESS and entry.patient_pseudonym
    assert entry.detail == {"clinic": TW, "why": "compromised-account"}
    group.services.audit_ledger.checkpoints.make("test")
    report = group.web.get(
        f"/audit/patients/{patient}/access-report", headers=group.officer.headers
    )
    assert "fhir:patient:unregistered" in {line["action"] for line in report.json()["accesses"]}
    again = _unregister(
        group, group.officer, patient, "--clinic", TW, "--reason", "compromised-account"
    )
    assert again.returncode == 0, again.stderr
    assert "was not registered" in again.stdout


def test_the_home_clinic_a_wrong_code_or_a_desk_ends_nothing(group: Group) -> None:
    """The home is no registration (a transfer moves it); a wrong code, a reason off the
    list and a desk's account end nothing, each refusal recorded."""
    patient = _tsuen_wan_registers_tuen_muns_patient(group)

    home = _unregister(
        group, group.officer, patient, "--clinic", TM, "--reason", "registered-in-error"
    )
    wrong = _unregister(
        group,
        group.officer,
        patient,
        "--clinic",
        TW,
        "--reason",
        "compromised-account",
        code="000000",
    )
    off_list = _unregister(group, group.officer, patient, "--clinic", TW, "--reason", "because")
    desk = _unregister(
        group, group.desk_tm, patient, "--clinic", TW, "--reason", "compromised-account"
    )

    assert home.returncode == 1 and "home clinic" in home.stderr
    assert wrong.returncode == 1 and off_list.returncode == 1 and desk.returncode == 1
    assert "compromised-account" in off_list.stderr and "because" not in off_list.stderr
    assert clinics(group, patient) == {TM, TW}
    refused = [
        event
        for event in group.events(Tag.PATIENT_UNREGISTERED)
        if event.outcome != Outcome.SUCCESS
    ]
    assert len(refused) == 4


def test_containment_ends_no_registration(group: Group) -> None:
    patient = _tsuen_wan_registers_tuen_muns_patient(group)
    _phi_offline(group)

    done = _unregister(
        group, group.officer, patient, "--clinic", TW, "--reason", "compromised-account"
    )

    assert done.returncode == 3, (done.stdout, done.stderr)
    assert clinics(group, patient) == {TM, TW}


def test_what_is_typed_for_a_clinic_is_recorded_only_once_it_is_a_clinic(group: Group) -> None:
    """An officer typing a patient's HKID into ``--clinic`` is refused, and the refusal's
    entry keeps no clinic: what was typed would be in the ledger for good (review of
    stop 63); a clinic of the group is named."""
    patient = _tsuen_wan_registers_tuen_muns_patient(group)

    typed = _unregister(
        group, group.officer, patient, "--clinic", "A123456(3)", "--reason", "compromised-account"
    )
    registered = _register(
        group, group.officer, patient, "--clinic", "A123456(3)", "--reason", "identity-confirmed"
    )

    assert typed.returncode == 1 and registered.returncode == 1
    assert "one of the group's" in typed.stderr
    for tag in (Tag.PATIENT_UNREGISTERED, Tag.PATIENT_REGISTERED):
        refused = [e for e in _officers(group, tag) if e.outcome != Outcome.SUCCESS]
        assert refused and all("clinic" not in e.detail for e in refused)
    entries = b"".join(data for _, data in group.services.audit_ledger.store.entries())
    assert b"A123456(3)" not in entries
