"""What a client of the FHIR API counts on, found by integrator round 59: the write
preconditions of RFC 9110 weighed as it defines them (``If-None-Match`` on DELETE and
conditional writes, ``If-Match`` with a list, ``If-Match`` on a DELETE of a record not
there) and never as an oracle of a withheld record; ``[type]/$validate`` (fhirpy's
``is_valid()``); ``_pretty`` on every read; ``patchFormat``; a conditional vread."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirpy import SyncFHIRClient

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from tests.integration.access.group import FLU, HIV, TM, Group, build_group, deleted_patient
from tests.integration.gate.test_write_oracles import prescription
from tests.integration.rest.test_integrator_round58 import MERGE_PATCH
from tests.integration.rest.test_interactions import create, observation, patient
from tests.support.client import FHIR_JSON, FhirTestClient
from tests.support.inprocess import InProcess
from tests.support.staff import make_staff


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_delete_with_if_none_match_naming_the_current_version_deletes_nothing(
    api: FhirTestClient,
) -> None:
    """RFC 9110 13.1.2: ``If-None-Match: *`` is false where a current representation
    exists, a list is false where it names the current version, and 13.2.1: a server
    MUST evaluate the preconditions of a request it serves (412 when false). A DELETE
    with either was served as if the header were not sent: the record was deleted.
    Now it answers 412 (``conflict``) and the record stays; a list naming only older
    versions deletes, and ``*`` on an id never used or deleted answers the 204 of a
    DELETE of a record not there."""
    someone = create(api, patient())["id"]
    made = create(api, observation(someone, "2024-01-15"))
    path = f"/fhir/Observation/{made['id']}"
    for tag in ("*", 'W/"3", W/"1"'):
        refused = api.delete(path, headers={"If-None-Match": tag})
        assert refused.status_code == 412, (tag, refused.text)
        (issue,) = refused.json()["issue"]
        assert issue["code"] == "conflict"
        assert api.get(path).json()["meta"]["versionId"] == "1"
    older = api.delete(path, headers={"If-None-Match": 'W/"7"'})
    assert older.status_code == 204, older.text
    assert older.headers["etag"] == 'W/"2"'
    assert api.get(path).status_code == 410
    for gone in (made["id"], "never-used"):
        answer = api.delete(f"/fhir/Observation/{gone}", headers={"If-None-Match": "*"})
        assert answer.status_code == 204, (gone, answer.text)
    bad = api.delete(f"/fhir/Patient/{someone}", headers={"If-None-Match": "3"})
    assert bad.status_code == 400, bad.text
    assert api.get(f"/fhir/Patient/{someone}").status_code == 200


def test_conditional_writes_weigh_if_none_match_on_the_record_they_match(
    api: FhirTestClient,
) -> None:
    """R4 http.html#cond-update: a conditional update, patch or delete acts on the one
    record its criteria match, and RFC 9110 13.2.1 has the server weigh the request's
    preconditions on it. ``PUT``, ``PATCH`` and ``DELETE Patient?identifier=...`` with
    ``If-None-Match: *`` ("only if there is none yet") updated, patched or deleted the
    match. Now each answers 412 and changes nothing; where nothing matches, the
    conditional update creates (201), as the precondition holds."""
    made = create(api, patient())
    criteria = f"/fhir/Patient?_id={made['id']}"
    star = {"If-None-Match": "*"}
    answers = [
        api.put(
            criteria,
            content=json.dumps({**made, "gender": "female"}),
            headers={"content-type": "application/fhir+json", **star},
        ),
        api.patch(
            criteria, content=json.dumps({"gender": "female"}), headers={**MERGE_PATCH, **star}
        ),
        api.delete(criteria, headers=star),
    ]
    for answer in answers:
        assert answer.status_code == 412, (answer.request.method, answer.text)
        assert answer.json()["issue"][0]["code"] == "conflict"
    kept = api.get(f"/fhir/Patient/{made['id']}").json()
    assert kept["meta"]["versionId"] == "1" and kept["gender"] == "male"

    fresh = patient("Lam", "Siu Ming", "C123456(9)")
    created = api.put(
        "/fhir/Patient?identifier=http://carevault.hk/sid/hkid|C123456(9)",
        content=json.dumps(fresh),
        headers={"content-type": "application/fhir+json", **star},
    )
    assert created.status_code == 201, created.text


def test_if_none_match_on_a_delete_of_a_hidden_record_answers_as_on_one_never_created(
    group: Group,
) -> None:
    """The precondition is weighed only once the delete is allowed: a pharmacist's
    DELETE of an HIV prescription withheld from them, with ``If-None-Match: *``, answers
    the 204 of an id never used (no ``ETag``), never the 412 that would say the record
    is there, and the record stays."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    hidden = made.json()["id"]
    headers = {**pharmacist.headers, "If-None-Match": "*"}
    answers = [
        group.web.delete(f"/fhir/MedicationRequest/{rid}", headers=headers)
        for rid in ("no-such-prescription", hidden)
    ]
    assert [answer.status_code for answer in answers] == [204, 204]
    assert answers[0].headers.get("etag") is answers[1].headers.get("etag") is None
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["meta"]["versionId"] == "1"


