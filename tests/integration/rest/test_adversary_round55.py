"""Adversary round 55, instance history paged by sealed cursors: staff of one clinic try
to learn, from a history's ``total``, its ``previous`` and ``next`` links and the size of
its pages, how many versions of a record there are that they may not read (a patient
transferred from another clinic, a diagnosis that was HIV for a while), and to page a
record with an old cursor after it was deleted and written again, or with ``_count``
at its edges (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Tag
from tests.integration.access.group import (
    FLU,
    HIV,
    TM,
    Group,
    build_group,
    doctors_condition,
    observation,
)
from tests.support.client import FhirTestClient, transfer_body
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    url = next((ln["url"] for ln in bundle["link"] if ln["relation"] == relation), None)
    return None if url is None else url.removeprefix("http://testserver")


def _versions(bundle: dict[str, Any]) -> list[int]:
    """Each entry's version, as its response's ETag names it (a deletion has no resource)."""
    return [int(entry["response"]["etag"].split('"')[1]) for entry in bundle.get("entry", [])]


def _page(group: Group, who: Any, path: str) -> dict[str, Any]:
    response = group.call(who, "GET", path)
    assert response.status_code == 200, (path, response.text)
    page: dict[str, Any] = response.json()
    return page


def test_a_patient_transferred_in_pages_only_the_versions_since_it_came(
    group: Group, api: FhirTestClient
) -> None:
    """Tsuen Wan's patient, changed there, is transferred to Tuen Mun: Tuen Mun's desk
    pages its history one version at a time. Neither the total, nor a next link after
    the one version it may read, nor a previous link tells that two came before."""
    url = f"/fhir/Patient/{group.tw_patient.id}"
    body = api.get(url).json()
    body["telecom"] = [{"system": "phone", "value": "+852 9000 0001"}]
    assert api.put_json(url, body).status_code == 200
    moved = group.call(group.officer, "POST", f"{url}/$transfer", transfer_body(TM))
    assert moved.status_code == 200, moved.text

    for count in ("1", "2", "50"):
        page = _page(group, group.desk_tm, f"{url}/_history?_count={count}")
        assert _versions(page) == [3] and page["total"] == 1, count
        assert _link(page, "next") is None and _link(page, "previous") is None
    # The officer, who reads them all, pages three.
    assert _page(group, group.officer, f"{url}/_history?_count=1")["total"] == 3


def test_a_diagnosis_that_was_hiv_for_a_while_pages_over_the_hidden_version(
    group: Group,
) -> None:
    """Flu, corrected to HIV, corrected back: the pharmacist pages two versions (3 and
    1); no page, link or total says one lies between."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    condition = doctors_condition(group, FLU)
    path = f"/fhir/Condition/{condition}"
    for code in (HIV, FLU):
        current = group.call(group.doctor_tm, "GET", path).json()
        changed = group.call(group.doctor_tm, "PUT", path, {**current, "code": code})
        assert changed.status_code == 200, changed.text

    first = _page(group, pharmacist, f"{path}/_history?_count=1")
    assert _versions(first) == [3] and first["total"] == 2
    following = _link(first, "next")
    assert following is not None and _link(first, "previous") is None
    second = _page(group, pharmacist, following)
    assert _versions(second) == [1] and second["total"] == 2
    assert _link(second, "next") is None
    back = _link(second, "previous")
    assert back is not None
    assert _versions(_page(group, pharmacist, back)) == [3]
    # Pages of two: both on one page, nothing to follow.
    both = _page(group, pharmacist, f"{path}/_history?_count=2")
    assert _versions(both) == [3, 1] and _link(both, "next") is None
    assert _page(group, group.doctor_tm, f"{path}/_history?_count=1")["total"] == 3


def test_an_old_cursor_after_the_record_was_deleted_and_written_again_pages_as_of_then(
    group: Group, api: FhirTestClient
) -> None:
    """A next link kept while the record was deleted and written again: its page is as
    of the first page's time, so neither the deletion nor the new version is listed or
    counted; a new first page lists them."""
    made = api.post_json("/fhir/Observation", observation(group.tm_patient.id, "a")).json()
    path = f"/fhir/Observation/{made['id']}"
    assert api.put_json(path, {**made, "code": {"text": "b"}}).status_code == 200
    first = _page(group, group.doctor_tm, f"{path}/_history?_count=1")
    assert _versions(first) == [2] and first["total"] == 2
    following = _link(first, "next")
    assert following is not None
    assert api.delete(path).status_code == 204
    assert api.put_json(path, {**made, "code": {"text": "c"}}).status_code in (200, 201)

    later = _page(group, group.doctor_tm, following)
    assert _versions(later) == [1] and later["total"] == 2
    assert later["meta"]["lastUpdated"] == first["meta"]["lastUpdated"]
    fresh = _page(group, group.doctor_tm, f"{path}/_history?_count=10")
    assert _versions(fresh) == [4, 3, 2, 1] and fresh["total"] == 4
    # The other clinic's doctor: the old cursor is not theirs (400, nothing read), and
    # the history is refused in the words a read of the record is.
    assert group.call(group.doctor_tw, "GET", following).status_code == 400
    theirs = group.call(group.doctor_tw, "GET", f"{path}/_history")
    read = group.call(group.doctor_tw, "GET", path)
    assert theirs.status_code == read.status_code == 403
    assert theirs.json()["issue"] == read.json()["issue"]


@pytest.mark.parametrize("count", ["-1", "1e3", "0x10", "1000000000", " 1", ""])
def test_a_count_that_is_no_small_whole_number_is_refused(group: Group, count: str) -> None:
    path = f"/fhir/Patient/{group.tm_patient.id}/_history?_count={count}"
    assert group.call(group.doctor_tm, "GET", path).status_code == 400


def test_a_count_of_none_or_of_many_pages_nothing_more(group: Group) -> None:
    """``_count=0`` shows no version but its total tells how many the record has: the
    ledger names the patient all the same."""
    path = f"/fhir/Patient/{group.tm_patient.id}/_history"
    before = len(group.events())
    none = _page(group, group.doctor_tm, f"{path}?_count=0")
    assert none.get("entry", []) == [] and none["total"] == 1
    assert _link(none, "next") is None and _link(none, "previous") is None
    pseudonym = group.services.vault.locate("Patient", group.tm_patient.id).head
    [entry] = [e for e in group.events()[before:] if e.tag is Tag.FHIR_HISTORY]
    assert entry.patient_pseudonym == pseudonym.patient_pseudonym is not None
    many = _page(group, group.doctor_tm, f"{path}?_count=999999999")
    assert _versions(many) == [1] and _link(many, "next") is None
