"""Adversary round 58, break-the-glass past its hour through a second login: a doctor
holding two physician logins (both naming one Practitioner) opens twenty grants with one
and goes on with the other; the gate's cap of grants an hour counted the login, where
the release budget and the detectors count the person (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.access.breakglass import MAX_GRANTS_PER_HOUR
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import TM, Group, build_group
from tests.integration.access.test_adversary_round57 import GLASS
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _glass(group: Group, who: Staff) -> int:
    path = f"/fhir/Patient/{group.tw_patient.id}/$break-glass"
    return int(group.call(who, "POST", path, GLASS).status_code)


def test_a_doctors_other_login_opens_no_grant_past_the_hours_cap(group: Group) -> None:
    """Twenty grants in the hour with Dr Tam's first login; the first with the second
    login (the same Practitioner) was granted, and twenty more after it."""
    other = make_staff(group.services, Role.PHYSICIAN, [TM], "dr-tm")
    assert [_glass(group, group.doctor_tm) for _ in range(MAX_GRANTS_PER_HOUR)] == [200] * 20
    assert _glass(group, other) == 429
    assert _glass(group, group.doctor_tm) == 429


def test_another_doctors_grants_are_their_own(group: Group) -> None:
    """Held: a colleague (another Practitioner) keeps their own twenty."""
    colleague = make_staff(group.services, Role.PHYSICIAN, [TM], "dr-other")
    assert [_glass(group, group.doctor_tm) for _ in range(MAX_GRANTS_PER_HOUR)] == [200] * 20
    assert _glass(group, colleague) == 200
