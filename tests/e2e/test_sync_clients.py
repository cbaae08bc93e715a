"""A clinic app that keeps a copy in step, as integrators write one: it polls
``Patient/_history?_since=`` the ``meta.lastUpdated`` of its previous poll while
another process writes, following ``next`` links with fhirclient's own pager
(``fhirclient._utils.iter_pages``, what ``FHIRSearch.perform_iter`` uses). FHIR R4
http.html#history: ``_since`` is "only include resource versions that were created at
or after the given instant"; a sync client needs every write to turn up in some poll."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fhirclient._utils import iter_pages
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRServer

from carevault.config import Settings
from tests.support.auth import colleagues, token_for
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e

WRITES = 24


def _writer(
    server: RunningServer,
    token: str,
    written: set[tuple[str, str]],
    errors: list[str],
    stop: threading.Event,
) -> None:
    """A front desk registering patients and correcting each one once (until ``stop``)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}
    with httpx.Client(base_url=server.fhir, headers=headers, timeout=30) as http:
        for index in range(WRITES):
            if stop.is_set():
                return
            body: dict[str, Any] = {
                "resourceType": "Patient",
                "name": [{"family": f"Syncfamily{index:02d}", "given": ["Wing"]}],
                "birthDate": "1975-03-04",
            }
            created = http.post("/Patient", json=body)
            if created.status_code != 201:
                errors.append(created.text)
                return
            record = created.json()
            written.add((record["id"], record["meta"]["versionId"]))
            record["birthDate"] = "1975-03-05"
            updated = http.put(f"/Patient/{record['id']}", json=record)
            if updated.status_code != 200:
                errors.append(updated.text)
                return
            written.add((record["id"], updated.json()["meta"]["versionId"]))
            time.sleep(0.05)  # a desk's pace, however fast the server


def _poll(fhir: FHIRServer, since: str | None) -> tuple[set[tuple[str, str]], str, int]:
    """One sync poll: every page of the history since ``since``, by the next links.
    Returns the versions seen, the first page's ``meta.lastUpdated`` (the instant the
    answer is as of) and the number of pages."""
    query = "Patient/_history?_count=4" + (f"&_since={quote(since)}" if since else "")
    first = Bundle.read_from(query, fhir)
    assert first.type == "history"
    assert first.meta is not None and first.meta.lastUpdated is not None
    seen: set[tuple[str, str]] = set()
    pages = 0
    as_of = first.meta.lastUpdated.origval
    for page in iter_pages(first, fhir):
        pages += 1
        # Each page of one answer is as of the same instant: the last page's
        # meta.lastUpdated serves the next poll as well as the first's.
        assert page.meta is not None and page.meta.lastUpdated is not None
        assert page.meta.lastUpdated.origval == as_of
        for entry in page.entry or []:
            assert entry.resource is not None and entry.request is not None
            seen.add((entry.resource.id, entry.resource.meta.versionId))
    return seen, first.meta.lastUpdated.origval, pages


def test_history_polling_since_the_last_answer_sees_every_write(
    live_server: RunningServer, settings: Settings
) -> None:
    (desk,), _ = colleagues(settings.home, "front_desk")
    token = token_for(live_server.url, desk)
    fhir = FHIRServer(None, base_uri=f"{live_server.fhir}/")
    fhir.session.headers["Authorization"] = f"Bearer {token}"

    written: set[tuple[str, str]] = set()
    errors: list[str] = []
    stop = threading.Event()
    writer = threading.Thread(
        target=_writer, args=(live_server, token, written, errors, stop), daemon=True
    )
    seen, since, pages = _poll(fhir, None)
    assert seen == set()
    polls = 0
    most_pages = pages
    writer.start()
    try:
        while writer.is_alive():
            # A sync app polls now and then: writes pile up between polls (five or more,
            # pages of four), so that polls page by next links while the writes go on.
            target = len(written) + 5
            while writer.is_alive() and len(written) < target:
                time.sleep(0.02)
            found, since, pages = _poll(fhir, since)
            seen |= found
            polls += 1
            most_pages = max(most_pages, pages)
    finally:
        stop.set()
        writer.join()
    found, since, pages = _poll(fhir, since)
    seen |= found
    assert not errors, errors
    assert len(written) == 2 * WRITES
    # Polls overlapped the writes, and some followed more than one page of next links.
    assert polls >= 2 and most_pages >= 2
    assert written - seen == set()
    assert seen <= written
    # And the whole history, from the start, pages through every version.
    everything, _, pages = _poll(fhir, None)
    assert everything == written and pages == 2 * WRITES // 4


