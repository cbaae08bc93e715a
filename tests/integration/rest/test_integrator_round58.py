"""What a client of the FHIR API counts on, found by integrator round 58: unknown
operations answered alike, ``If-Match: *`` on writes, and ``$everything``'s links."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhirclient.models.bundle import Bundle
from fhirpy import SyncFHIRClient

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import FLU, HIV, TM, Group, build_group
from tests.integration.gate.test_write_oracles import prescription
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.inprocess import InProcess
from tests.support.staff import make_staff

MERGE_PATCH = {"content-type": "application/merge-patch+json"}


def test_an_unknown_operation_is_404_at_every_level_and_with_every_method(
    api: FhirTestClient,
) -> None:
    """R4 http.html: 404 for what is "not a FHIR end-point" here, 405 for a method an
    end-point does not take. An operation this server does not define answered 404
    (``Patient/[id]/$nonsense``), 400 (``GET Patient/$nonsense``: the name read as an
    id) or 405 (``POST Patient/$nonsense``: the path of a record, which takes no POST)
    by the shape of its path, so a client could not tell "no such operation" from "wrong
    method". Now every unknown operation answers 404 with an OperationOutcome
    (``not-supported``) naming it, the record's existence never weighed."""
    someone = create(api, patient())["id"]
    paths = [
        "/fhir/$nonsense",
        "/fhir/Patient/$nonsense",
        f"/fhir/Patient/{someone}/$nonsense",
        "/fhir/Patient/never-used/$nonsense",
        "/fhir/Observation/$everything",
    ]
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            answer = api.request(method, path, content=b"{}", headers=FHIR_JSON)
            assert answer.status_code == 404, (method, path, answer.text)
            assert "allow" not in answer.headers
            (issue,) = answer.json()["issue"]
            assert issue["code"] == "not-supported", (method, path)
            assert f"${path.rsplit('$', 1)[1]}" in issue["diagnostics"]
    assert api.head("/fhir/Patient/$nonsense").status_code == 404
    # A known operation asked with a method it does not take is still 405, with Allow.
    known = {
        "/fhir/Patient/$register": "POST",
        f"/fhir/Patient/{someone}/$everything": "GET, POST",
        "/fhir/$import": "POST",
    }
    for path, allowed in known.items():
        answer = api.request("DELETE", path)
        assert answer.status_code == 405, (path, answer.text)
        assert answer.headers["allow"] == allowed
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_if_match_star_writes_a_record_that_exists_and_is_412_where_none_does(
    api: FhirTestClient,
) -> None:
    """RFC 9110 13.1.1: ``If-Match: *`` is true where the target has a current
    representation and false where it has none. It was refused with 400 ("If-Match must
    be a version ETag") for every PUT, PATCH and DELETE, so a client saying "update
    only, never create" could not. Now it writes an existing record and answers 412
    where there is none (never created, or deleted), writing nothing."""
    star = {"If-Match": "*"}
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"
    put = api.put_json(path, {**made, "gender": "female"}, **star)
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == 'W/"2"'
    patched = api.patch(
        path, content=json.dumps({"gender": "male"}), headers={**MERGE_PATCH, **star}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["gender"] == "male"
    deleted = api.delete(path, headers=star)
    assert deleted.status_code == 204, deleted.text

    # Deleted, or never created: no current representation.
    for gone in (made["id"], "never-used"):
        answers = [
            api.put_json(f"/fhir/Patient/{gone}", {**made, "id": gone}, **star),
            api.patch(
                f"/fhir/Patient/{gone}",
                content=json.dumps({"gender": "other"}),
                headers={**MERGE_PATCH, **star},
            ),
            api.delete(f"/fhir/Patient/{gone}", headers=star),
        ]
        for answer in answers:
            assert answer.status_code == 412, (gone, answer.request.method, answer.text)
            assert answer.json()["issue"][0]["code"] == "conflict"
    assert api.get("/fhir/Patient/never-used").status_code == 404
    assert api.get(path).status_code == 410

    # A transaction entry's ifMatch is the header (docs/rest.md).
    other = create(api, patient())
    entries = [
        {
            "resource": {**other, "gender": "female"},
            "request": {"method": "PUT", "url": f"Patient/{other['id']}", "ifMatch": "*"},
        }
    ]
    written = api.post_json(
        "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert written.status_code == 200, written.text
    refused = api.post_json(
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"request": {"method": "DELETE", "url": "Patient/never-used", "ifMatch": "*"}}
            ],
        },
    )
    assert refused.status_code == 412, refused.text


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_if_match_star_on_a_hidden_record_answers_as_on_one_never_created(
    group: Group,
) -> None:
    """``*`` must not become an existence oracle: a pharmacist may write prescriptions
    but is told an HIV prescription does not exist (a read is 404). With ``If-Match: *``
    a PUT, a PATCH and a DELETE of it answer exactly what they answer for an id never
    used (412, in the same words), and it is left as it was; the pharmacist's own
    prescription is written."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    assert made.status_code == 201, made.text
    hidden = made.json()["id"]
    assert group.call(pharmacist, "GET", f"/fhir/MedicationRequest/{hidden}").status_code == 404
    star = {**pharmacist.headers, "If-Match": "*"}

    def answers(rid: str) -> list[tuple[int, Any]]:
        url = f"/fhir/MedicationRequest/{rid}"
        sent = [
            group.web.put(
                url,
                content=json.dumps(prescription(group, FLU, rid)),
                headers={**star, **FHIR_JSON},
            ),
            group.web.patch(
                url, content=json.dumps({"status": "stopped"}), headers={**star, **MERGE_PATCH}
            ),
            group.web.delete(url, headers=star),
        ]
        return [
            (answer.status_code, answer.text.replace(rid, "ID").replace('"', "'"))
            for answer in sent
        ]

    never = answers("no-such-prescription")
    assert [status for status, _ in never] == [412, 412, 412], never
    assert answers(hidden) == never
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["reasonCode"] == [HIV] and kept["meta"]["versionId"] == "1"

    own = group.call(pharmacist, "POST", "/fhir/MedicationRequest", prescription(group, FLU))
    assert own.status_code == 201, own.text
    updated = group.web.put(
        f"/fhir/MedicationRequest/{own.json()['id']}",
        content=json.dumps({**own.json(), "status": "on-hold"}),
        headers={**star, **FHIR_JSON},
    )
    assert updated.status_code == 200, updated.text


def test_everything_links_carry_the_requests_parameters_not_a_count_of_the_total(
    api: FhirTestClient,
) -> None:
    """R4 search.html: the self link names the parameters actually used. Without
    ``_count`` (not paged: every record on one page) ``$everything``'s self and first
    links said ``_count=<total>&_offset=0``, a page size the client never asked for and
    that changes as the chart grows (a client comparing links saw a new query). Now the
    self link is the request's own parameters; with ``_count``, the paging links as
    before."""
    someone = create(api, patient())["id"]
    for month in (1, 2, 3):
        create(api, observation(someone, f"2024-0{month}-15"))
    url = f"http://testserver/fhir/Patient/{someone}/$everything"

    whole = Bundle(api.get(f"/fhir/Patient/{someone}/$everything").json())
    assert [(link.relation, link.url) for link in whole.link] == [("self", url)]
    assert whole.total == len(whole.entry) == 4

    typed = Bundle(
        api.get(f"/fhir/Patient/{someone}/$everything?_type=Observation&start=2024-01-01").json()
    )
    assert [(link.relation, link.url) for link in typed.link] == [
        ("self", f"{url}?_type=Observation&start=2024-01-01")
    ]

    paged = Bundle(api.get(f"/fhir/Patient/{someone}/$everything?_count=2").json())
    links = {link.relation: link.url for link in paged.link}
    assert links["self"] == f"{url}?_count=2&_offset=0"
    # A cursor (stop 65): the page after the last record shown, not a position.
    assert links["next"].startswith(f"{url}?_count=2&_offset=")
    assert not links["next"].endswith("_offset=2")


def test_fhirpy_executes_everything_by_post_as_operations_are_invoked(
    api: FhirTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R4 operations.html: an operation is invoked by POST (a Parameters body), and GET
    "may" be used too where it changes nothing. fhirpy's ``resource.execute("$everything")``
    posts (its default method), with no body, and was answered 405 (``Allow: GET``), so
    the operation a chart app calls most failed. Now a POST is taken as the GET is: no
    body is no parameter, a Parameters body's parts are read as the query's, and a part
    the operation does not take (or in another type) is refused, never dropped."""
    someone = create(api, patient())["id"]
    for month in (1, 2, 3):
        create(api, observation(someone, f"2024-0{month}-15"))
    monkeypatch.setattr(requests.Session, "get_adapter", lambda _session, url: InProcess(api))
    client = SyncFHIRClient("http://testserver/fhir")
    bundle = client.resource("Patient", id=someone).execute("$everything")
    assert bundle["resourceType"] == "Bundle" and bundle["total"] == 4
    narrowed = client.resource("Patient", id=someone).execute(
        "$everything",
        data={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "_type", "valueCode": "Observation"},
                {"name": "start", "valueDate": "2024-02-01"},
                {"name": "_count", "valueInteger": 5},
            ],
        },
    )
    assert narrowed["total"] == 2
    assert {e["resource"]["resourceType"] for e in narrowed["entry"]} == {"Observation"}
    for part in (
        {"name": "patient", "valueString": "x"},
        {"name": "start", "valueBoolean": True},
    ):
        refused = api.post_json(
            f"/fhir/Patient/{someone}/$everything",
            {"resourceType": "Parameters", "parameter": [part]},
        )
        assert refused.status_code == 400, refused.text


