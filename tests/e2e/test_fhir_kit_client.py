"""A clinic app written in JavaScript on fhir-kit-client, a FHIR client from npm that we
did not write, driving ``carevault serve`` (integrator round 62): the script
(``tests/e2e/js/clinic_app.mjs``) records what the library returned at each step, and
this test decides whether that is what FHIR R4 has a server answer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carevault.config import Settings
from tests.support.auth import colleagues, token_for
from tests.support.server import RunningServer, environment, run_cli

# What a client (or a browser) sees of the HTTP API: run on PostgreSQL, as production is; the
# storage under it is tested on both backends by the integration tests.
pytestmark = [pytest.mark.e2e, pytest.mark.only_backend("postgres")]

SCRIPTS = Path(__file__).parent / "js"
#: Valid HKID numbers (check digits right), one per patient made by the script.
HKIDS = ["A123456(3)", "C668668(9)", "K654321(9)"]


def run_script(name: str, given: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript client cannot run")
    if not (SCRIPTS / "node_modules" / "fhir-kit-client").is_dir():
        pytest.fail("tests/e2e/js/node_modules is missing: run scripts/setup --test (npm ci)")
    finished = subprocess.run(
        [node, str(SCRIPTS / name)],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=SCRIPTS,
    )
    assert finished.returncode == 0, finished.stderr
    steps: dict[str, Any] = json.loads(finished.stdout)
    return steps


def backend_service(settings: Settings, clinic: str) -> dict[str, str]:
    """A confidential client of ``clinic`` that may be granted system/*.cruds."""
    added = run_cli(
        environment(settings.home, settings.database_url),
        *("client", "add", "js-feed", "--name", "Clinic feed", "--scope", "system/*.cruds"),
        *("--confidential", "--clinic", clinic),
    )
    assert added.returncode == 0, added.stderr
    return {"id": "js-feed", "secret": added.stdout.rsplit(": ", 1)[1].strip()}


def test_a_clinic_app_works_through_fhir_kit_client(
    live_server: RunningServer, settings: Settings
) -> None:
    (desk, doctor), clinic = colleagues(settings.home, "front_desk", "physician")
    steps = run_script(
        "clinic_app.mjs",
        {
            "fhir": live_server.fhir,
            "deskToken": token_for(live_server.url, desk),
            "doctorToken": token_for(live_server.url, doctor),
            "hkids": HKIDS,
            "backend": backend_service(settings, clinic),
        },
    )
    failed = {name: step for name, step in steps.items() if not step["ok"]}
    # What the clinic app meant to be refused, and nothing else.
    assert set(failed) == {
        "patchStale",
        "compartmentSearch",
        "systemSearch",
        "systemPostSearch",
        "unsigned",
        "invalid",
        "unknownParameter",
        "readDeleted",
    }, failed
    fhir = live_server.fhir
    assert steps["smartAuthMetadata"]["body"]["tokenUrl"] == f"{live_server.url}/auth/token"

    # Each write answers what the library hands back: the record, its ETag and Location.
    created = steps["create"]
    patient_id = created["body"]["id"]
    assert created["status"] == 201 and created["headers"]["etag"] == 'W/"1"'
    assert created["headers"]["location"] == f"{fhir}/Patient/{patient_id}/_history/1"
    assert steps["read"]["headers"]["etag"] == 'W/"1"'
    assert steps["update"]["body"]["meta"]["versionId"] == "2"
    assert steps["vread"]["body"]["birthDate"] == "1984-05-06"
    assert steps["patch"]["body"]["birthDate"] == "1984-05-08"
    assert steps["patch"]["headers"]["etag"] == 'W/"3"'
    stale = failed["patchStale"]
    assert stale["status"] == 412 and stale["body"]["resourceType"] == "OperationOutcome"
    assert [e["resource"]["meta"]["versionId"] for e in steps["history"]["body"]["entry"]] == [
        "3",
        "2",
        "1",
    ]

    # Conditional create finds the first patient; conditional update and delete reach it.
    first = steps["conditionalCreate"]
    assert first["status"] == 201
    again = steps["conditionalCreateAgain"]
    assert again["status"] == 200 and again["body"]["id"] == first["body"]["id"]
    assert steps["conditionalUpdate"]["body"]["id"] == first["body"]["id"]
    assert steps["conditionalUpdate"]["body"]["birthDate"] == "1990-01-02"
    assert steps["conditionalDelete"]["status"] == 204

    # nextPage and prevPage follow the server's links: twelve patients in pages of five,
    # forward to the end and back to the first.
    paging = steps["paging"]
    assert [len(page) for page in paging["forward"]] == [5, 5, 2]
    assert len({found for page in paging["forward"] for found in page}) == 12
    assert paging["backward"] == paging["forward"][1::-1]
    assert "next" in paging["relations"][0] and "previous" in paging["relations"][1]
    assert steps["postSearch"]["body"]["total"] == 12

    everything = steps["everything"]["body"]
    assert {"Patient", "Encounter"} <= {e["resource"]["resourceType"] for e in everything["entry"]}
    assert steps["resolve"]["body"]["id"] == patient_id
    made, matched = steps["transaction"]["body"]["entry"]
    assert made["response"]["status"] == "201 Created"
    # The conditional update entry found the patient created first, by its HKID.
    assert matched["response"]["status"] == "200 OK"
    assert matched["response"]["location"].startswith(f"Patient/{patient_id}/_history/")
    (read,) = steps["batch"]["body"]["entry"]
    assert read["response"]["status"] == "200 OK" and read["resource"]["id"] == patient_id
    assert steps["validate"]["body"]["resourceType"] == "OperationOutcome"
    assert steps["typeHistory"]["body"]["type"] == "history"
    assert steps["systemHistory"]["body"]["type"] == "history"

    # Refusals are OperationOutcomes the library hands over, naming what is wrong and
    # never the value sent.
    for name in failed:
        assert failed[name]["body"]["resourceType"] == "OperationOutcome", name
    assert failed["unsigned"]["status"] == 401
    (issue,) = failed["invalid"]["body"]["issue"]
    assert "birthDate" in issue["diagnostics"] and "Tai Man" not in issue["diagnostics"]
    assert "colour" in failed["unknownParameter"]["body"]["issue"][0]["diagnostics"]
    assert failed["readDeleted"]["status"] == 410
    assert steps["deleteEncounter"]["status"] == steps["delete"]["status"] == 204

    # Not offered here, and said so (the CapabilityStatement lists neither; integrator
    # round 62): a compartment search is "not supported", never "not found"; a search
    # across all types is too, by GET (the base's 405, Allow: POST) or by POST to
    # [base]/_search (404, where a 415 asked for FHIR JSON).
    compartment = failed["compartmentSearch"]
    assert compartment["status"] == 404
    (issue,) = compartment["body"]["issue"]
    assert issue["code"] == "not-supported" and "compartment search" in issue["diagnostics"]
    assert failed["systemSearch"]["status"] == 405
    assert failed["systemPostSearch"]["status"] == 404
    for name in ("systemSearch", "systemPostSearch"):
        (issue,) = failed[name]["body"]["issue"]
        assert issue["code"] == "not-supported", name
        assert "no search across all types" in issue["diagnostics"], name

    tool = steps["capabilityTool"]
    assert tool["transaction"] and tool["batch"] and tool["historySystem"]
    assert not tool["searchSystem"] and tool["patientFamily"]
    assert {"read", "vread", "update", "patch", "delete", "create", "search-type"} <= set(
        tool["patientInteractions"]
    )

    # A SMART backend service: the token endpoint found through the library, a token for
    # the client's secret, a patient created and read.
    backend = steps["backendService"]["body"]
    assert backend["scope"] == "system/*.cruds"
    assert backend["readId"] == backend["id"] and backend["family"] == "Feed"
