"""Adversary round 57, two approvals by one person: an export of the whole group needs
two privacy officers; Dr Wong holds two officer logins (both naming Practitioner
dr-wong) and approves with each (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from carevault.domain.roles import Role
from carevault.export.model import Status
from tests.integration.export.conftest import MINE, Clinic
from tests.integration.export.test_export import approve_over_http, kick_off
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


def test_a_system_export_is_not_approved_twice_by_one_person(clinic: Clinic) -> None:
    """Each approval came from its own signed-in session of its own officer account, as
    asked; the two accounts were one person. The second is refused now (403), the job
    waits; another officer's approval then counts."""
    exports = clinic.services.exports
    assert exports is not None
    token = clinic.client("exporter", "system/*.read")
    job_id = kick_off(clinic, token, "/fhir/$export")
    first = make_staff(clinic.services, Role.PRIVACY_OFFICER, [MINE], "dr-wong")
    second = make_staff(clinic.services, Role.PRIVACY_OFFICER, [MINE], "dr-wong")
    assert approve_over_http(clinic, first, job_id).status_code == 200
    again = approve_over_http(clinic, second, job_id)
    assert again.status_code == 403, again.text
    assert exports.job(job_id).status is Status.PENDING
    other = approve_over_http(clinic, clinic.officers[0], job_id)
    assert other.status_code == 200, other.text
    assert exports.job(job_id).status is Status.APPROVED
