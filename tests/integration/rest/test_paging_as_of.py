"""Pages as of a settled time (stop 66; integrator round 66's probes).

A page that moves on by cursor in the order records were written (a search's default
order, ``_sort=_lastUpdated``, ``$everything``) ended at its last record, and its cursor
asked for what came strictly after it. On PostgreSQL writes run side by side, each
stamping ``lastUpdated`` before it commits: a write stamped before the page's last record
and committed after the page was read lay behind the cursor, in no page. Such a page is
now read as of a settled time (``db.settled_now``), listing only what was written by
then, so every write not yet committed stamps after it and comes at the end.

Every ``$everything`` is as of a settled time, its ``meta.lastUpdated``, asked ``_since``
or not: the first call of a poller's loop asks without it. And the patient, first in
their chart, is first only if last written by the time the first page was as of: one
updated while a client pages comes again at the end, in its new version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.rest import offsets
from carevault.vault import writer as writer_module
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient


def _links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


def _entries(bundle: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (e["resource"]["resourceType"], e["resource"]["id"], e["resource"]["meta"]["versionId"])
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode", "match") == "match"
    ]


def _paged(api: FhirTestClient, first: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every match of ``first`` and of the pages its next links lead to."""
    seen = _entries(first)
    following = _links(first).get("next")
    while following:
        page = api.get(following)
        assert page.status_code == 200, page.text
        seen += _entries(page.json())
        following = _links(page.json()).get("next")
    return seen


