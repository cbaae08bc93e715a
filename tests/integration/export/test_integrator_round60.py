"""``$export`` and ``$import`` driven as a hospital's integration team drives them
(integrator round 60): the headers, parameters and discovery a Bulk Data client written
to the specs sends and reads (Bulk Data Access v2, https://hl7.org/fhir/uv/bulkdata/;
RFC 7240 for ``Prefer``). Each test failed on the code before its fix."""

from __future__ import annotations

import json

import pytest
from httpx import Response

from carevault.export.model import parse_instant
from carevault.ledger.events import Tag
from tests.integration.access.browser import basic, bearer
from tests.integration.export.conftest import MINE, Clinic
from tests.integration.export.test_export import ASYNC, approve_and_run, events

pytestmark = pytest.mark.postgres

BULK = "http://hl7.org/fhir/uv/bulkdata"


def _job_of(response: Response) -> str:
    assert response.status_code == 202, response.text
    location: str = response.headers["content-location"]
    return location.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    "prefer",
    [
        # RFC 7240 2: "A client MAY use multiple instances of the Prefer header field in a
        # single message ... equivalent to a single Prefer header field with the
        # comma-separated concatenation" (httpx sends a list of headers as lines).
        [("prefer", "handling=lenient"), ("prefer", "respond-async")],
        # "Comparison of preference token names is case-insensitive".
        [("prefer", "Respond-Async")],
        # A preference may carry parameters after ";" (preference *( ";" parameter )).
        [("prefer", "respond-async; wait=10")],
    ],
    ids=["two-header-lines", "token-case", "with-a-parameter"],
)
def test_prefer_respond_async_is_read_as_rfc_7240_writes_it(
    clinic: Clinic, prefer: list[tuple[str, str]]
) -> None:
    """The kick-off needs ``Prefer: respond-async`` (Bulk Data v2 kick-off headers); only
    the first header line was read, split on commas and compared case for case, so these
    three spellings of it were refused with 400 "needs the header Prefer: respond-async".
    The refusal without it stays (the spec lets a server refuse)."""
    token = clinic.client("exporter", "system/*.read")
    headers = [
        ("authorization", f"Bearer {token}"),
        ("accept", "application/fhir+json"),
        *prefer,
    ]
    kicked = clinic.web.get("/fhir/Patient/$export", headers=headers)
    job_id = _job_of(kicked)
    assert clinic.services.exports is not None
    assert clinic.services.exports.job(job_id).approvals_needed == 1


@pytest.mark.parametrize("prefer", ["handling=lenient", "return=minimal", "respond-asynchronously"])
def test_a_kick_off_without_respond_async_is_still_refused(clinic: Clinic, prefer: str) -> None:
    token = clinic.client("exporter", "system/*.read")
    refused = clinic.web.get(
        "/fhir/Patient/$export",
        headers={**bearer(token), "accept": "application/fhir+json", "prefer": prefer},
    )
    assert refused.status_code == 400
    assert "respond-async" in refused.json()["issue"][0]["diagnostics"]
    assert clinic.services.exports is not None
    assert clinic.services.exports.jobs.all() == []