def test_fhirpy_is_valid_asks_validate_and_is_answered(
    api: FhirTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fhirpy's ``resource.is_valid()`` posts the resource to ``[type]/$validate`` (R4
    resource-operation-validate) and reads the OperationOutcome's issues from a 2xx
    answer. The server defined no ``$validate`` (404), so ``is_valid()`` raised instead
    of saying whether a form was fit to save. Now the resource is checked as a create
    checks it, and the issues are returned with 200: an ``information`` issue when it
    is valid, each error (by path, never the value) when not; nothing is stored."""
    monkeypatch.setattr(requests.Session, "get_adapter", lambda _session, url: InProcess(api))
    client = SyncFHIRClient("http://testserver/fhir")
    assert client.resource("Patient", **patient()).is_valid() is True
    wrong = {**patient(hkid="Z999999(9)"), "gender": "unknown-ish"}
    assert client.resource("Patient", **wrong).is_valid() is False

    answered = api.post_json("/fhir/Patient/$validate", wrong)
    assert answered.status_code == 200, answered.text
    issues = answered.json()["issue"]
    assert {issue["severity"] for issue in issues} == {"error"}
    assert "Z999999" not in answered.text and "unknown-ish" not in answered.text
    wrapped = api.post_json(
        "/fhir/Observation/$validate",
        {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient()}]},
    )
    assert wrapped.status_code == 200, wrapped.text
    assert wrapped.json()["issue"][0]["severity"] == "error"  # a Patient is no Observation
    assert Bundle(api.get("/fhir/Patient?_summary=count").json()).total == 0

    statement = api.get("/fhir/metadata").json()
    for entry in statement["rest"][0]["resource"]:
        # AuditEvent: the ledger's, searched only; Group: no interaction, its entry says
        # only where group-export is (integrator round 60).
        if entry["type"] != "AuditEvent" and entry.get("interaction"):
            names = {operation["name"] for operation in entry["operation"]}
            assert "validate" in names, entry["type"]


def test_validate_refuses_what_it_cannot_honour_and_answers_no_one_unsigned(
    api: FhirTestClient, group: Group
) -> None:
    """R4 resource-operation-validate: a ``mode`` asks whether that write would succeed
    and a server that cannot validate against a nominated ``profile`` SHALL return an
    error. Neither is answered as if valid: 400 (``not-supported``); a part the
    operation does not take is 400. A caller with no token is answered 401, as any
    request of the FHIR API."""

    def sent(*extra: dict[str, Any]) -> Any:
        body = {
            "resourceType": "Parameters",
            "parameter": [{"name": "resource", "resource": patient()}, *extra],
        }
        return api.post_json("/fhir/Patient/$validate", body)

    core = "http://hl7.org/fhir/StructureDefinition/Patient"
    assert sent({"name": "profile", "valueUri": core}).status_code == 200
    for part, code in (
        ({"name": "mode", "valueCode": "create"}, "not-supported"),
        ({"name": "profile", "valueCanonical": "http://example.org/Strict"}, "not-supported"),
        ({"name": "other", "valueString": "x"}, "invalid"),
    ):
        refused = sent(part)
        assert refused.status_code == 400, (part, refused.text)
        assert refused.json()["issue"][0]["code"] == code
    anonymous = group.web.post(
        "/fhir/Patient/$validate", content=json.dumps(patient()), headers=FHIR_JSON
    )
    assert anonymous.status_code == 401, anonymous.text


def test_if_match_with_several_etags_writes_when_one_names_the_current_version(
    api: FhirTestClient,
) -> None:
    """RFC 9110 13.1.1: ``If-Match`` is ``*`` or a list of entity tags, true if any of
    them matches the current one. A list (a client holding two versions, either of which
    it merged from) was refused with 400 ("If-Match must be a version ETag") on PUT,
    PATCH, DELETE and a transaction entry's ``ifMatch``. Now it writes where one names
    the current version and answers 412 (nothing written) where none does; ``*`` inside
    a list, or anything not an ETag, is still 400."""
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"
    put = api.put_json(path, {**made, "gender": "female"}, **{"If-Match": 'W/"3", W/"1"'})
    assert put.status_code == 200, put.text
    assert put.headers["etag"] == 'W/"2"'
    stale = {"If-Match": 'W/"1", W/"3"'}
    refused = [
        api.put_json(path, {**made, "gender": "other"}, **stale),
        api.patch(path, content=json.dumps({"gender": "other"}), headers={**MERGE_PATCH, **stale}),
        api.delete(path, headers=stale),
    ]
    for answer in refused:
        assert answer.status_code == 412, (answer.request.method, answer.text)
        assert answer.json()["issue"][0]["code"] == "conflict"
    assert api.get(path).json()["meta"]["versionId"] == "2"
    patched = api.patch(
        path,
        content=json.dumps({"gender": "male"}),
        headers={**MERGE_PATCH, "If-Match": 'W/"1",W/"2"'},
    )
    assert patched.status_code == 200, patched.text
    entry = {
        "resource": {**made, "gender": "female"},
        "request": {"method": "PUT", "url": f"Patient/{made['id']}", "ifMatch": 'W/"2", W/"3"'},
    }
    written = api.post_json(
        "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
    )
    assert written.status_code == 200, written.text
    assert api.get(path).json()["meta"]["versionId"] == "4"
    for malformed in ('W/"4", *', 'W/"4", 4', 'W/"4",'):
        bad = api.delete(path, headers={"If-Match": malformed})
        assert bad.status_code == 400, (malformed, bad.text)
    deleted = api.delete(path, headers={"If-Match": 'W/"9", W/"4"'})
    assert deleted.status_code == 204, deleted.text


def test_an_etag_list_on_a_hidden_record_answers_as_on_one_never_created(group: Group) -> None:
    """A list is weighed only once the write is allowed, as one version is: a
    pharmacist's PUT and DELETE of an HIV prescription withheld from them, with
    ``If-Match: W/"1", W/"2"``, answer word for word what they answer for an id never
    used, and the record stays."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    hidden = made.json()["id"]
    tags = {**pharmacist.headers, "If-Match": 'W/"1", W/"2"'}

    def answers(rid: str) -> list[tuple[int, str]]:
        url = f"/fhir/MedicationRequest/{rid}"
        sent = [
            group.web.put(
                url,
                content=json.dumps(prescription(group, FLU, rid)),
                headers={**tags, **FHIR_JSON},
            ),
            group.web.delete(url, headers=tags),
        ]
        return [(answer.status_code, answer.text.replace(rid, "ID")) for answer in sent]

    never = answers("no-such-prescription")
    assert [status for status, _ in never] == [412, 412], never
    assert answers(hidden) == never
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["meta"]["versionId"] == "1"


