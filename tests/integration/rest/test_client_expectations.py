"""What a clinic app's client code counts on, checked as the client reads it: conditional
create and update, ``If-Match`` with weak ETags, ``Prefer: return=``, paging a search by
its ``next`` links, ``_summary=count``, ``_elements``, ``_include``/``_revinclude`` and
transaction ``urn:uuid:`` references (FHIR R4 http.html and search.html). Every body is
parsed by fhirclient's strict R4 models on the way (``FhirTestClient``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fhirclient._utils import iter_pages
from fhirclient.models.bundle import Bundle
from fhirclient.server import FHIRServer

from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FhirTestClient
from tests.support.inprocess import mounted

HKID = "http://carevault.hk/sid/hkid"
SUBSETTED = "SUBSETTED"


def _local(url: str) -> str:
    """An absolute link of the server's as the test client asks for it."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _pages(api: FhirTestClient, first: str) -> list[dict[str, Any]]:
    """Every page of a search, by its next links, as fhirclient's pager follows them."""
    pages: list[dict[str, Any]] = []
    url: str | None = first
    while url is not None:
        response = api.get(url)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        Bundle(page)  # strict R4
        pages.append(page)
        url = next(
            (_local(link["url"]) for link in page.get("link", []) if link["relation"] == "next"),
            None,
        )
        assert len(pages) <= 20, "the next links do not end"
    return pages


def test_conditional_create_answers_per_number_of_matches(api: FhirTestClient) -> None:
    first = create(api, patient("Chan", "Tai Man", "A123456(3)"))
    criteria = f"identifier={HKID}|A123456(3)"
    # One match: "the server ignores the post and returns 200 OK" (R4 http.html#ccreate).
    again = api.post_json("/fhir/Patient", patient(), **{"If-None-Exist": criteria})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    # No match: created as usual.
    other = api.post_json(
        "/fhir/Patient",
        patient("Chan", "Siu Ming", "C668668(9)"),
        **{"If-None-Exist": f"identifier={HKID}|C668668(9)"},
    )
    assert other.status_code == 201, other.text
    # Several: 412 Precondition Failed, nothing created.
    several = api.post_json(
        "/fhir/Patient", patient("Chan", "Ka Yan", "K654321(9)"), **{"If-None-Exist": "family=Chan"}
    )
    assert several.status_code == 412, several.text
    assert several.json()["resourceType"] == "OperationOutcome"
    counted = api.get("/fhir/Patient?family=Chan&_summary=count").json()
    assert counted["total"] == 2


def test_conditional_update_by_identifier_creates_updates_or_refuses(api: FhirTestClient) -> None:
    url = f"/fhir/Patient?identifier={HKID}|A123456(3)"
    made = api.put_json(url, patient())
    assert made.status_code == 201, made.text
    assert made.headers["etag"] == 'W/"1"'
    updated = api.put_json(url, {**patient(), "birthDate": "1980-05-02"})
    assert updated.status_code == 200, updated.text
    assert updated.json()["id"] == made.json()["id"]
    assert updated.headers["etag"] == 'W/"2"'
    create(api, patient("Chan", "Siu Ming", "C668668(9)"))
    assert api.put_json("/fhir/Patient?family=Chan", patient()).status_code == 412


def test_if_match_takes_the_weak_etag_a_read_gave(api: FhirTestClient) -> None:
    made = create(api, patient())
    read = api.get(f"/fhir/Patient/{made['id']}")
    etag = read.headers["etag"]
    assert etag == 'W/"1"'
    body = {**read.json(), "birthDate": "1980-05-02"}
    saved = api.put_json(f"/fhir/Patient/{made['id']}", body, **{"If-Match": etag})
    assert saved.status_code == 200, saved.text
    assert saved.headers["etag"] == 'W/"2"'
    # The same stale ETag again: 412, and the record stays at version 2.
    stale = api.put_json(f"/fhir/Patient/{made['id']}", body, **{"If-Match": etag})
    assert stale.status_code == 412, stale.text
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert api.get(f"/fhir/Patient/{made['id']}").json()["meta"]["versionId"] == "2"


