"""A role that may not read government ids pages an identifier search by the server's
own links, and is told nothing it was not shown (adversary round 42, and its fix's side
effect). SQLite and PostgreSQL.

Round 42: billing learnt from ``Patient?identifier=<an HKID>&_summary=count`` (or
``_count=0``, or an ``_offset`` past the match) whether a number was a patient's, with no
patient named in the ledger and nothing spent from the release budget. Refusing every
``_offset`` closed it, but also refused the second page of a legitimate search: the
server's own next links carry ``_offset``. Now such a search has no ``total``, its next
link says only that the page was full, and its offsets are sealed, issued only after
every record before them was shown (and named) to that caller for those criteria: each
response names the patients whose existence it reveals, or reveals only that nothing
more matches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from carevault.rest import offsets
from tests.integration.access.group import HKID_SYSTEM, TM, TW, Group, build_group, hos
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff

#: A payer's member number shared by a family plan: not a government id (it has a system
#: of its own and is not shaped as an HKID), held by several patients.
MEMBER_SYSTEM = "urn:oid:2.16.344.1.99.7"
PLAN = f"{MEMBER_SYSTEM}|FP-7781"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.fixture
def members(api: FhirTestClient, group: Group) -> set[str]:
    """Three patients of Tuen Mun on the plan."""
    member = [{"system": MEMBER_SYSTEM, "value": "FP-7781"}]
    return hos(api, ("Ka Yan", "Ka Ho", "Ka Ming"), identifier=member)


def _get(group: Group, who: Staff, url: str, params: dict[str, str] | None = None) -> Any:
    response = group.web.get(url, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    url = next((ln["url"] for ln in bundle["link"] if ln["relation"] == relation), None)
    return None if url is None else url.removeprefix("http://testserver")


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def _named(group: Group, who: Staff) -> set[str]:
    """The records the ledger says ``who``'s searches returned."""
    return {
        reference.removeprefix("Patient/")
        for event in group.events(Tag.FHIR_SEARCH)
        if event.principal == f"staff:{who.account.username}" and event.outcome is Outcome.SUCCESS
        for reference in event.detail.get("returned", [])
    }


@pytest.mark.parametrize(
    ("role", "clinics"),
    [(Role.BILLING, [TM]), (Role.FRONT_DESK, [TM]), (Role.PRIVACY_OFFICER, [TM, TW])],
    ids=["billing", "front-desk", "privacy-officer"],
)
def test_a_role_that_may_not_read_hkids_follows_an_identifier_searchs_next_links(
    group: Group, members: set[str], role: Role, clinics: list[str]
) -> None:
    """The side effect of round 42's fix: the second page of a search by identifier was
    refused (its next link carries ``_offset``). Every page now answers, without a total,
    and every record it shows is named in the ledger."""
    who = make_staff(group.services, role, clinics)
    first = _get(group, who, "/fhir/Patient", {"identifier": PLAN, "_count": "2"})
    assert "total" not in first
    assert len(_ids(first)) == 2
    following = _link(first, "next")
    assert following is not None
    second = _get(group, who, following)
    assert "total" not in second
    assert len(_ids(second)) == 1
    assert _link(second, "next") is None  # a short page is the last
    assert set(_ids(first) + _ids(second)) == members
    assert _named(group, who) == members
    # The ledger says the second page was one past the first, as for a position.
    paged = [
        event
        for event in group.events(Tag.FHIR_SEARCH)
        if event.principal == f"staff:{who.account.username}"
    ]
    assert "_offset" in paged[-1].detail["params"]
    # Back again by its previous link, still without a total.
    previous = _link(second, "previous")
    assert previous is not None
    again = _get(group, who, previous)
    assert "total" not in again and _ids(again) == _ids(first)


