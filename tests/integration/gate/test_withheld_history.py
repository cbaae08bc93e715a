"""A record withheld whole from a caller (a Condition that became an HIV diagnosis, for
a pharmacist) is not known to them by its history either: its instance history and its
old versions answer 404 as for an unknown id, and the type and system history neither
list nor count it, whether its sensitivity marker is current or the record was indexed
before it (opened and checked)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.vault.tables import search_token
from tests.integration.access.group import FLU, Group, build_group, doctors_condition
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

#: HIV as SNOMED CT by its OID, one of the spellings the sensitive lists now know.
HIV = {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.96", "code": "86406008"}]}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _became_sensitive(group: Group) -> str:
    """A flu diagnosis the doctor corrected to HIV: version 1 ordinary, 2 sensitive."""
    condition = doctors_condition(group, FLU)
    path = f"/fhir/Condition/{condition}"
    current = group.call(group.doctor_tm, "GET", path).json()
    changed = group.call(group.doctor_tm, "PUT", path, {**current, "code": HIV})
    assert changed.status_code == 200, changed.text
    return condition


def _listed(group: Group, who: Staff, path: str) -> list[str]:
    response = group.call(who, "GET", path)
    assert response.status_code == 200, response.text
    return [entry["resource"]["id"] for entry in response.json().get("entry", [])]


def _unknown(group: Group, who: Staff, path: str) -> None:
    response = group.call(who, "GET", path)
    assert response.status_code == 404, response.text
    assert response.json()["issue"][0]["code"] == "not-found"


def test_a_record_withheld_whole_has_no_history_and_no_old_versions_for_the_caller(
    group: Group,
) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, ["clinic-tm"])
    hidden = _became_sensitive(group)

    for path in ("", "/_history", "/_history/1", "/_history/2"):
        _unknown(group, pharmacist, f"/fhir/Condition/{hidden}{path}")
    _unknown(group, pharmacist, "/fhir/Condition/no-such-record/_history")
    # The doctor who may see it sees all of it.
    first = group.call(group.doctor_tm, "GET", f"/fhir/Condition/{hidden}/_history/1")
    assert first.json()["code"] == FLU
    assert (
        group.call(group.doctor_tm, "GET", f"/fhir/Condition/{hidden}/_history").json()["total"]
        == 2
    )


@pytest.mark.parametrize("indexed_before", [False, True])
def test_type_and_system_history_neither_list_nor_count_a_record_withheld_whole(
    group: Group, indexed_before: bool
) -> None:
    pharmacist = make_staff(group.services, Role.PHARMACIST, ["clinic-tm"])
    hidden = _became_sensitive(group)
    ordinary = doctors_condition(group, FLU)
    if indexed_before:
        # As a record indexed before this version's sensitivity markers: none at all.
        vault = group.services.gate.vault
        row_id = vault.locate("Condition", hidden).head.row_id
        with vault.engine.begin() as connection:
            connection.execute(delete(search_token).where(search_token.c.row_id == row_id))

    for path in ("/fhir/Condition/_history", "/fhir/_history"):
        listed = _listed(group, pharmacist, path)
        assert hidden not in listed and ordinary in listed, path
    one = group.call(pharmacist, "GET", "/fhir/Condition/_history?_count=1").json()
    assert [entry["resource"]["id"] for entry in one["entry"]] == [ordinary]
    assert not any(link["relation"] == "next" for link in one["link"])
    assert _listed(group, group.doctor_tm, "/fhir/Condition/_history").count(hidden) == 2


def test_an_ordinary_record_that_was_sensitive_counts_only_the_versions_it_lists(
    group: Group,
) -> None:
    """The other way round (stop 35's adversary): an HIV diagnosis corrected to flu.
    The pharmacist reads the current version; the history listed one version but said
    ``total: 2``, telling that a withheld version was there."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, ["clinic-tm"])
    condition = doctors_condition(group, HIV)
    path = f"/fhir/Condition/{condition}"
    current = group.call(group.doctor_tm, "GET", path).json()
    assert group.call(group.doctor_tm, "PUT", path, {**current, "code": FLU}).status_code == 200
    assert group.call(pharmacist, "GET", path).status_code == 200

    history = group.call(pharmacist, "GET", f"{path}/_history").json()
    versions = [entry["resource"]["meta"]["versionId"] for entry in history["entry"]]
    assert versions == ["2"] and history["total"] == 1
    paged = group.call(pharmacist, "GET", f"{path}/_history?_count=1").json()
    assert paged["total"] == 1 and len(paged["entry"]) == 1
    assert not any(link["relation"] == "next" for link in paged["link"])
    # The doctor still sees both.
    assert group.call(group.doctor_tm, "GET", f"{path}/_history").json()["total"] == 2