def test_prefer_return_shapes_the_answer_to_a_create_and_an_update(api: FhirTestClient) -> None:
    minimal = api.post_json("/fhir/Patient", patient(), Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.content == b""
    location = minimal.headers["location"]
    assert location.startswith("http://testserver/fhir/Patient/")
    assert location.endswith("/_history/1")
    patient_id = location.split("/")[-3]
    representation = api.put_json(
        f"/fhir/Patient/{patient_id}",
        {**patient(), "id": patient_id},
        Prefer="return=representation",
    )
    assert representation.status_code == 200
    assert representation.json()["meta"]["versionId"] == "2"
    outcome = api.put_json(
        f"/fhir/Patient/{patient_id}",
        {**patient(), "id": patient_id},
        Prefer="return=OperationOutcome",
    )
    assert outcome.status_code == 200
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.headers["etag"] == 'W/"3"'


def test_a_search_pages_by_its_next_links_to_every_match_once(api: FhirTestClient) -> None:
    subject = create(api, patient())
    made = {
        create(api, observation(subject["id"], f"2026-01-{day:02d}"))["id"] for day in range(1, 8)
    }
    pages = _pages(api, "/fhir/Observation?_count=3")
    assert [len(page.get("entry", [])) for page in pages] == [3, 3, 1]
    assert {page["total"] for page in pages} == {7}
    found = [entry["resource"]["id"] for page in pages for entry in page["entry"]]
    assert sorted(found) == sorted(made)
    assert all(entry["search"]["mode"] == "match" for page in pages for entry in page["entry"])
    # Every link is absolute, on the server's base: a client library follows it as it is.
    assert all(
        link["url"].startswith("http://testserver/fhir/Observation?")
        for page in pages
        for link in page["link"]
    )
    counted = api.get("/fhir/Observation?_summary=count")
    assert counted.status_code == 200
    assert counted.json()["total"] == 7
    assert "entry" not in counted.json()


def test_elements_marks_the_view_subsetted_and_keeps_what_was_asked(api: FhirTestClient) -> None:
    subject = create(api, patient())
    create(api, observation(subject["id"], "2026-01-01"))
    bundle = api.get("/fhir/Observation?_elements=status,subject").json()
    [entry] = bundle["entry"]
    resource = entry["resource"]
    assert resource["status"] == "final"
    assert resource["subject"] == {"reference": f"Patient/{subject['id']}"}
    assert "valueQuantity" not in resource and "effectiveDateTime" not in resource
    assert SUBSETTED in [label["code"] for label in resource["meta"]["security"]]


def test_include_and_revinclude_add_entries_in_include_mode(api: FhirTestClient) -> None:
    subject = create(api, patient())
    made = {create(api, observation(subject["id"], f"2026-01-0{day}"))["id"] for day in (1, 2)}
    included = api.get("/fhir/Observation?_include=Observation:patient").json()
    modes = {
        (entry["resource"]["resourceType"], entry["resource"]["id"]): entry["search"]["mode"]
        for entry in included["entry"]
    }
    assert modes == {
        **{("Observation", ident): "match" for ident in made},
        ("Patient", subject["id"]): "include",
    }
    # total counts the matches only (R4 search.html#total).
    assert included["total"] == 2
    reverse = api.get(f"/fhir/Patient?_id={subject['id']}&_revinclude=Observation:patient").json()
    modes = {
        (entry["resource"]["resourceType"], entry["resource"]["id"]): entry["search"]["mode"]
        for entry in reverse["entry"]
    }
    assert modes == {
        ("Patient", subject["id"]): "match",
        **{("Observation", ident): "include" for ident in made},
    }
    assert reverse["total"] == 1


def test_a_transaction_resolves_urn_uuid_references_whatever_their_order(
    api: FhirTestClient,
) -> None:
    patient_urn = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            # The Observation comes first and names the Patient made after it.
            {
                "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
                "resource": {
                    **observation("placeholder", "2026-02-01"),
                    "subject": {"reference": patient_urn},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": patient_urn,
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["type"] == "transaction-response"
    observation_entry, patient_entry = reply["entry"]
    assert observation_entry["response"]["status"].startswith("201")
    assert patient_entry["response"]["status"].startswith("201")
    patient_id = patient_entry["response"]["location"].split("/")[1]
    observation_id = observation_entry["response"]["location"].split("/")[1]
    stored = api.get(f"/fhir/Observation/{observation_id}").json()
    assert stored["subject"] == {"reference": f"Patient/{patient_id}"}
    assert patient_entry["fullUrl"] == f"http://testserver/fhir/Patient/{patient_id}"


def test_a_transaction_posts_a_record_that_names_a_patient_it_puts(api: FhirTestClient) -> None:
    """R4 processes POSTs before PUTs; a POSTed Observation naming the Patient the same
    Bundle PUTs (a client-chosen id, as feeds that keep their own ids send) is written
    after it all the same."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": observation("feed-patient-1", "2026-02-01"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {**patient(), "id": "feed-patient-1"},
                "request": {"method": "PUT", "url": "Patient/feed-patient-1"},
            },
        ],
    }
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 200, response.text
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert [status.split()[0] for status in statuses] == ["201", "201"]
    found = api.get("/fhir/Observation?patient=feed-patient-1").json()
    assert found["total"] == 1


def _feed(observation_full_url: str) -> dict[str, Any]:
    """A transaction as feeds that name entries by RESTful URLs send it: the Observation
    refers to its Patient relatively, ``Patient/abc``."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "http://example.org/fhir/Patient/abc",
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": observation_full_url,
                "resource": observation("abc", "2026-02-01"),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


def test_a_relative_reference_in_a_transaction_names_the_entry_of_its_base(
    api: FhirTestClient,
) -> None:
    """R4 bundle.html#references: ``Patient/abc`` in the entry
    ``http://example.org/fhir/Observation/o1`` is ``http://example.org/fhir/Patient/abc``,
    the Patient the same Bundle POSTs; http.html#trules: references to a POSTed entry's
    fullUrl are rewritten to its new id."""
    response = api.post_json("/fhir", _feed("http://example.org/fhir/Observation/o1"))
    assert response.status_code == 200, response.text
    patient_entry, observation_entry = response.json()["entry"]
    patient_id = patient_entry["response"]["location"].split("/")[1]
    observation_id = observation_entry["response"]["location"].split("/")[1]
    stored = api.get(f"/fhir/Observation/{observation_id}").json()
    assert stored["subject"] == {"reference": f"Patient/{patient_id}"}


def test_a_relative_reference_in_an_entry_named_by_a_urn_is_the_servers_record(
    api: FhirTestClient,
) -> None:
    """In an entry named by a urn:uuid: ``Patient/abc`` is read against the server's
    base: the server has no such Patient, so nothing is written."""
    feed = _feed("urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059")
    response = api.post_json("/fhir", feed)
    assert response.status_code == 422, response.text
    assert "Patient/abc" in response.text
    assert api.get("/fhir/Patient?_summary=count").json()["total"] == 0


def test_a_transaction_writing_one_record_twice_fails_whole(api: FhirTestClient) -> None:
    """R4 http.html#trules: resource identities that overlap among the DELETE, POST and
    PUT entries fail the transaction; nothing is written."""
    made = create(api, patient())
    url = f"Patient/{made['id']}"
    for second in (
        {"resource": {**made, "gender": "female"}, "request": {"method": "PUT", "url": url}},
        {"request": {"method": "DELETE", "url": url}},
    ):
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {**made, "birthDate": "1980-05-02"},
                    "request": {"method": "PUT", "url": url},
                },
                second,
            ],
        }
        response = api.post_json("/fhir", bundle)
        assert response.status_code == 400, response.text
        assert "Bundle.entry[1]" in response.json()["issue"][0]["diagnostics"]
    assert api.get(f"/fhir/{url}").json()["meta"]["versionId"] == "1"


