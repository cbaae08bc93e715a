"""``carevault reindex`` run as an operator runs it, on a data directory whose clear
dates were never written (as by a version before records_0011): afterwards the range
answers, and the ledger holds the run."""

from __future__ import annotations

import getpass

from sqlalchemy import delete

from carevault.bootstrap import Services
from carevault.ledger.events import Tag
from carevault.vault.tables import search_date
from tests.integration.access.audit_log import events
from tests.support.client import FhirTestClient
from tests.support.server import environment, run_cli


def test_reindex_fills_the_clear_dates_of_rows_written_before(
    services: Services, api: FhirTestClient
) -> None:
    place = api.post_json("/fhir/Location", {"resourceType": "Location", "name": "Room 1"}).json()
    schedule = api.post_json(
        "/fhir/Schedule",
        {"resourceType": "Schedule", "actor": [{"reference": f"Location/{place['id']}"}]},
    ).json()
    for day in (1, 2, 3):
        slot = {
            "resourceType": "Slot",
            "schedule": {"reference": f"Schedule/{schedule['id']}"},
            "status": "free",
            "start": f"2026-12-0{day}T09:00:00+08:00",
            "end": f"2026-12-0{day}T09:30:00+08:00",
        }
        assert api.post_json("/fhir/Slot", slot).status_code == 201
    with services.vault.engine.begin() as connection:
        connection.execute(delete(search_date))
    assert api.get("/fhir/Slot?start=ge2026-12-02").json()["total"] == 0
    settings = services.settings
    done = run_cli(environment(settings.home, settings.database_url), "reindex", "--batch", "2")
    assert done.returncode == 0, done.stderr
    assert "reindexed 5 records" in done.stdout
    assert api.get("/fhir/Slot?start=ge2026-12-02").json()["total"] == 2
    [run] = events(services.audit_ledger.store, Tag.ADMIN_INDEX_REBUILT)
    assert run.principal == f"cli:{getpass.getuser()}" and run.reason == "5 records"