def test_concurrent_updates_with_the_same_if_match_let_exactly_one_through(
    live_server: RunningServer, settings: Settings
) -> None:
    """Version-aware updates (R4 http.html#concurrency): clients that read version 1 and
    each PUT with ``If-Match: W/"1"`` at once; one wins, every other gets 412, and no
    update is lost unnoticed."""
    (desk,), _ = colleagues(settings.home, "front_desk")
    token = token_for(live_server.url, desk)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/fhir+json"}
    made = httpx.post(
        f"{live_server.fhir}/Patient",
        json={"resourceType": "Patient", "name": [{"family": "Racefamily"}]},
        headers=headers,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    record = made.json()
    clients = 6
    start = threading.Barrier(clients)
    statuses: list[int] = []

    def update(index: int) -> None:
        body = {**record, "name": [{"family": "Racefamily", "given": [f"Writer{index}"]}]}
        with httpx.Client(timeout=30) as http:
            start.wait()
            response = http.put(
                f"{live_server.fhir}/Patient/{record['id']}",
                json=body,
                headers={**headers, "if-match": made.headers["etag"]},
            )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=update, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [412] * (clients - 1)
    final = httpx.get(
        f"{live_server.fhir}/Patient/{record['id']}", headers=headers, timeout=30
    ).json()
    assert final["meta"]["versionId"] == "2"


def test_fhirclient_pages_a_search_with_its_includes(
    live_server: RunningServer, settings: Settings
) -> None:
    """fhirclient's FHIRSearch as an app builds it (``.include()``, reverse too) and its
    ``perform_iter`` pager: every match once across the pages, each page with the
    resources its matches refer to (R4 search.html#include: the included resources
    of a page are those its matches name)."""
    (desk, doctor), clinic = colleagues(settings.home, "front_desk", "physician")
    desk_token = token_for(live_server.url, desk)
    doctor_token = token_for(live_server.url, doctor)

    def post(token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{live_server.fhir}/{body['resourceType']}",
            json=body,
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        made: dict[str, Any] = response.json()
        return made

    patient = post(desk_token, {"resourceType": "Patient", "name": [{"family": "Incfamily"}]})
    subject = {"reference": f"Patient/{patient['id']}"}
    post(
        doctor_token,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": subject,
            "serviceProvider": {"reference": f"Organization/{clinic}"},
            "period": {"start": "2026-11-27T09:00:00+08:00"},
        },
    )
    made = {
        post(
            doctor_token,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "subject": subject,
                "valueQuantity": {"value": 120 + index, "unit": "mmHg"},
            },
        )["id"]
        for index in range(5)
    }
    fhir = FHIRServer(None, base_uri=f"{live_server.fhir}/")
    fhir.session.headers["Authorization"] = f"Bearer {doctor_token}"

    search = Observation.where(struct={"subject": subject["reference"], "_count": "2"})
    search.include("subject")
    matched: list[str] = []
    for page in search.perform_iter(fhir):
        entries = page.entry or []
        matches = [e.resource.id for e in entries if e.search.mode == "match"]
        included = [
            (e.resource.resource_type, e.resource.id) for e in entries if e.search.mode == "include"
        ]
        assert included == [("Patient", patient["id"])]
        matched.extend(matches)
    assert sorted(matched) == sorted(made)

    reverse = Patient.where(struct={"_id": patient["id"]})
    reverse.include("subject", Observation, reverse=True)
    entries = [entry for page in reverse.perform_iter(fhir) for entry in page.entry or []]
    assert {e.resource.id for e in entries if e.search.mode == "include"} == made
    assert [e.resource.id for e in entries if e.search.mode == "match"] == [patient["id"]]