def test_a_transaction_deletes_a_patient_and_its_records_in_any_order(
    api: FhirTestClient,
) -> None:
    """R4 http.html#trules: "the order of the entries doesn't matter". The Patient listed
    before its Observation is deleted after it all the same."""
    made = create(api, patient())
    recorded = create(api, observation(made["id"], "2026-01-01"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Patient/{made['id']}"}},
            {"request": {"method": "DELETE", "url": f"Observation/{recorded['id']}"}},
        ],
    }
    response = api.post_json("/fhir", bundle)
    assert response.status_code == 200, response.text
    statuses = [entry["response"]["status"] for entry in response.json()["entry"]]
    assert [status.split()[0] for status in statuses] == ["204", "204"]
    assert api.get(f"/fhir/Patient/{made['id']}").status_code == 410
    assert api.get(f"/fhir/Observation/{recorded['id']}").status_code == 410


def test_every_page_of_a_history_is_as_of_its_first(api: FhirTestClient) -> None:
    """A sync client may take the ``meta.lastUpdated`` of the last page it read as its
    next ``_since``: a write made while it paged is then in its next poll. Each page
    carried its own, later, time, so the write made between pages was missed (it is in
    no later page, which goes back in time from where the first began)."""
    for hkid in ("A123456(3)", "C668668(9)", "K654321(9)"):
        create(api, patient("Chan", "Tai Man", hkid))
    first = api.get("/fhir/Patient/_history?_count=1").json()
    written = create(api, patient("Wong", "Siu Ming", "G123456(A)"))  # while paging
    pages = _pages(api, _local(first["link"][-1]["url"]))
    assert first["link"][-1]["relation"] == "next" and len(pages) == 2
    assert {page["meta"]["lastUpdated"] for page in pages} == {first["meta"]["lastUpdated"]}
    paged = [entry["resource"]["id"] for page in [first, *pages] for entry in page["entry"]]
    assert len(paged) == 3 and written["id"] not in paged
    since = pages[-1]["meta"]["lastUpdated"]
    polled = api.get("/fhir/Patient/_history", params={"_since": since}).json()
    assert written["id"] in [entry["resource"]["id"] for entry in polled["entry"]]


