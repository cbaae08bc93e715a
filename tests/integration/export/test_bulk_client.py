"""``$export`` followed as a Bulk Data client follows it (Bulk Data Access v2,
https://hl7.org/fhir/uv/bulkdata/export.html): the kick-off's ``Content-Location`` taken
as it is, polled while 202 (``Retry-After``, ``X-Progress``), the manifest read as
JSON, each file fetched with the token the manifest says it needs, and the next export
asked ``_since`` the manifest's ``transactionTime``, as clients keep in step."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from fhirclient.models.fhirinstant import FHIRInstant

from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.writer import Delete
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, SYSTEM, Clinic, observation, patient, put
from tests.integration.export.test_export import ASYNC, officer

pytestmark = pytest.mark.postgres


def _path(url: str) -> str:
    """An absolute URL of the server's as the test client asks for it."""
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _export(
    clinic: Clinic, token: str, query: str, approver: int = 0
) -> tuple[dict[str, Any], str, str]:
    """One export from kick-off to manifest: the manifest, the kick-off's URL and the
    status URL. ``approver``: which officer approves (each has three fresh TOTP codes a
    30 s step; a test of many exports takes turns, not waits)."""
    asked = f"/fhir/Patient/$export?{query}"
    kicked = clinic.web.get(asked, headers={**bearer(token), **ASYNC})
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["content-location"]
    pending = clinic.web.get(_path(status_url), headers=bearer(token))
    assert pending.status_code == 202
    assert int(pending.headers["retry-after"]) > 0
    assert pending.headers["x-progress"]
    assert clinic.services.exports is not None
    clinic.services.exports.approve(
        officer(clinic.officers[approver]), status_url.rsplit("/", 1)[1]
    )
    clinic.work()
    done = clinic.web.get(_path(status_url), headers=bearer(token))
    assert done.status_code == 200, done.text
    assert done.headers["content-type"].split(";")[0] == "application/json"
    manifest: dict[str, Any] = done.json()
    return manifest, f"http://testserver{asked}", _path(status_url)


