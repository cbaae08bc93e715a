"""Instance history paged by its links, on SQLite and PostgreSQL: every page of one
answer as of the first page's settled time (``meta.lastUpdated``), each version once,
newest first, whatever is written meanwhile; the cursor in its links sealed for the
caller, the record and the request (``rest/cursor.py``), anything else refused (400)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from tests.integration.access.group import Group, build_group
from tests.integration.rest.test_interactions import create, patient
from tests.support.client import FhirTestClient


def _link(bundle: dict[str, Any], relation: str) -> str | None:
    url = next((ln["url"] for ln in bundle["link"] if ln["relation"] == relation), None)
    return None if url is None else url.removeprefix("http://testserver")


def _versions(bundle: dict[str, Any]) -> list[int]:
    return [int(entry["resource"]["meta"]["versionId"]) for entry in bundle.get("entry", [])]


def _cursor(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["_offset"]


def _with_versions(api: FhirTestClient, how_many: int) -> tuple[dict[str, Any], str]:
    """A patient with ``how_many`` versions, and its URL."""
    made = create(api, patient())
    url = f"/fhir/Patient/{made['id']}"
    for day in range(2, how_many + 1):
        written = api.put_json(url, {**made, "birthDate": f"1980-05-{day:02d}"})
        assert written.status_code == 200, written.text
    return made, url


def test_twenty_five_versions_by_ten_are_three_pages_as_of_the_first(
    api: FhirTestClient,
) -> None:
    """Each page went by a plain ``_offset``: the version written after the first page
    pushed every older one down, so the next page repeated the last one shown. Pages now
    start at a version, as of the first page's time: the one written meanwhile is in no
    page and counted in no total, and is in the poll ``_since`` the last page's time."""
    made, url = _with_versions(api, 25)
    first = api.get(f"{url}/_history?_count=10").json()
    written = api.put_json(url, {**made, "gender": "female"}).json()  # while paging
    assert written["meta"]["versionId"] == "26"

    pages = [first]
    following = _link(first, "next")
    while following is not None and len(pages) < 10:
        response = api.get(following)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        following = _link(pages[-1], "next")

    assert [len(page["entry"]) for page in pages] == [10, 10, 5]
    assert [number for page in pages for number in _versions(page)] == list(range(25, 0, -1))
    assert {page["meta"]["lastUpdated"] for page in pages} == {first["meta"]["lastUpdated"]}
    assert {page["total"] for page in pages} == {25}
    assert _link(first, "previous") is None
    back = _link(pages[2], "previous")
    assert back is not None and _versions(api.get(back).json()) == list(range(15, 5, -1))
    again = _link(pages[1], "previous")
    assert again is not None and _versions(api.get(again).json()) == list(range(25, 15, -1))
    polled = api.get(f"{url}/_history", params={"_since": pages[-1]["meta"]["lastUpdated"]})
    assert 26 in _versions(polled.json())
    fresh = _link(pages[2], "first")
    assert fresh is not None and _versions(api.get(fresh).json())[0] == 26


def test_since_and_count_are_kept_in_the_links_and_at_is_still_refused(
    api: FhirTestClient,
) -> None:
    _, url = _with_versions(api, 5)
    third = api.get(f"{url}/_history/3").json()
    since = third["meta"]["lastUpdated"]
    first = api.get(f"{url}/_history", params={"_since": since, "_count": "2"}).json()
    assert _versions(first) == [5, 4] and first["total"] == 3
    following = _link(first, "next")
    assert following is not None
    assert dict(parse_qsl(urlsplit(following).query))["_since"] == since
    assert _versions(api.get(following).json()) == [3]
    assert api.get(f"{url}/_history?_at=2024").status_code == 400


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _refused(services: Services, get: Callable[[str], Any], path: str) -> None:
    """``path`` answers 400 with an OperationOutcome, having read nothing: the ledger
    records the refused request (a staff member's, by the web layer) and no history."""
    before = len(list(services.audit_ledger.store.entries()))
    response = get(path)
    assert response.status_code == 400, (path, response.text)
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "_offset" in response.json()["issue"][0]["diagnostics"]
    added = [json.loads(data)["tag"] for _, data in services.audit_ledger.store.entries()]
    assert set(added[before:]) <= {Tag.REQUEST_REFUSED.value}, (path, added[before:])


def test_an_instance_history_cursor_is_only_its_callers_for_its_request(
    group: Group, api: FhirTestClient
) -> None:
    """A cursor altered, sent by another caller (one who may read the record), with
    another ``_since``, at type level, or a position the client chose: refused, before
    anything is read or recorded. A client cannot choose the instant a page is as of."""
    url = f"/fhir/Patient/{group.tm_patient.id}"
    body = api.get(url).json()
    for given in ("Ka Yan", "Ka Yee"):
        body["name"][0]["given"] = [given]
        assert api.put_json(url, body).status_code == 200
    first = group.call(group.doctor_tm, "GET", f"{url}/_history?_count=1").json()
    following = _link(first, "next")
    assert following is not None
    sealed = _cursor(following)
    assert not sealed.isdigit()
    assert group.call(group.doctor_tm, "GET", following).status_code == 200

    def doctor(path: str) -> Any:
        return group.call(group.doctor_tm, "GET", path)

    at = len(sealed) // 2
    tampered = sealed[:at] + ("A" if sealed[at] != "A" else "B") + sealed[at + 1 :]
    since = "2020-01-01T00:00:00Z"
    _refused(group.services, doctor, f"{url}/_history?_count=1&_offset={tampered}")
    _refused(group.services, lambda path: group.call(group.desk_tm, "GET", path), following)
    _refused(group.services, doctor, f"{url}/_history?_count=1&_offset={sealed}&_since={since}")
    _refused(group.services, doctor, f"{url}/_history?_count=1&_offset=1")
    _refused(group.services, doctor, f"/fhir/Patient/_history?_count=1&_offset={sealed}")
    type_level = _link(api.get("/fhir/Patient/_history?_count=1").json(), "next")
    assert type_level is not None
    _refused(group.services, doctor, f"{url}/_history?_count=1&_offset={_cursor(type_level)}")


def test_a_cursor_of_one_record_is_refused_on_another(
    services: Services, api: FhirTestClient
) -> None:
    """The next link of one patient's history, sent for another's by the same caller (who
    may read both): refused, not a page of the other record's versions below that number."""
    made, url = _with_versions(api, 3)
    other, other_url = _with_versions(api, 3)
    following = _link(api.get(f"{url}/_history?_count=1").json(), "next")
    assert following is not None
    moved = following.replace(made["id"], other["id"])
    assert moved.startswith(f"{other_url}/_history?")
    _refused(services, api.get, moved)
    assert _versions(api.get(following).json()) == [2]