def test_a_version_written_while_paging_an_instance_history_is_in_the_next_poll(
    api: FhirTestClient,
) -> None:
    """As for type history: the pages went by a plain ``_offset``, each as of its own
    time, so the version written between them was in neither (the next page repeated
    the last one shown instead) and older than the last page's ``meta.lastUpdated``."""
    made = create(api, patient())
    url = f"/fhir/Patient/{made['id']}"
    for day in (2, 3):
        api.put_json(url, {**made, "birthDate": f"1980-05-0{day}"})
    first = api.get(f"{url}/_history?_count=1").json()
    written = api.put_json(url, {**made, "birthDate": "1980-05-09"}).json()  # while paging
    pages = _pages(api, _local(first["link"][-1]["url"]))
    since = pages[-1]["meta"]["lastUpdated"]
    polled = api.get(f"{url}/_history", params={"_since": since}).json()
    seen = {
        entry["resource"]["meta"]["versionId"]
        for page in [first, *pages, polled]
        for entry in page.get("entry", [])
    }
    assert written["meta"]["versionId"] in seen


def _fhirclient(api: FhirTestClient) -> FHIRServer:
    server = FHIRServer(None, base_uri="http://testserver/fhir/")
    mounted(server.session, api)
    return server


def test_fhirclient_pages_an_instance_history_and_polls_since_its_last_page(
    api: FhirTestClient,
) -> None:
    """fhirclient reads an instance history and follows its ``next`` links with its own
    pager (``iter_pages``): R4 http.html#history, a Bundle of ``type`` history, newest
    version first, each once, the same ``total`` and ``meta.lastUpdated`` on every page,
    a deletion as an entry with ``request.method`` DELETE and no resource. A version
    written while it pages is in its next poll ``_since`` the last page's time."""
    made = create(api, patient())
    url = f"/fhir/Patient/{made['id']}"
    for day in range(2, 8):
        assert api.put_json(url, {**made, "birthDate": f"1980-05-0{day}"}).status_code == 200
    assert api.delete(url).status_code == 204
    fhir = _fhirclient(api)
    first = Bundle.read_from(f"Patient/{made['id']}/_history?_count=3", fhir)
    assert first.type == "history" and first.total == 8
    assert [link.relation for link in first.link] == ["self", "first", "next"]
    written = api.put_json(url, {**made, "birthDate": "1980-06-01"})  # while paging
    assert written.status_code == 201  # brought back after its deletion
    pages = list(iter_pages(first, fhir))
    assert [len(page.entry) for page in pages] == [3, 3, 2]
    entries = [entry for page in pages for entry in page.entry]
    assert [entry.request.method for entry in entries] == ["DELETE"] + ["PUT"] * 6 + ["POST"]
    assert entries[0].resource is None
    assert [e.resource.meta.versionId for e in entries[1:]] == [str(n) for n in range(7, 0, -1)]
    assert {page.total for page in pages} == {8}
    assert {page.meta.lastUpdated.origval for page in pages} == {first.meta.lastUpdated.origval}
    assert [link.relation for link in pages[1].link] == ["self", "first", "previous", "next"]
    since = quote(pages[-1].meta.lastUpdated.origval)
    polled = Bundle.read_from(f"Patient/{made['id']}/_history?_since={since}", fhir)
    assert [e.resource.meta.versionId for e in polled.entry or []] == ["9"]


