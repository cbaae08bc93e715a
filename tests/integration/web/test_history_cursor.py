"""Type- and system-level history paged by a client while records change: the next link
continues after the last version given, whatever was written, moved or deleted since
(a FHIR client syncing by ``_history`` follows next links until there is none). On
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient, transfer_body

LEVELS = ["/fhir/Patient/_history", "/fhir/_history"]


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _page(group: Group, url: str) -> tuple[list[str], str | None]:
    """The versions of one page (``type/id/_history/version``) and its next link."""
    shown = group.call(group.desk_tm, "GET", url)
    assert shown.status_code == 200, shown.text
    bundle = shown.json()
    versions = [
        f"{entry['request']['url']}/_history/{entry['response']['etag'][3:-1]}"
        for entry in bundle.get("entry", [])
    ]
    following = next((ln["url"] for ln in bundle["link"] if ln["relation"] == "next"), None)
    return versions, None if following is None else following.removeprefix("http://testserver")


def _follow(group: Group, url: str | None) -> list[str]:
    """The versions of the page at ``url`` and of every page after it."""
    versions: list[str] = []
    while url is not None and len(versions) < 100:
        page, url = _page(group, url)
        versions += page
    return versions


def _rename(api: FhirTestClient, patient: str, given: str) -> None:
    body = api.get(f"/fhir/Patient/{patient}").json()
    body["name"][0]["given"] = [given]
    assert api.put_json(f"/fhir/Patient/{patient}", body).status_code == 200


def _new_patient(api: FhirTestClient, family: str) -> str:
    created = api.post_json(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "name": [{"family": family, "given": ["Tai Man"]}],
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize("level", LEVELS)
def test_a_record_leaving_ones_reach_between_pages_skips_nothing_one_may_read(
    group: Group, api: FhirTestClient, level: str
) -> None:
    """Hole: the cursor held a position among candidates. When the versions before it
    left the caller's reach (a patient transferred to another clinic), every later
    version moved up past the position, and the pages that followed skipped as many
    versions the caller could read: a client syncing by history silently missed them."""
    moving = _new_patient(api, "Ho")
    for given in ("Ka Yan", "Ka Yee"):
        _rename(api, moving, given)
    first, following = _page(group, f"{level}?_count=1")
    assert first == [f"Patient/{moving}/_history/3"]

    moved = api.post_json(
        f"/fhir/Patient/{moving}/$transfer",
        transfer_body(TW),
    )
    assert moved.status_code == 200, moved.text

    rest = _follow(group, following)
    assert f"Patient/{group.tm_patient.id}/_history/1" in rest, rest
    # Exactly what paging from the start now gives: the moved patient is out of reach.
    assert rest == _follow(group, f"{level}?_count=1")
    assert not any(moving in shown for shown in rest), rest


@pytest.mark.parametrize("level", LEVELS)
def test_a_version_written_between_pages_does_not_repeat_one_given(
    group: Group, api: FhirTestClient, level: str
) -> None:
    """A version written after the first page is newer than the cursor: the next page
    goes on from where the first stopped, never giving its last version again."""
    _new_patient(api, "Kwok")
    first, following = _page(group, f"{level}?_count=1")
    _new_patient(api, "Yip")
    rest = _follow(group, following)
    assert rest and not set(first) & set(rest), (first, rest)
    assert len(rest) == len(set(rest))


@pytest.mark.parametrize("level", LEVELS)
def test_a_cursor_replayed_later_starts_where_it_did(
    group: Group, api: FhirTestClient, level: str
) -> None:
    """Hole: a replayed cursor started at the same position among candidates, so which
    version it now started at told how many versions had been written since, readable or
    not. It starts at the same version whatever was written in between."""
    _new_patient(api, "Kwok")
    _, following = _page(group, f"{level}?_count=1")
    assert following is not None
    before, _ = _page(group, following)
    for family in ("Lam", "Mok"):
        _new_patient(api, family)
    again, _ = _page(group, following)
    assert again == before