def test_a_full_last_page_leads_to_an_empty_one_that_tells_nothing_more(
    group: Group, members: set[str]
) -> None:
    """A next link follows every full page, whether or not more match: from a total, its
    presence told that one record more matched, which no entry named. After the last
    full page the link leads to an empty page, which tells only that no more match."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    seen: list[str] = []
    url: str | None = f"/fhir/Patient?identifier={PLAN}&_count=1"
    pages = 0
    while url is not None and pages < 10:
        bundle = _get(group, billing, url)
        assert "total" not in bundle
        seen += _ids(bundle)
        url = _link(bundle, "next")
        pages += 1
    assert pages == 4 and bundle.get("entry") is None
    assert sorted(seen) == sorted(members)


def test_an_hkid_tells_billing_whether_it_is_a_patients_only_by_naming_the_patient(
    group: Group,
) -> None:
    """A number of the group and one that is not: the first page names the patient or is
    empty; the page after it, reached by the server's link, is empty either way and
    carries no total. Nothing billing can ask says that a number matches without naming
    whom."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    known = _get(
        group,
        billing,
        "/fhir/Patient",
        {"identifier": f"{HKID_SYSTEM}|{group.tw_patient.hkid}", "_count": "1"},
    )
    assert "total" not in known and _ids(known) == [group.tw_patient.id]
    assert group.tw_patient.id in _named(group, billing)
    past = _get(group, billing, str(_link(known, "next")))
    assert "total" not in past and "entry" not in past and _link(past, "next") is None

    unknown = _get(
        group,
        billing,
        "/fhir/Patient",
        {"identifier": f"{HKID_SYSTEM}|B111111(1)", "_count": "1"},
    )
    assert "total" not in unknown and "entry" not in unknown
    assert _link(unknown, "next") is None  # an empty page is not full: no way past it


@pytest.mark.parametrize(
    "shaping",
    [
        {"_summary": "count"},
        {"_count": "0"},
        {"_offset": "1"},
        {"_offset": "1", "_count": "1"},
        {"_offset": "0", "_summary": "count"},
    ],
    ids=["summary-count", "count-0", "offset", "offset-count-1", "count-at-0"],
)
def test_a_count_or_a_position_of_billings_choosing_is_still_refused(
    group: Group, members: set[str], shaping: dict[str, str]
) -> None:
    """The oracles of round 42 stay closed: a count alone, and a page at a position the
    caller chose (entries at ``_offset=1`` say a record before them matches, unnamed).
    403, and in the ledger."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    for identifier in (PLAN, f"{HKID_SYSTEM}|{group.tw_patient.hkid}"):
        response = group.web.get(
            "/fhir/Patient",
            params={"identifier": identifier, **shaping},
            headers=billing.headers,
        )
        assert response.status_code == 403, response.text
        assert "total" not in response.text
        refused = group.events(Tag.FHIR_SEARCH)[-1]
        assert refused.outcome is Outcome.DENIED and refused.patient_pseudonym is None
    assert _named(group, billing) == set()


def test_billing_pages_by_sealed_offsets_never_by_a_cursor(group: Group, members: set[str]) -> None:
    """Integrator round 64: searches in the default order page by cursor, but one that
    withholds counts keeps its sealed offsets (issued once every record before them was
    shown); a cursor, even one sealed for billing and these criteria, is 403."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    first = _get(group, billing, "/fhir/Patient", {"identifier": PLAN, "_count": "1"})
    sealed = str(_link(first, "next")).split("_offset=")[1].split("&")[0]
    assert offsets.is_sealed(sealed)
    principal = f"staff:{billing.account.username}"
    bound = [("identifier", PLAN)]
    made = offsets.seal_cursor(group.services.vault.paging_key, principal, "Patient", bound, (0, 0))
    response = group.web.get(
        "/fhir/Patient",
        params={"identifier": PLAN, "_count": "1", "_offset": made},
        headers=billing.headers,
    )
    assert response.status_code == 403, response.text
    # Sorted by id, likewise (stop 65): its sealed offsets, and a cursor refused.
    sorted_first = _get(
        group, billing, "/fhir/Patient", {"identifier": PLAN, "_sort": "_id", "_count": "1"}
    )
    assert offsets.is_sealed(str(_link(sorted_first, "next")).split("_offset=")[1].split("&")[0])
    by_id = offsets.criteria([*bound, ("_sort", "_id")])
    place = (0, 0, "")
    made = offsets.seal_cursor(
        group.services.vault.paging_key, principal, "Patient", by_id, place, sorted_search=True
    )
    response = group.web.get(
        "/fhir/Patient",
        params={"identifier": PLAN, "_sort": "_id", "_count": "1", "_offset": made},
        headers=billing.headers,
    )
    assert response.status_code == 403, response.text
    assert _named(group, billing) == set(_ids(first)) | set(_ids(sorted_first))


