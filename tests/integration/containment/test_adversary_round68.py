"""Adversary round 68: an erasure's sealed words (stop 54), asked for by whoever and
however an officer might need them: a patient whose record was deleted after the
erasure, a patient whose ledger trail is long."""

from __future__ import annotations

from subprocess import CompletedProcess

from carevault.bootstrap import Services
from carevault.containment.service import Officer
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import Staff, make_staff

WORDS = "asked by letter, form DSR-2026-0068"


def _by(officer: Staff, env: dict[str, str], *args: str) -> CompletedProcess[str]:
    """``carevault <args>`` as ``officer``, with a fresh code."""
    return invoke_cli(env, *args, "--officer", officer.account.username, "--totp", officer.totp())


def _patient(api: FhirTestClient) -> str:
    made = api.post_json("/fhir/Patient", {"resourceType": "Patient", "gender": "male"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_the_words_of_an_erased_patient_whose_record_was_deleted_are_still_shown(
    services: Services, api: FhirTestClient
) -> None:
    patient = _patient(api)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    env = environment(services.settings.home, services.settings.database_url)
    erased = _by(officer, env, "erase", "--patient", patient, "--reason", WORDS, "--yes")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    deleted = api.delete(f"/fhir/Patient/{patient}")
    assert deleted.status_code in (200, 204), deleted.text

    shown = _by(officer, env, "erasure-reason", "--patient", patient)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert WORDS in shown.stdout
    assert any(
        AuditEvent.from_canonical(data).tag is Tag.PATIENT_ERASURE_SHOWN
        for _, data in services.audit_ledger.store.entries()
    )


def test_a_deleted_patient_can_be_erased_and_its_words_shown(
    services: Services, api: FhirTestClient
) -> None:
    """Deleting a record keeps every version's ciphertext (readable by whoever holds the
    key): an erasure request from a patient whose record was deleted is still one."""
    patient = _patient(api)
    assert api.delete(f"/fhir/Patient/{patient}").status_code in (200, 204)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    env = environment(services.settings.home, services.settings.database_url)
    erased = _by(officer, env, "erase", "--patient", patient, "--reason", WORDS, "--yes")
    assert erased.returncode == 0, erased.stdout + erased.stderr
    assert services.keys is not None
    pseudonym = services.vault.patient_of("Patient", patient)
    assert pseudonym is not None
    assert services.keys.shredded([pseudonym[1]]) == {pseudonym[1]}
    shown = _by(officer, env, "erasure-reason", "--patient", patient)
    assert shown.returncode == 0 and WORDS in shown.stdout, shown.stdout + shown.stderr


def test_the_words_are_found_behind_a_long_trail(services: Services, api: FhirTestClient) -> None:
    """A patient with more than 10,000 entries before the erasure (a long-registered
    patient, read at every visit): the erasure's entry is still found, not "not erased"."""
    patient = _patient(api)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    assert services.keys is not None
    pseudonym = services.vault.patient_pseudonyms([patient])[patient]
    now = services.now_us()
    services.audit_ledger.writer.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=now + n,
                principal="staff:reader",
                patient_pseudonym=pseudonym,
                resource_type="Patient",
                resource_id=patient,
            )
            for n in range(10_001)
        ]
    )
    services.contain.erase_patient(
        Officer(officer.account.username, officer.totp()), pseudonym, WORDS, services.keys
    )
    (shown,) = services.contain.erasures(
        Officer(officer.account.username, officer.totp()), pseudonym, services.keys
    )
    assert shown.reason == WORDS