def test_an_unknown_operation_in_a_batch_answers_as_it_does_alone(api: FhirTestClient) -> None:
    """docs/rest.md: "An entry of a batch ... answers as the same request sent on its
    own would". A GET entry of ``Patient/$nonsense`` answered 400 ("not a valid
    resource id") and a POST entry 400 ("POST goes to a type"), where alone they answer
    404 (``not-supported``). Now the entries answer 404 naming the operation; one this
    server defines is still refused in a Bundle (400: operations are sent alone)."""
    someone = create(api, patient())["id"]
    entries = [
        {"request": {"method": "GET", "url": "Patient/$nonsense"}},
        {"request": {"method": "GET", "url": f"Patient/{someone}/$nonsense?x=1"}},
        {
            "request": {"method": "POST", "url": "Patient/$nonsense"},
            "resource": {"resourceType": "Patient"},
        },
        {"request": {"method": "GET", "url": f"Patient/{someone}/$everything"}},
    ]
    answered = api.post_json("/fhir", {"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert answered.status_code == 200, answered.text
    responses = [entry["response"] for entry in Bundle(answered.json()).as_json()["entry"]]
    for response in responses[:3]:
        assert response["status"] == "404", response
        (issue,) = response["outcome"]["issue"]
        assert issue["code"] == "not-supported"
        assert "$nonsense" in issue["diagnostics"]
    assert responses[3]["status"] == "400"


def test_if_none_match_star_on_a_put_creates_and_never_overwrites(api: FhirTestClient) -> None:
    """RFC 9110 13.1.2: ``If-None-Match: *`` is false if a current representation
    exists, and 13.2.1: a server MUST evaluate the preconditions of a request it serves.
    A PUT [type]/[id] with it (a client creating a record under its own id, "only if
    it is not there yet") was served as if it were not sent: it overwrote the record a
    colleague had made. Now it answers 412 and writes nothing where a current version
    exists, and creates where none does (never used, or deleted); an ETag list answers
    412 only when it names the current version. A PATCH weighs it too."""
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"
    star = {"If-None-Match": "*"}
    refused = api.put_json(path, {**made, "gender": "female"}, **star)
    assert refused.status_code == 412, refused.text
    assert refused.json()["issue"][0]["code"] == "conflict"
    patched = api.patch(
        path, content=json.dumps({"gender": "female"}), headers={**MERGE_PATCH, **star}
    )
    assert patched.status_code == 412, patched.text
    assert api.get(path).json()["meta"]["versionId"] == "1"

    older = api.put_json(path, {**made, "gender": "female"}, **{"If-None-Match": 'W/"7"'})
    assert older.status_code == 200, older.text
    current = api.put_json(path, made, **{"If-None-Match": 'W/"9", W/"2"'})
    assert current.status_code == 412, current.text

    fresh = api.put_json("/fhir/Patient/mine-1", {**patient(), "id": "mine-1"}, **star)
    assert fresh.status_code == 201, fresh.text
    assert api.delete("/fhir/Patient/mine-1").status_code == 204
    again = api.put_json("/fhir/Patient/mine-1", {**patient(), "id": "mine-1"}, **star)
    assert again.status_code == 201, again.text


def test_if_none_match_star_on_a_hidden_record_answers_as_without_it(group: Group) -> None:
    """The precondition is weighed only once the write is allowed: a pharmacist's PUT
    of an HIV prescription withheld from them answers what it answers without the
    header, never the 412 that would say the record is there."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    hidden = made.json()["id"]
    url = f"/fhir/MedicationRequest/{hidden}"
    body = json.dumps(prescription(group, FLU, hidden))
    plain = group.web.put(url, content=body, headers={**pharmacist.headers, **FHIR_JSON})
    starred = group.web.put(
        url, content=body, headers={**pharmacist.headers, **FHIR_JSON, "If-None-Match": "*"}
    )
    assert starred.status_code == plain.status_code != 412, starred.text
    assert starred.json()["issue"] == plain.json()["issue"]
    kept = group.call(group.doctor_tm, "GET", url).json()
    assert kept["reasonCode"] == [HIV] and kept["meta"]["versionId"] == "1"


def test_a_search_posted_with_its_parameters_in_the_url_and_no_content_is_answered(
    api: FhirTestClient,
) -> None:
    """R4 http.html#search: ``POST [base]/[type]/_search{?[parameters]}``, the parameters
    in the URL, the body or both. httpx's ``client.post(url)`` sends no content and so
    no ``Content-Type`` (RFC 9110 8.3: it describes content), and was answered 415
    ("_search takes a form-encoded body"). Now a POST with no content searches by its
    URL's parameters; content of another type is still 415."""
    someone = create(api, patient())["id"]
    create(api, observation(someone, "2024-01-15"))
    create(api, observation(create(api, patient())["id"], "2024-01-16"))
    answered = api.post(f"/fhir/Observation/_search?patient={someone}")
    assert answered.status_code == 200, answered.text
    assert Bundle(answered.json()).total == 1
    typed = api.post(
        f"/fhir/Observation/_search?patient={someone}",
        content=b"",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert Bundle(typed.json()).total == 1
    untyped = api.post("/fhir/Observation/_search", content=f"patient={someone}".encode())
    assert untyped.status_code == 415, untyped.text


def test_a_history_asked_with_no_parameters_links_to_itself_without_a_bare_question_mark(
    api: FhirTestClient,
) -> None:
    """R4 bundle.html: the self link is the request the Bundle answers. An instance
    history asked with no parameters linked to ``.../_history?``, a URL the client never
    asked (a client matching a Bundle to its request by the self link saw another)."""
    made = create(api, patient())
    url = f"http://testserver/fhir/Patient/{made['id']}/_history"
    history = Bundle(api.get(f"/fhir/Patient/{made['id']}/_history").json())
    links = {link.relation: link.url for link in history.link}
    assert links["self"] == links["first"] == url


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_star_tells_a_stranger_what_a_version_tells_them(
    group: Group, method: str
) -> None:
    """A desk with no right on another clinic's patient is told the same with ``*`` as
    with any version: ``*`` is weighed only once the write is allowed."""
    path = f"/fhir/Patient/{group.tw_patient.id}"
    body = json.dumps(
        {"resourceType": "Patient", "id": group.tw_patient.id, "name": [{"family": "X"}]}
    )
    media = MERGE_PATCH if method == "PATCH" else FHIR_JSON
    answers = [
        group.web.request(
            method,
            path,
            content=None if method == "DELETE" else body,
            headers={**group.desk_tm.headers, **media, "if-match": tag},
        )
        for tag in ("*", 'W/"1"')
    ]
    assert answers[0].status_code == answers[1].status_code, [a.text for a in answers]
    assert answers[0].json()["issue"][0]["code"] == answers[1].json()["issue"][0]["code"]


def test_a_batch_delete_of_a_record_not_known_answers_as_the_delete_alone(group: Group) -> None:
    """docs/rest.md: a DELETE of a record not known deletes nothing and succeeds (R4
    http.html#delete: 204 "if the resource does not exist at all"), alone and in a
    transaction; an entry of a batch answers as the request alone. A batch entry
    answered 404, so a client replaying an export's deletions by batch saw failures.
    Now it is 204 No Content, alike for an id never used and a record withheld from the
    caller (which stays), and 412 with ``If-Match: *``, as alone."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    hidden = made.json()["id"]

    def batch(*entries: dict[str, Any]) -> list[dict[str, Any]]:
        answered = group.call(
            pharmacist,
            "POST",
            "/fhir",
            {"resourceType": "Bundle", "type": "batch", "entry": list(entries)},
        )
        assert answered.status_code == 200, answered.text
        return [entry["response"] for entry in answered.json()["entry"]]

    never, withheld = batch(
        {"request": {"method": "DELETE", "url": "MedicationRequest/no-such-prescription"}},
        {"request": {"method": "DELETE", "url": f"MedicationRequest/{hidden}"}},
    )
    assert never == withheld == {"status": "204 No Content"}
    starred = batch(
        *(
            {
                "request": {
                    "method": "DELETE",
                    "url": f"MedicationRequest/{rid}",
                    "ifMatch": "*",
                }
            }
            for rid in ("no-such-prescription", hidden)
        )
    )
    assert [response["status"] for response in starred] == ["412", "412"]
    words = [r["outcome"]["issue"][0]["diagnostics"] for r in starred]
    assert words[0].replace("no-such-prescription", "ID") == words[1].replace(hidden, "ID")
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["meta"]["versionId"] == "1"
