"""An erasure's reason: the officer's words are sealed apart from the ledger (they may
name the patient erased: adversary round 67), shown to a privacy officer from the command
line, and each showing is recorded before anything is unsealed."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.containment.service import ERASURE_REASON_SEALED, Officer
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import make_staff

WORDS = "asked in person by Mrs Wobblesprocket, HKID WX908172(9), form DSR-2026-0042"


def _patient(api: FhirTestClient) -> str:
    made = api.post_json("/fhir/Patient", {"resourceType": "Patient", "gender": "female"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def _events(services: Services, tag: Tag) -> list[AuditEvent]:
    return [event for _, event in _positioned(services, tag)]


def _positioned(services: Services, tag: Tag) -> list[tuple[int, AuditEvent]]:
    """The ledger's entries of ``tag``, with their positions."""
    found = (
        (seq, AuditEvent.from_canonical(data, seq=seq))
        for seq, data in services.audit_ledger.store.entries()
    )
    return [(seq, event) for seq, event in found if event.tag is tag]


def test_the_officer_reads_an_erasures_words_from_the_cli_and_the_reading_is_recorded(
    services: Services, api: FhirTestClient
) -> None:
    patient, other = _patient(api), _patient(api)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    nurse = make_staff(services, Role.NURSE, ["clinic-a"])
    env = environment(services.settings.home, services.settings.database_url)

    def cli(*args: str) -> tuple[int, str]:
        done = invoke_cli(env, *args)
        return done.returncode, done.stdout + done.stderr

    code, output = cli(
        "erase", "--patient", patient, "--reason", WORDS, "--yes",
        "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert code == 0, output
    ((erased_at, erased),) = _positioned(services, Tag.PATIENT_ERASED)
    assert erased.reason == ERASURE_REASON_SEALED
    entries = b"".join(data for _, data in services.audit_ledger.store.entries())
    assert b"Wobblesprocket" not in entries and b"WX908172" not in entries

    # A nurse, and an officer without a fresh code, are refused: nothing shown.
    code, output = cli(
        "erasure-reason", "--patient", patient,
        "--officer", nurse.account.username, "--totp", nurse.totp(),
    )  # fmt: skip
    assert code == 1 and "Wobblesprocket" not in output
    code, output = cli(
        "erasure-reason", "--patient", patient,
        "--officer", officer.account.username, "--totp", "123456",
    )  # fmt: skip
    assert code == 1 and "Wobblesprocket" not in output
    assert _events(services, Tag.PATIENT_ERASURE_SHOWN) == []

    code, output = cli(
        "erasure-reason", "--patient", patient,
        "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert code == 0, output
    assert WORDS in output and f"staff:{officer.account.username}" in output
    assert f"ledger position {erased_at}" in output
    ((shown_at, shown),) = _positioned(services, Tag.PATIENT_ERASURE_SHOWN)
    assert shown.principal == f"staff:{officer.account.username}"
    assert shown.patient_pseudonym == erased.patient_pseudonym
    assert shown_at > erased_at

    # A patient never erased has no reason to show, and nothing is recorded for it.
    code, output = cli(
        "erasure-reason", "--patient", other,
        "--officer", officer.account.username, "--totp", officer.totp(),
    )  # fmt: skip
    assert code == 0 and "was not erased" in output
    assert len(_events(services, Tag.PATIENT_ERASURE_SHOWN)) == 1
    assert services.audit_ledger.verify().ok


def test_each_erasure_shows_its_own_words(services: Services, api: FhirTestClient) -> None:
    """Two patients erased with different words: each patient's erasure shows its own
    (the words are sealed bound to their patient and time). One officer erases, another
    reads: codes are single-use and three fit in a 30 s step, so one officer's fourth
    code waited up to 30 s."""
    first, second = _patient(api), _patient(api)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    reader = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    assert services.keys is not None
    pseudonyms = services.vault.patient_pseudonyms([first, second])
    for patient in (first, second):
        services.contain.erase_patient(
            Officer(officer.account.username, officer.totp()),
            pseudonyms[patient],
            f"{WORDS} ({patient})",
            services.keys,
        )
    one, two = _events(services, Tag.PATIENT_ERASED)
    assert one.detail["reason_sealed"] != two.detail["reason_sealed"]
    for patient in (first, second):
        (shown,) = services.contain.erasures(
            Officer(reader.account.username, reader.totp()), pseudonyms[patient], services.keys
        )
        assert shown.reason == f"{WORDS} ({patient})"
    assert len(_events(services, Tag.PATIENT_ERASURE_SHOWN)) == 2


def test_an_erasure_without_words_is_refused_before_anything_is_shredded(
    services: Services, api: FhirTestClient
) -> None:
    patient = _patient(api)
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    assert services.keys is not None
    pseudonym = services.vault.patient_pseudonyms([patient])[patient]
    for words in ("   ", "x" * 501):
        with pytest.raises(ValueError, match="say why"):
            services.contain.erase_patient(
                Officer(officer.account.username, officer.totp()), pseudonym, words, services.keys
            )
    assert api.get(f"/fhir/Patient/{patient}").status_code == 200
    assert _events(services, Tag.PATIENT_ERASED) == []
