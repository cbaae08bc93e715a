"""Adversary round 59, the bulk doors: an integration client that reaches every clinic
of the group tries to export more than one officer's word allows (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest

from carevault.export.model import Status
from tests.integration.export.conftest import MINE, OTHER, Clinic
from tests.integration.export.test_export import approve_over_http, kick_off, officer, status

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
        # A typed username and code is no second approval of a two-person export.
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
