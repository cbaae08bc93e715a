"""Adversary round 59, the bulk doors: an integration client that reaches every clinic
of the group tries to export more than one officer's word allows (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from carevault.access.registrations import Proof
from carevault.db import write_transaction
from carevault.domain.roles import Role
from carevault.export.model import Status
from carevault.ledger.events import AuditEvent
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, OTHER, Clinic
from tests.integration.export.test_export import (
    ASYNC,
    approve_over_http,
    kick_off,
    officer,
    status,
)
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


def test_a_client_of_the_whole_group_does_not_take_it_clinic_by_clinic_on_one_officers_word(
    clinic: Clinic,
) -> None:
    """A client of both clinics, whose Patient export needs two officers, asked for
    ``Group/clinic-a`` and then ``Group/clinic-b``: each needed one approval, the same
    officer gave both, and the two files held the whole group. Each Group export of such
    a client now waits for a second, different officer, as its Patient export does."""
    exports = clinic.services.exports
    assert exports is not None
    everywhere = clinic.client("group-exporter", "system/*.read", [MINE, OTHER])
    first, second = clinic.officers
    for group in (MINE, OTHER):
        job_id = kick_off(clinic, everywhere, f"/fhir/Group/{group}/$export")
        assert approve_over_http(clinic, first, job_id).status_code == 200
        clinic.work()
        # One officer's word released nothing: the job waits for a second officer.
        assert exports.job(job_id).status is Status.PENDING
        assert not exports.output(exports.job(job_id))
        assert status(clinic, everywhere, job_id).headers["x-progress"].endswith("(1 of 2)")
        if group == MINE:
            # A typed username and code is no second approval of a two-person export.
            # Once: each code is a fresh TOTP step of the officer's, and a fourth in a
            # row waits up to 30 s for the next (tests/support/auth.fresh_code).
            with pytest.raises(Exception, match="own signed-in session"):
                exports.approve(officer(second), job_id)
        assert approve_over_http(clinic, second, job_id).status_code == 200
        clinic.work()
        assert exports.job(job_id).status is Status.COMPLETED


def test_a_client_of_one_clinic_still_exports_its_group_on_one_officers_word(
    clinic: Clinic,
) -> None:
    """The rule follows the client's reach: a client of part of the group exports its
    clinic's Group with one approval, as before."""
    exports = clinic.services.exports
    assert exports is not None
    one_clinic = clinic.client("clinic-exporter", "system/*.read", [OTHER])
    job_id = kick_off(clinic, one_clinic, f"/fhir/Group/{OTHER}/$export")
    assert status(clinic, one_clinic, job_id).headers["x-progress"].endswith("(0 of 1)")
    assert approve_over_http(clinic, clinic.officers[0], job_id).status_code == 200
    clinic.work()
    assert exports.job(job_id).status is Status.COMPLETED


def test_a_client_does_not_export_the_group_of_a_clinic_it_does_not_reach(
    clinic: Clinic,
) -> None:
    """A client of clinic-a asked for ``Group/clinic-b`` (a clinic of the group, where
    staff work): accepted, and once one officer approved it, its files held the
    clinic-a patients also registered at clinic-b, which no read of the client shows:
    the other clinic's membership. A Group is exported only by a client of its clinic;
    the refusal is recorded and no job is made."""
    exports = clinic.services.exports
    assert exports is not None
    make_staff(clinic.services, Role.FRONT_DESK, [OTHER])
    clinic.services.access._clinics = None  # the staff directory re-read now, not in 5 s
    assert OTHER in clinic.services.access.known_clinics()
    member = clinic.mine[0]
    pseudonym = clinic.services.vault.locate("Patient", member).head.patient_pseudonym
    assert pseudonym is not None
    with write_transaction(clinic.services.vault.engine) as connection:
        clinic.services.access.registrations.register(
            connection, pseudonym, OTHER, by="system:test", proof=Proof.SYSTEM, now_us=1
        )
    token = clinic.client("exporter", "system/*.read", [MINE])
    before = len(exports.jobs.all(None))
    response = clinic.web.get(f"/fhir/Group/{OTHER}/$export", headers={**bearer(token), **ASYNC})
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert len(exports.jobs.all(None)) == before
    refused = [
        AuditEvent.from_canonical(data)
        for _, data in clinic.services.audit_ledger.store.entries()
        if b"bulk:export:refused" in data
    ]
    assert refused and refused[-1].detail.get("level") == "group"
    # Its own clinic's Group it still exports.
    own = kick_off(clinic, token, f"/fhir/Group/{MINE}/$export")
    assert exports.job(own).status is Status.PENDING


def test_a_clinic_with_staff_and_no_patients_does_not_make_the_whole_group_a_part(
    clinic: Clinic,
) -> None:
    """A third clinic opens: its front desk has an account, no patient is at home there
    yet. A client of the two clinics that hold every patient asked for a Patient export:
    the group counted three clinics, the client reached two, so one officer's word
    released every patient of the group. The group's patients are what count."""
    exports = clinic.services.exports
    assert exports is not None
    make_staff(clinic.services, Role.FRONT_DESK, ["clinic-c"])
    clinic.services.access._clinics = None  # the staff directory re-read now, not in 5 s
    assert "clinic-c" in clinic.services.access.known_clinics()
    everywhere = clinic.client("group-exporter", "system/*.read", [MINE, OTHER])
    job_id = kick_off(clinic, everywhere)
    assert approve_over_http(clinic, clinic.officers[0], job_id).status_code == 200
    clinic.work()
    assert exports.job(job_id).status is Status.PENDING
    assert not exports.output(exports.job(job_id))
    assert status(clinic, everywhere, job_id).headers["x-progress"].endswith("(1 of 2)")