def test_an_import_reads_prefer_as_the_export_does(clinic: Clinic) -> None:
    """``$import`` shares the asynchronous pattern, and had the same one-line reading."""
    _, secret = clinic.services.admin.add_client(
        "admin:test",
        "importer",
        "Importer",
        confidential=True,
        scopes="system/*.cruds",
        clinic_ids=[MINE],
    )
    assert secret
    token = clinic.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/*.cruds"},
        headers=basic("importer", secret),
    ).json()["access_token"]
    line = {
        "resourceType": "Patient",
        "id": "imported-1",
        "name": [{"family": "Imported"}],
        "managingOrganization": {"reference": f"Organization/{MINE}"},
    }
    kicked = clinic.web.post(
        "/fhir/$import",
        content=json.dumps(line) + "\n",
        headers=[
            ("authorization", f"Bearer {token}"),
            ("content-type", "application/fhir+ndjson"),
            ("prefer", "handling=lenient"),
            ("prefer", "respond-async"),
        ],
    )
    assert kicked.status_code == 202, kicked.text
    assert "/fhir/$import-status/" in kicked.headers["content-location"]


def test_since_with_an_offset_whose_plus_was_not_escaped_is_the_instant_meant(
    clinic: Clinic,
) -> None:
    """A client in Hong Kong asks ``_since=2026-01-01T08:00:00+08:00`` and builds the
    URL without escaping ``+`` as ``%2B`` (as the spec's own examples are written): the
    query string reads the ``+`` as a space, and the kick-off was refused "_since: not a
    FHIR instant". A space is never in an instant, and in that place it can only have
    been the offset's ``+``: read so, as ``_outputFormat``'s ``application/fhir
    ndjson`` already is (adversary round 48). An offset sent escaped means the same."""
    token = clinic.client("exporter", "system/*.read")
    kicked = clinic.web.get(
        "/fhir/Patient/$export?_since=2026-01-01T08:00:00+08:00", headers={**bearer(token), **ASYNC}
    )
    job_id = _job_of(kicked)
    assert clinic.services.exports is not None
    job = clinic.services.exports.job(job_id)
    assert job.since_us == parse_instant("2026-01-01T00:00:00Z")
    # Anything else with a space in it is still no instant.
    other = clinic.client("other", "system/*.read")
    for wrong in ("2026-01-01 08:00:00Z", "2026-01-01T08:00:00 8:00", "2026-01-01T08:00:00 "):
        refused = clinic.web.get(
            f"/fhir/Patient/$export?_since={wrong}", headers={**bearer(other), **ASYNC}
        )
        assert refused.status_code == 400, wrong


def test_the_capability_statement_declares_each_export_where_the_bulk_data_ig_puts_it(
    clinic: Clinic,
) -> None:
    """Inferno's Bulk Data test kit looks for the Group export on the ``Group`` resource
    ("Server CapabilityStatement did not declare support for export operation in Group
    resource") and warns without ``instantiates`` naming the IG's CapabilityStatement.
    The statement listed ``group-export`` among the system operations, a second operation
    named ``export`` beside the system one, and claimed no conformance."""
    statement = clinic.web.get("/fhir/metadata").json()
    assert f"{BULK}/CapabilityStatement/bulk-data" in statement.get("instantiates", [])
    rest = statement["rest"][0]
    system = [op["definition"] for op in rest["operation"] if op["name"] == "export"]
    assert system == [f"{BULK}/OperationDefinition/export"]
    resources = {entry["type"]: entry for entry in rest["resource"]}
    group = resources["Group"]
    assert [op["definition"] for op in group["operation"]] == [
        f"{BULK}/OperationDefinition/group-export"
    ]
    # A Group here is a clinic, exported only: never read or searched (they answer 404).
    assert "interaction" not in group and "searchParam" not in group
    token = clinic.client("exporter", "system/*.read")
    assert clinic.web.get(f"/fhir/Group/{MINE}", headers=bearer(token)).status_code == 404
    patient = [op["definition"] for op in resources["Patient"]["operation"]]
    assert f"{BULK}/OperationDefinition/patient-export" in patient


def _tokens(clinic: Clinic) -> tuple[str, str, str]:
    """One client registered for ``system/*.read``: a token granted all of it, one it
    asked for less (``system/Patient.read``), as a service asking per task does, and a
    later token granted all of it (another session, as after the first one expired)."""
    _, secret = clinic.services.admin.add_client(
        "admin:test",
        "exporter",
        "Exporter",
        confidential=True,
        scopes="system/*.read",
        clinic_ids=[MINE],
    )
    assert secret
    tokens = []
    for scope in ("system/*.read", "system/Patient.read", "system/*.read"):
        response = clinic.web.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            headers=basic("exporter", secret),
        )
        assert response.status_code == 200, response.text
        tokens.append(response.json()["access_token"])
    return tokens[0], tokens[1], tokens[2]


def test_status_and_files_need_a_token_granted_what_the_kick_off_needed(
    clinic: Clinic,
) -> None:
    """Bulk Data v2, Privacy and Security: "Bulk Data Status Request and Bulk Data Output
    File Requests with requiresAccessToken=true SHALL be protected the same way the Bulk
    Data Kick-off Request, including an access token with scopes that cover all
    resources being exported." The same client's token granted ``system/Patient.read``
    (never enough to ask for an export) read the manifest and downloaded the
    Observation file. It is now refused as the kick-off would be: 403, an
    OperationOutcome with RFC 6750's ``insufficient_scope`` challenge (a token granted
    more would help), in the ledger; nothing is served, and the job is untouched."""
    whole, narrow, later = _tokens(clinic)
    job_id = _job_of(clinic.web.get("/fhir/Patient/$export", headers={**bearer(whole), **ASYNC}))
    status_url = f"/fhir/$export-status/{job_id}"
    # The kick-off itself refuses the narrow token (as before).
    assert (
        clinic.web.get("/fhir/Patient/$export", headers={**bearer(narrow), **ASYNC}).status_code
        == 403
    )
    approve_and_run(clinic, job_id)
    manifest = clinic.web.get(status_url, headers=bearer(whole)).json()
    observations = next(item for item in manifest["output"] if item["type"] == "Observation")
    file_url = observations["url"].removeprefix("http://testserver")

    for url in (status_url, file_url):
        refused = clinic.web.get(url, headers=bearer(narrow))
        assert refused.status_code == 403, (url, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
        assert "system/*.read" in refused.json()["issue"][0]["diagnostics"]
        assert refused.headers["www-authenticate"] == (
            'Bearer realm="carevault", error="insufficient_scope"'
        )
    reasons = [event.reason for event in events(clinic, Tag.EXPORT_REFUSED, job_id)]
    assert len(reasons) == 2, reasons
    assert not events(clinic, Tag.EXPORT_DOWNLOADED, job_id)
    # A token granted all of it still reads both, a later one of the same client too;
    # the job was not stopped or spent.
    assert clinic.web.get(status_url, headers=bearer(whole)).status_code == 200
    fetched = clinic.web.get(file_url, headers=bearer(later))
    assert fetched.status_code == 200
    assert len(fetched.content.splitlines()) == observations["count"]
    # Cancelling releases nothing: the narrow token may still end its client's job.
    assert clinic.web.delete(status_url, headers=bearer(narrow)).status_code == 202


def test_a_kick_off_refused_for_its_tokens_scopes_says_so_as_every_scope_refusal_does(
    clinic: Clinic,
) -> None:
    """docs/smart-apps.md: a request the token's scopes do not allow is answered 403 with
    RFC 6750's ``insufficient_scope`` challenge (more scope would help), an access-policy
    403 with none (no token would). A backend service's ``$export`` kick-off on a
    ``system/Patient.read`` token, and its ``$import`` on a read-only one, got the 403
    without the challenge, so a client could not tell it should ask for more scope. A
    staff member's token is refused for who it is: no challenge, as before."""
    challenge = 'Bearer realm="carevault", error="insufficient_scope"'
    narrow = clinic.client("narrow-app", "system/Patient.read")
    refused = clinic.web.get("/fhir/Patient/$export", headers={**bearer(narrow), **ASYNC})
    assert refused.status_code == 403
    assert refused.headers.get("www-authenticate") == challenge
    reader = clinic.client("reader", "system/*.rs")
    line = json.dumps({"resourceType": "Patient", "name": [{"family": "Read"}]}) + "\n"
    refused = clinic.web.post(
        "/fhir/$import",
        content=line,
        headers={
            **bearer(reader),
            "prefer": "respond-async",
            "content-type": "application/fhir+ndjson",
        },
    )
    assert refused.status_code == 403
    assert refused.headers.get("www-authenticate") == challenge
    staff = clinic.officers[0]
    refused = clinic.web.get("/fhir/Patient/$export", headers={**staff.headers, **ASYNC})
    assert refused.status_code == 403
    assert "www-authenticate" not in refused.headers
