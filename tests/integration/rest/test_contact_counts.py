"""A count by telephone number or email address names whom it counts (adversary round 58
left it open): ``Patient?phone=<a number>&_summary=count`` told a front desk whether a
number was a patient's, and how many of a household were, with no patient named in the
ledger and nothing spent from the release budget. Each patient a total counts past the
page is now named and charged, as the page's are (``gate.Gate._counted``); the count is
kept, which clinic apps ask for. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import TM, Group, build_group, hos
from tests.integration.rest.test_identifier_paging import _get, _ids
from tests.support.client import FhirTestClient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

NUMBER = "+852 2345 6789"
EMAIL = "ho.family@example.com"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.fixture
def household(api: FhirTestClient, group: Group) -> set[str]:
    """Two patients of Tuen Mun who share a home telephone and an email address."""
    telecom = [{"system": "phone", "value": NUMBER}, {"system": "email", "value": EMAIL}]
    return hos(api, ("Ka Yan", "Ka Ho"), telecom=telecom)


def _told_of(group: Group, who: Staff) -> set[str]:
    """The patients (as pseudonyms) the ledger says ``who``'s searches told of."""
    return {
        event.patient_pseudonym
        for event in group.events(Tag.FHIR_SEARCH)
        if event.principal == f"staff:{who.account.username}"
        and event.outcome is Outcome.SUCCESS
        and event.patient_pseudonym
    }


def _pseudonyms(group: Group, ids: set[str]) -> set[str]:
    return {patient_pseudonym(group.services, patient) for patient in ids}


@pytest.fixture
def twins(api: FhirTestClient, group: Group) -> set[str]:
    """Two patients of Tuen Mun named Ho, born on one day of 1980."""
    return hos(api, ("Wing Yan", "Wing Kei"), birthDate="1980-05-02")


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.PHYSICIAN, Role.NURSE])
@pytest.mark.parametrize("criterion", [{"phone": NUMBER}, {"email": EMAIL}])
@pytest.mark.parametrize("alone", [{"_summary": "count"}, {"_count": "0"}])
def test_a_count_by_a_contact_point_names_whom_it_counts(
    group: Group,
    household: set[str],
    role: Role,
    criterion: dict[str, str],
    alone: dict[str, str],
) -> None:
    who = make_staff(group.services, role, [TM])
    counted = _get(group, who, "/fhir/Patient", {**criterion, **alone})
    assert counted["total"] == 2 and "entry" not in counted
    assert _told_of(group, who) == _pseudonyms(group, household)


def test_a_page_short_of_its_total_names_the_rest_too(group: Group, household: set[str]) -> None:
    desk = make_staff(group.services, Role.FRONT_DESK, [TM])
    page = _get(group, desk, "/fhir/Patient", {"phone": NUMBER, "_count": "1"})
    assert page["total"] == 2 and len(_ids(page)) == 1
    assert _told_of(group, desk) == _pseudonyms(group, household)


def test_a_number_no_one_holds_names_no_one(group: Group, household: set[str]) -> None:
    desk = make_staff(group.services, Role.FRONT_DESK, [TM])
    counted = _get(group, desk, "/fhir/Patient", {"phone": "+852 2000 0000", "_summary": "count"})
    assert counted["total"] == 0
    assert _told_of(group, desk) == set()


def test_other_counts_name_no_one(group: Group, household: set[str], twins: set[str]) -> None:
    """A count by name, or by name and a birth year, is a broad net, as it was."""
    desk = make_staff(group.services, Role.FRONT_DESK, [TM])
    counted = _get(group, desk, "/fhir/Patient", {"family": "Ho", "_summary": "count"})
    assert counted["total"] >= 2
    yearly = _get(
        group, desk, "/fhir/Patient", {"family": "Ho", "birthdate": "1980", "_summary": "count"}
    )
    assert yearly["total"] == 2
    assert _told_of(group, desk) == set()


@pytest.mark.parametrize("role", [Role.FRONT_DESK, Role.NURSE])
@pytest.mark.parametrize(
    "criteria",
    [
        {"family": "Ho", "birthdate": "1980-05-02"},
        {"name": "Ho", "birthdate": "eq1980-05-02"},
        {"given": "Wing", "birthdate": "1980-05"},
        {"family": "Ho", "birthdate": ["ge1980-05-01", "le1980-05-03"]},
    ],
)
def test_a_count_by_name_and_birth_date_names_whom_it_counts(
    group: Group, twins: set[str], role: Role, criteria: dict[str, object]
) -> None:
    """``Patient?family=Ho&birthdate=1980-05-02&_summary=count`` told a desk whether a
    person of that name born that day was a patient, naming no one (round 58 left it
    open): a birth date within a month and a name pick out people."""
    who = make_staff(group.services, role, [TM])
    counted = _get(group, who, "/fhir/Patient", {**criteria, "_summary": "count"})
    assert counted["total"] == 2 and "entry" not in counted
    assert _told_of(group, who) == _pseudonyms(group, twins)