def test_a_next_link_is_billings_own_for_its_own_criteria(group: Group, members: set[str]) -> None:
    """A next link's offset moved onto another number would say whether the number
    matched a record before it, unnamed; used by another account, it would skip the
    records only the first was shown. Both are refused (400), as is an altered one."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    first = _get(group, billing, "/fhir/Patient", {"identifier": PLAN, "_count": "1"})
    following = str(_link(first, "next"))
    sealed = following.split("_offset=")[1].split("&")[0]

    other_number = following.replace(
        "FP-7781", "FP-7782"
    )  # the same plan's system, another member number
    assert group.web.get(other_number, headers=billing.headers).status_code == 400
    hkid = group.web.get(
        "/fhir/Patient",
        params={
            "identifier": f"{HKID_SYSTEM}|{group.tw_patient.hkid}",
            "_count": "1",
            "_offset": sealed,
        },
        headers=billing.headers,
    )
    assert hkid.status_code == 400, hkid.text
    sorted_otherwise = group.web.get(f"{following}&_sort=-_lastUpdated", headers=billing.headers)
    assert sorted_otherwise.status_code == 400
    colleague = make_staff(group.services, Role.BILLING, [TM])
    assert group.web.get(following, headers=colleague.headers).status_code == 400
    altered = following.replace(sealed, sealed[:-1] + ("A" if sealed[-1] != "A" else "B"))
    assert group.web.get(altered, headers=billing.headers).status_code == 400
    # The link itself still answers, with any page size.
    assert len(_ids(_get(group, billing, following))) == 1
    resized = following.replace("_count=1", "_count=5")
    assert len(_ids(_get(group, billing, resized))) == 2


def test_a_role_that_may_read_hkids_keeps_the_total_and_plain_offsets(
    group: Group, members: set[str]
) -> None:
    """A physician reads HKIDs: nothing is withheld from it that a count could tell. Its
    next link carries a cursor, as any search's in the default order does (integrator
    round 64), not a sealed offset."""
    doctor = make_staff(group.services, Role.PHYSICIAN, [TM], "dr-tm")
    first = _get(group, doctor, "/fhir/Patient", {"identifier": PLAN, "_count": "2"})
    assert first["total"] == 3 and len(_ids(first)) == 2
    following = _link(first, "next")
    assert following is not None and offsets.is_cursor(following.rsplit("_offset=", 1)[1])
    assert _get(group, doctor, str(following))["total"] == 3
    for shaping in ({"_summary": "count"}, {"_count": "0"}, {"_offset": "5"}):
        counted = _get(group, doctor, "/fhir/Patient", {"identifier": PLAN, **shaping})
        assert counted["total"] == 3 and "entry" not in counted, shaping


def test_billing_keeps_the_total_of_a_search_without_an_identifier(
    group: Group, members: set[str]
) -> None:
    """Only a search by identifier withholds what counts: a search by name is billing's
    as it was (names are billing's to read)."""
    billing = make_staff(group.services, Role.BILLING, [TM])
    found = _get(group, billing, "/fhir/Patient", {"family": "Ho", "_count": "2"})
    assert found["total"] == 3
    assert offsets.is_cursor(str(_link(found, "next")).rsplit("_offset=", 1)[1])
    assert (
        _get(group, billing, "/fhir/Patient", {"family": "Ho", "_summary": "count"})["total"] == 3
    )
