"""Which searches tell only what they show (``gate.withholds_counts``): a search by
identifier of a role that may not read government ids (adversary round 42). Pure, no
database."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from carevault.domain.categories import DataCategory
from carevault.domain.policy import Actor
from carevault.domain.roles import RIGHTS, Right, Role
from carevault.fhir.query import SearchQuery, parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller, withholds_counts

HKID = "http://carevault.hk/sid/hkid|A123456(3)"


def _query(type_name: str, *params: tuple[str, str]) -> SearchQuery:
    return parse_query(
        RESOURCE_TYPES[type_name],
        list(params),
        strict=True,
        zone=ZoneInfo("Asia/Hong_Kong"),
        default_count=20,
        max_count=100,
    )


def _caller(role: Role) -> Caller:
    actor = Actor(principal=f"staff:{role.value}", role=role, clinic_ids=frozenset({"tm"}))
    return Caller(principal=actor.principal, actor=actor)


#: The roles that may read government ids, named (not worked out from ``RIGHTS`` as the
#: code does): a change of the policy table shows here.
READS_HKIDS = frozenset({Role.PHYSICIAN, Role.NURSE, Role.INTEGRATION})


def test_the_roles_named_here_are_those_the_policy_lets_read_hkids() -> None:
    assert {
        role
        for role in Role
        if Right.READ in RIGHTS[role].get(DataCategory.GOVERNMENT_ID, frozenset())
    } == READS_HKIDS


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
def test_a_search_by_identifier_withholds_counts_from_every_role_that_may_not_read_hkids(
    role: Role,
) -> None:
    reads_hkids = role in READS_HKIDS
    by_identifier = _query("Patient", ("identifier", HKID), ("_count", "5"))
    assert withholds_counts(_caller(role), by_identifier) is not reads_hkids
    # Another type's identifier too: the rule does not ask what the number is.
    visit = _query("Encounter", ("identifier", "urn:visits|V-1"))
    assert withholds_counts(_caller(role), visit) is not reads_hkids


def test_other_searches_and_the_system_keep_their_counts() -> None:
    assert not withholds_counts(_caller(Role.BILLING), _query("Patient", ("name", "chan")))
    assert not withholds_counts(Caller(principal="system"), _query("Patient", ("identifier", HKID)))