def test_a_bulk_client_follows_an_export_and_asks_the_next_since_its_transaction_time(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    manifest, asked, _ = _export(clinic, token, "_type=Patient,Observation")
    # "request: the full URL of the original Bulk Data kick-off request".
    assert manifest["request"] == asked
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    since = manifest["transactionTime"]
    FHIRInstant(since)  # a FHIR instant, as the spec requires
    counts: dict[str, int] = {}
    for item in manifest["output"]:
        url = _path(item["url"])
        # requiresAccessToken: without the token the file is refused, with it served.
        assert clinic.web.get(url).status_code == 401
        fetched = clinic.web.get(url, headers=bearer(token))
        assert fetched.status_code == 200
        assert fetched.headers["content-type"].startswith("application/fhir+ndjson")
        assert len(fetched.content.splitlines()) == item["count"]
        counts[item["type"]] = counts.get(item["type"], 0) + item["count"]
    assert counts == {"Patient": len(clinic.mine), "Observation": 2 * len(clinic.mine)}

    # A write after it, then the next export _since its transactionTime: that write is in
    # it, and the records not written since are not.
    put(clinic.services, observation("o-pa0-3", clinic.mine[0], "63.00"))
    follow_up, _, status_url = _export(clinic, token, f"_type=Observation&_since={quote(since)}")
    assert [(item["type"], item["count"]) for item in follow_up["output"]] == [("Observation", 1)]
    later = FHIRInstant(follow_up["transactionTime"]).datetime
    assert later > FHIRInstant(since).datetime

    # Cancelling is a DELETE of the status URL: 202, then the job is gone.
    assert clinic.web.delete(status_url, headers=bearer(token)).status_code == 202
    assert clinic.web.get(status_url, headers=bearer(token)).status_code == 404


def test_an_export_since_a_deletion_lists_it_in_deleted(clinic: Clinic) -> None:
    """Bulk Data v2: "When a _since timestamp is supplied in the export request, this
    array [deleted] SHALL be populated with output files containing FHIR Transaction
    Bundles that indicate which FHIR resources would have been returned, but have been
    deleted subsequent to that date" (each entry's request.method DELETE, request.url
    [type]/[id]). A client keeping a copy in step by exports _since the last
    transactionTime otherwise never drops a deleted record."""
    token = clinic.client("exporter", "system/*.read")
    manifest, _, _ = _export(clinic, token, "_type=Observation")
    gone = f"o-{clinic.mine[0]}-1"
    clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Observation"], gone)])
    since = quote(manifest["transactionTime"])
    follow_up, _, _ = _export(clinic, token, f"_type=Observation&_since={since}")
    lines = []
    for item in follow_up["deleted"]:
        fetched = clinic.web.get(_path(item["url"]), headers=bearer(token))
        assert fetched.status_code == 200
        lines.extend(json.loads(line) for line in fetched.content.splitlines())
    requests = [
        entry["request"]
        for bundle in lines
        if bundle["type"] == "transaction"
        for entry in bundle["entry"]
    ]
    assert requests == [{"method": "DELETE", "url": f"Observation/{gone}"}]


def _replay(clinic: Clinic, token: str, manifest: dict[str, Any], copy: dict[str, str]) -> None:
    """What a client keeping a copy does with one export: each output resource written
    over its copy (by type and id, keeping its version), then each ``deleted`` Bundle's
    DELETE entries applied (Bulk Data v2: the deleted files are transaction Bundles)."""
    for item in manifest["output"]:
        fetched = clinic.web.get(_path(item["url"]), headers=bearer(token))
        assert fetched.status_code == 200, fetched.text
        for line in fetched.content.splitlines():
            resource = json.loads(line)
            copy[f"{resource['resourceType']}/{resource['id']}"] = resource["meta"]["versionId"]
    for item in manifest["deleted"]:
        assert item["type"] == "Bundle"
        fetched = clinic.web.get(_path(item["url"]), headers=bearer(token))
        assert fetched.status_code == 200, fetched.text
        bundles = [json.loads(line) for line in fetched.content.splitlines()]
        assert len(bundles) == item["count"]
        for bundle in bundles:
            assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
            for entry in bundle["entry"]:
                assert entry["request"]["method"] == "DELETE"
                copy.pop(entry["request"]["url"], None)


def test_a_client_replaying_each_export_since_the_last_keeps_exactly_the_live_set(
    clinic: Clinic,
) -> None:
    """An incremental sync loop as a Bulk Data client runs it: a full export, then each
    export ``_since`` the last ``transactionTime``, its output applied and then its
    deletions. After creates, updates, deletes, a record created and deleted between two
    exports, one deleted and written again, and a patient deleted with their chart, the
    copy is the server's live set (what a full export gives), version for version."""
    token = clinic.client("exporter", "system/*.read")
    copy: dict[str, str] = {}
    manifest, _, _ = _export(clinic, token, "", 0)
    _replay(clinic, token, manifest, copy)

    mine = clinic.mine
    changed = {**observation(f"o-{mine[1]}-2", mine[1], "70.00")}
    put(
        clinic.services,
        observation(f"o-{mine[1]}-3", mine[1], "64.00"),
        changed,
        patient("pa9", MINE, "Newfamily"),
        observation("o-pa9-1", "pa9", "55.00"),
        observation(f"o-{mine[2]}-9", mine[2], "50.00"),
    )
    observations = RESOURCE_TYPES["Observation"]
    clinic.services.gate.write(
        SYSTEM,
        [
            Delete(observations, f"o-{mine[1]}-1"),
            Delete(observations, f"o-{mine[2]}-9"),
            Delete(observations, f"o-{mine[3]}-1"),
        ],
    )
    put(clinic.services, observation(f"o-{mine[3]}-1", mine[3], "99.00"))  # written again
    for step in range(2):
        since = quote(manifest["transactionTime"])
        manifest, _, _ = _export(clinic, token, f"_since={since}", 1)
        _replay(clinic, token, manifest, copy)
        live: dict[str, str] = {}
        everything, _, _ = _export(clinic, token, "", step % 2)
        _replay(clinic, token, everything, live)
        assert copy == live, step
        # Then a patient and their chart deleted, for the next round.
        clinic.services.gate.write(
            SYSTEM,
            [Delete(observations, f"o-{mine[4]}-{n}") for n in (1, 2)],
        )
        clinic.services.gate.write(SYSTEM, [Delete(RESOURCE_TYPES["Patient"], mine[4])])