def test_the_self_link_of_a_history_asks_what_the_client_asked(api: FhirTestClient) -> None:
    """R4 bundle.html (``link``, relation self) and http.html#paging: a Bundle's self
    link is the request it answers. An instance history asked without ``_count`` wrote
    the number of versions it found as ``_count`` into its self and first links: a poll
    ``_since`` a time with nothing new linked itself as ``_count=0``, so a client polling
    again by that link was given a total and never an entry."""
    made = create(api, patient())
    url = f"/fhir/Patient/{made['id']}"
    fhir = _fhirclient(api)
    since = quote(Bundle.read_from(f"Patient/{made['id']}/_history", fhir).meta.lastUpdated.origval)
    empty = Bundle.read_from(f"Patient/{made['id']}/_history?_since={since}", fhir)
    assert empty.total == 0
    again = {link.relation: link.url for link in empty.link}["self"]
    assert api.put_json(url, {**made, "birthDate": "1980-06-01"}).status_code == 200
    polled = Bundle.read_from(again, fhir)
    assert [e.resource.meta.versionId for e in polled.entry or []] == ["2"]


def test_a_replayed_deletion_of_a_record_never_held_does_not_fail_the_transaction(
    api: FhirTestClient,
) -> None:
    """A Bulk Data client mirroring into another FHIR server posts each line of the
    manifest's ``deleted`` (a transaction Bundle of DELETE entries). The export lists a
    record created and deleted between two exports, which the mirror never held: its
    DELETE answered 404 and failed the whole transaction."""
    made = create(api, patient())
    deletion = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "DELETE", "url": f"Patient/{made['id']}"}},
            {"request": {"method": "DELETE", "url": "Patient/never-held"}},
        ],
    }
    answered = api.post_json("/fhir", deletion)
    assert answered.status_code == 200, answered.text
    assert api.get(f"/fhir/Patient/{made['id']}").status_code == 410