def test_pretty_and_format_are_taken_by_history_everything_and_the_audit_search(
    api: FhirTestClient, group: Group
) -> None:
    """R4 http.html, "General parameters": ``_format`` and ``_pretty`` may be sent with
    every interaction (a browser, Postman or HAPI's tester adds ``_pretty=true``). A read
    and a search took them, but a history at every level and ``$everything`` answered
    400 ("does not support '_pretty'"), and the AuditEvent search 400 for ``_format``
    and ``_pretty`` alike. Now they are taken, as they lay an answer out and never
    choose what it holds; ``_summary`` on a history, which would, is still refused."""
    someone = create(api, patient())["id"]
    create(api, observation(someone, "2024-01-15"))
    paths = [
        f"/fhir/Patient/{someone}/_history",
        "/fhir/Observation/_history",
        "/fhir/_history",
        f"/fhir/Patient/{someone}/$everything",
    ]
    for path in paths:
        plain = Bundle(api.get(path).json())
        for extra in ("_pretty=true", "_format=json&_pretty=false"):
            answered = api.get(f"{path}?{extra}")
            assert answered.status_code == 200, (path, extra, answered.text)
            shown = Bundle(answered.json())
            assert [e.fullUrl for e in shown.entry] == [e.fullUrl for e in plain.entry]
    assert api.get(f"{paths[0]}?_summary=true").status_code == 400
    for extra in ("_pretty=true", "_format=json"):
        audit = group.web.get(f"/fhir/AuditEvent?_count=5&{extra}", headers=group.officer.headers)
        assert audit.status_code == 200, (extra, audit.text)
        assert audit.json()["resourceType"] == "Bundle"


def test_the_capability_statement_names_the_patch_formats_a_patch_takes(
    api: FhirTestClient,
) -> None:
    """R4 capabilitystatement.html: ``patchFormat`` lists "the patch formats supported by
    this implementation using their content types". Every type listed ``patch`` and took
    JSON Patch and JSON Merge Patch, but the statement named no format, so a client
    choosing how to patch had to guess (and FHIRPath Patch is 415). Now it names both,
    and each is taken."""
    statement = CapabilityStatement(api.get("/fhir/metadata").json())
    assert statement.patchFormat == [
        "application/json-patch+json",
        "application/merge-patch+json",
    ]
    made = create(api, patient())
    path = f"/fhir/Patient/{made['id']}"
    bodies = {
        "application/json-patch+json": [{"op": "replace", "path": "/gender", "value": "female"}],
        "application/merge-patch+json": {"gender": "male"},
    }
    for media in statement.patchFormat:
        patched = api.patch(
            path, content=json.dumps(bodies[media]), headers={"content-type": media}
        )
        assert patched.status_code == 200, (media, patched.text)