@contextmanager
def _slow_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The first record write from now on is stamped and flushed, then held before its
    commit until the event the block gets is set (30 seconds at most)."""
    stamped, release = threading.Event(), threading.Event()
    flush = writer_module._Writer.flush

    def slow(self: Any) -> None:
        flush(self)
        if not stamped.is_set():
            stamped.set()
            release.wait(30)

    monkeypatch.setattr(writer_module._Writer, "flush", slow)
    try:
        yield stamped
    finally:
        release.set()
        monkeypatch.setattr(writer_module._Writer, "flush", flush)


@pytest.mark.only_backend("postgres")
@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Observation?_sort=_lastUpdated&_count=5",
        "/fhir/Observation?_count=5",
        "/fhir/Patient/{patient}/$everything?_count=6",
    ],
    ids=["sort-lastUpdated", "default-order", "everything"],
)
def test_a_write_committed_after_a_page_but_stamped_before_its_last_entry_is_listed(
    api: FhirTestClient, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """A write W stamped, then slow to commit (a transaction Bundle, an import batch);
    meanwhile X and Y are written and committed; the client asks for a page that would
    end at X. It was read at once, its cursor after X, and W, committed later, was in no
    page. The page now waits for W (a settled time, at most ``db.SETTLE_SECONDS``), and
    every record, W among them, is listed once."""
    someone = create(api, patient())["id"]
    for _ in range(4):
        create(api, observation(someone, "2024-01-01"))
    url = url.format(patient=someone)
    with _slow_commit(monkeypatch) as stamped:
        written: list[dict[str, Any]] = []
        slow = threading.Thread(
            target=lambda: written.append(
                api.post_json("/fhir/Observation", observation(someone, "2024-02-02")).json()
            )
        )
        slow.start()
        assert stamped.wait(30)
        later = [create(api, observation(someone, f"2024-0{m}-03"))["id"] for m in (3, 4)]
        answered: list[Any] = []
        reader = threading.Thread(target=lambda: answered.append(api.get(url)))
        reader.start()
        reader.join(1.0)
        waited = not answered
    slow.join(30)
    reader.join(30)
    (w,) = written
    (first,) = answered
    assert first.status_code == 200, first.text
    seen = [entry[1] for entry in _paged(api, first.json())]
    assert set(later) <= set(seen)
    assert w["id"] in seen, "the record written while the client paged was never listed"
    assert len(seen) == len(set(seen))
    assert waited, "the page did not wait for the write in flight"


@pytest.mark.parametrize(
    "poll",
    [
        "/fhir/Patient/{patient}/$everything",
        "/fhir/Patient/{patient}/$everything?_count=50",
        "/fhir/Patient/{patient}/$everything?_type=Patient,Observation",
        "/fhir/Patient/{patient}/$everything?_since=2020-01-01T00:00:00Z",
    ],
)
def test_everything_is_as_of_a_settled_time_for_the_next_since(
    api: FhirTestClient, monkeypatch: pytest.MonkeyPatch, poll: str
) -> None:
    """R4 Patient-everything's ``_since``: "allow a client to request only records that
    have changed since the last request". The first call of that loop is asked without
    ``_since``, and its ``meta.lastUpdated`` was the time it was assembled: a write
    stamped before it and committed after the read was in neither that Bundle nor any
    later ``_since`` poll. It is now as of a settled time, asked ``_since`` or not (the
    case asked with it held already)."""
    someone = create(api, patient())
    poll = poll.format(patient=someone["id"])
    answered: list[dict[str, Any]] = []
    with _slow_commit(monkeypatch) as stamped:
        written: list[dict[str, Any]] = []
        writer = threading.Thread(
            target=lambda: written.append(
                api.post_json("/fhir/Observation", observation(someone["id"], "2024-03-01")).json()
            )
        )
        writer.start()
        assert stamped.wait(30)
        reader = threading.Thread(target=lambda: answered.append(api.get(poll).json()))
        reader.start()
        reader.join(1.0)
    writer.join(30)
    reader.join(30)
    (made,) = written
    (bundle,) = answered
    listed = {entry[1] for entry in _entries(bundle)}
    # R4's loop: the next poll is _since the Bundle's meta.lastUpdated.
    polled = api.get(
        f"/fhir/Patient/{someone['id']}/$everything",
        params={"_since": bundle["meta"]["lastUpdated"]},
    ).json()
    later = {entry[1] for entry in _entries(polled)}
    assert made["id"] in listed | later


@pytest.mark.parametrize("criteria", ["", "&_type=Patient,Observation", "&start=2024-01-01"])
def test_everything_lists_the_patient_updated_while_paging_in_its_new_version(
    api: FhirTestClient, criteria: str
) -> None:
    """Paging by cursor, a record updated on a page passed comes again at the end in its
    new version; the patient did not: pinned first, before every cursor, whatever its
    last update, so a chart app paging ``$everything`` while the desk corrected the
    patient's address ended with the patient's old version and every other record's
    new one. The patient is now first only if last written by the time the first page
    was as of (both of the gate's paths: clear metadata, and care dates)."""
    someone = create(api, patient())["id"]
    for month in range(1, 8):
        create(api, observation(someone, f"2024-0{month}-10"))
    first = api.get(f"/fhir/Patient/{someone}/$everything?_count=3{criteria}").json()
    shown = _entries(first)
    assert shown[0][:2] == ("Patient", someone)
    (_, reading, _) = next(entry for entry in shown if entry[0] == "Observation")
    stored = api.get(f"/fhir/Patient/{someone}").json()
    assert (
        api.put_json(f"/fhir/Patient/{someone}", {**stored, "gender": "female"}).status_code == 200
    )
    kept = api.get(f"/fhir/Observation/{reading}").json()
    assert (
        api.put_json(f"/fhir/Observation/{reading}", {**kept, "status": "amended"}).status_code
        == 200
    )
    seen = _paged(api, first)
    assert ("Observation", reading, "2") in seen
    assert ("Patient", someone, "2") in seen, [e for e in seen if e[0] == "Patient"]
    # Once in each version, and every other record once.
    assert len(seen) == len(set(seen)) == 8 + 2


def test_everything_not_updated_while_paging_lists_the_patient_once_first(
    api: FhirTestClient,
) -> None:
    """The patient last written after every other record of the chart (registered,
    then corrected) is still first, and only there: it was last written before the first
    page was read."""
    someone = create(api, patient())["id"]
    for month in range(1, 6):
        create(api, observation(someone, f"2024-0{month}-10"))
    stored = api.get(f"/fhir/Patient/{someone}").json()
    assert (
        api.put_json(f"/fhir/Patient/{someone}", {**stored, "gender": "female"}).status_code == 200
    )
    first = api.get(f"/fhir/Patient/{someone}/$everything?_count=2").json()
    seen = _paged(api, first)
    assert seen[0] == ("Patient", someone, "2")
    assert [entry for entry in seen if entry[0] == "Patient"] == [("Patient", someone, "2")]
    assert len(seen) == 6


def test_an_everything_cursor_sealed_before_stop_66_is_still_read(
    api: FhirTestClient, services: Services
) -> None:
    """A cursor of the default order's format (``$everything``'s before stop 66, with no
    first page's time) pages on, the patient first as its first page had it; its page's
    next link is of the new format."""
    someone = create(api, patient())["id"]
    readings = [create(api, observation(someone, f"2024-0{m}-10"))["id"] for m in range(1, 6)]
    chart = f"Patient/{someone}/$everything"
    before = offsets.seal_cursor(
        services.vault.paging_key,
        "system:test",
        chart,
        offsets.criteria([("_count", "2")]),
        (-1, -1),
    )
    page = api.get(f"/fhir/{chart}?_count=2&_offset={before}")
    assert page.status_code == 200, page.text
    following = _links(page.json())["next"]
    assert len(following.rsplit("_offset=", 1)[1]) == offsets.CHART_CURSOR_LENGTH
    seen = _paged(api, page.json())
    assert [entry[1] for entry in seen] == readings
