"""An export's files fetched from another network than the one the export was asked for
from (``export-download``; adversary round 78 left it open: the downloads were in the
scope and the access reports but raised nothing).

The files wait, written and approved, until the client fetches them; whoever holds its
secret by then fetches them from wherever they are. A fetch from another network (/24,
/64) raises a high alert on the client, whose default response revokes it: the rest of
the files are not served. Fetched from where the export was asked, nothing is raised
(SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from carevault.detect import alerts_as_dicts
from tests.integration.access.browser import bearer
from tests.integration.export.conftest import MINE, Clinic
from tests.integration.export.test_adversary_round78 import fetch_all
from tests.integration.export.test_deleted import export

pytestmark = pytest.mark.postgres


def _path(item: dict[str, Any]) -> str:
    return str(item["url"].split("testserver", 1)[1])


def _downloads(clinic: Clinic) -> list[dict[str, Any]]:
    return [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "export-download"]


def test_a_file_fetched_from_another_network_raises_an_alert_and_revokes_the_client(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    job_id, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")
    first, second = manifest["output"][:2]
    thief = TestClient(clinic.web.app, client=("203.0.113.7", 40_000))

    fetched = thief.get(_path(first), headers=bearer(token))

    assert fetched.status_code == 200, fetched.text
    [alert] = _downloads(clinic)
    assert alert["severity"] == "high"
    assert alert["client"] == "exporter"
    assert job_id in alert["explanation"]
    assert "203.0.113.0/24" in alert["explanation"]
    assert alert["action"] == "suspend"
    refused = thief.get(_path(second), headers=bearer(token))
    assert refused.status_code == 401, refused.text


def test_guard_files_fetched_from_where_the_export_was_asked_raise_nothing(
    clinic: Clinic,
) -> None:
    token = clinic.client("exporter", "system/*.read")
    _, manifest = export(clinic, token, f"/fhir/Group/{MINE}/$export")

    fetch_all(clinic, token, manifest["output"])

    assert _downloads(clinic) == []