def test_a_delete_with_if_match_of_a_record_not_there_is_412_alike_for_every_such_record(
    group: Group, api: FhirTestClient
) -> None:
    """RFC 9110 13.2.1: a server weighs the preconditions of a request it would answer
    2xx without them, and 13.1.1: an ETag cannot match where there is no current
    representation. A DELETE of a record not there answers 204 (it deletes nothing), so
    with ``If-Match: W/"1"`` it must fail (412), as a PUT with it does. It answered 404
    for an id never used, a record withheld from the caller and another clinic's
    deleted patient, and 412 for the caller's own deleted record. Now each is 412 in
    the same words (no oracle of which it was), alone, as a batch entry and in a
    transaction, which writes nothing."""
    pharmacist = make_staff(group.services, Role.PHARMACIST, [TM])
    made = group.call(group.doctor_tm, "POST", "/fhir/MedicationRequest", prescription(group, HIV))
    hidden = made.json()["id"]
    own = group.call(pharmacist, "POST", "/fhir/MedicationRequest", prescription(group, FLU))
    mine = own.json()["id"]
    assert group.call(pharmacist, "DELETE", f"/fhir/MedicationRequest/{mine}").status_code == 204
    tag = {**pharmacist.headers, "If-Match": 'W/"1"'}

    def words(rid: str) -> tuple[int, str]:
        answer = group.web.delete(f"/fhir/MedicationRequest/{rid}", headers=tag)
        return answer.status_code, answer.text.replace(rid, "ID")

    never = words("no-such-prescription")
    assert never[0] == 412, never
    assert words(hidden) == words(mine) == never
    gone = deleted_patient(group, api)
    stranger = group.web.delete(
        f"/fhir/Patient/{gone}", headers={**group.desk_tm.headers, "If-Match": 'W/"1"'}
    )
    assert stranger.status_code == 412, stranger.text

    entries = [
        {"request": {"method": "DELETE", "url": f"MedicationRequest/{rid}", "ifMatch": 'W/"1"'}}
        for rid in ("no-such-prescription", hidden)
    ]
    batch = group.call(
        pharmacist, "POST", "/fhir", {"resourceType": "Bundle", "type": "batch", "entry": entries}
    )
    assert [e["response"]["status"] for e in batch.json()["entry"]] == ["412", "412"]
    other = group.call(pharmacist, "POST", "/fhir/MedicationRequest", prescription(group, FLU))
    transaction = group.call(
        pharmacist,
        "POST",
        "/fhir",
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                entries[1],
                {"request": {"method": "DELETE", "url": f"MedicationRequest/{other.json()['id']}"}},
            ],
        },
    )
    assert transaction.status_code == 412, transaction.text
    assert (
        group.call(pharmacist, "GET", f"/fhir/MedicationRequest/{other.json()['id']}").status_code
        == 200
    )
    kept = group.call(group.doctor_tm, "GET", f"/fhir/MedicationRequest/{hidden}").json()
    assert kept["meta"]["versionId"] == "1"


def test_a_vread_answers_304_when_the_client_holds_that_version(api: FhirTestClient) -> None:
    """RFC 9110 13.1.2 and 13.2.1: a server weighs ``If-None-Match`` on a GET it serves,
    and answers 304 where it names the ETag of what would be sent. A vread answers
    ``ETag: W/"n"`` and its version never changes, yet ``If-None-Match: W/"1"`` on
    ``_history/1`` sent the whole version again (200), as a batch GET entry of it did.
    Now both answer 304 with the ETag and no body, and the read is still made (and
    recorded); another tag still answers 200."""
    made = create(api, patient())
    api.put_json(f"/fhir/Patient/{made['id']}", {**made, "gender": "female"})
    path = f"/fhir/Patient/{made['id']}/_history/1"
    held = api.get(path, headers={"If-None-Match": 'W/"1"'})
    assert held.status_code == 304, held.text
    assert held.headers["etag"] == 'W/"1"' and held.content == b""
    assert "content-location" in held.headers
    assert api.get(path, headers={"If-None-Match": 'W/"2"'}).status_code == 200
    entry = {
        "request": {"method": "GET", "url": path.removeprefix("/fhir/"), "ifNoneMatch": 'W/"1"'}
    }
    batch = api.post_json("/fhir", {"resourceType": "Bundle", "type": "batch", "entry": [entry]})
    assert batch.json()["entry"][0]["response"] == {"status": "304 Not Modified", "etag": 'W/"1"'}
