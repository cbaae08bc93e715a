"""A version number tells nothing a read would not: a vread of a version a record does
not have is answered as a read of the record is, to a caller who may not read it (403,
or 404 as for an unknown id); only one who may is told the version is not there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import HIV, TM, Group, build_group, doctors_condition
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _answer(group: Group, who: Staff, path: str) -> tuple[int, Any]:
    response = group.call(who, "GET", path)
    return response.status_code, response.json().get("issue")


def test_a_missing_version_of_another_clinics_record_answers_as_its_read(group: Group) -> None:
    """Hole: version 1 answered 403 and version 9 404 'has no version 9', so a caller who
    may not read the record counted its versions (how often it was changed)."""
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    read = _answer(group, group.doctor_tm, path)
    assert read[0] == 403

    for version in (1, 2, 9):
        assert _answer(group, group.doctor_tm, f"{path}/_history/{version}") == read, version


def test_a_missing_version_of_a_record_withheld_whole_answers_as_its_read(group: Group) -> None:
    """An HIV diagnosis withheld whole from a pharmacist is 'not known' by any version
    number, with a read's words (not 'has no version 7')."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    path = f"/fhir/Condition/{doctors_condition(group, HIV)}"
    read = _answer(group, pharmacist, path)
    assert read[0] == 404

    for version in (1, 2, 7):
        assert _answer(group, pharmacist, f"{path}/_history/{version}") == read, version


def test_who_may_read_a_record_is_told_a_version_is_not_there(
    group: Group, api: FhirTestClient
) -> None:
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    assert _answer(group, group.doctor_tw, path)[0] == 200

    status, issue = _answer(group, group.doctor_tw, f"{path}/_history/9")

    assert status == 404 and "has no version 9" in issue[0]["diagnostics"]
    # Deleted, the record is still theirs to know of: told so, and of its versions.
    assert api.delete(path).status_code == 204
    assert _answer(group, group.doctor_tw, path)[0] == 410
    status, issue = _answer(group, group.doctor_tw, f"{path}/_history/9")
    assert status == 404 and "has no version 9" in issue[0]["diagnostics"]
