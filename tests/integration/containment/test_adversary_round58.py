"""Adversary round 58, a suspension by hand: the privacy officer suspends Dr Tam's
physician login (``POST /admin/containment``, ``account-suspended``) after an alert named
it; Dr Tam reads on with a nurse login naming the same Practitioner. The detectors'
suspension holds every login of the person since round 57; the officer's held one
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _suspend(group: Group, who: Staff) -> None:
    body = {
        "mode": "account-suspended",
        "target": who.account.username,
        "reason": "alert 7: opened a VIP",
        "totp": group.officer.totp(),
    }
    response = group.web.post("/admin/containment", json=body, headers=group.officer.headers)
    assert response.status_code == 201, response.text


def _read(group: Group, who: Staff) -> int:
    return int(group.call(who, "GET", f"/fhir/Patient/{group.tm_patient.id}").status_code)


def test_an_officers_suspension_holds_every_login_of_the_person(group: Group) -> None:
    nurse_login = make_staff(group.services, Role.NURSE, [TM], "dr-tm")
    assert _read(group, nurse_login) == 200
    _suspend(group, group.doctor_tm)
    assert _read(group, group.doctor_tm) != 200
    assert _read(group, nurse_login) != 200
    suspended = group.services.accounts.get(nurse_login.account.account_id)
    assert suspended is not None and suspended.suspended


def test_an_officers_suspension_holds_no_one_else(group: Group) -> None:
    """Held: a colleague (another Practitioner) reads on."""
    colleague = make_staff(group.services, Role.NURSE, [TM], "dr-other")
    _suspend(group, group.doctor_tm)
    assert _read(group, colleague) == 200
