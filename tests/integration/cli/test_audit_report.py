"""``carevault audit report --patient``: a patient's access report printed on the server
host is a release of the patient, as the API's and the console's are (the second review
of stop 61: it printed who opened the records and what they touched, and the ledger held
no entry of it, so an incident on whoever ran it listed no one). SQLite and PostgreSQL."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from carevault.bootstrap import Services
from carevault.incidents.query import RELEASE_TAGS
from carevault.ledger.events import Tag
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_report_printed_on_the_host_is_recorded_as_a_release(group: Group) -> None:
    patient = group.tm_patient.id
    read = group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}")
    assert read.status_code == 200, read.text
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)

    printed = invoke_cli(env, "audit", "report", "--patient", f"Patient/{patient}")

    assert printed.returncode == 0, printed.stderr
    report = json.loads(printed.stdout)
    assert report["patient"] == f"Patient/{patient}"
    touched = {category for line in report["accesses"] for category in line["categories"]}
    assert touched
    [entry] = [event for event in group.events(Tag.AUDIT_READ) if event.resource_id == patient]
    assert entry.principal == f"cli:{getpass.getuser()}"
    assert entry.patient_pseudonym
    assert set(entry.categories) == touched
    assert Tag.AUDIT_READ.value in RELEASE_TAGS


def test_a_report_of_no_patient_is_refused_and_releases_no_one(group: Group) -> None:
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)

    refused = invoke_cli(env, "audit", "report", "--patient", "Patient/nobody")

    assert refused.returncode == 1
    assert "no patient nobody" in refused.stderr
    assert not [e for e in group.events(Tag.AUDIT_READ) if e.patient_pseudonym]


def test_no_report_is_printed_when_its_reading_cannot_be_recorded(group: Group) -> None:
    """Fail closed: an audit ledger that takes no entry gets no report printed, and one
    line saying why (exit 3: try again later), not a traceback."""
    patient = group.tm_patient.id
    assert group.call(group.doctor_tm, "GET", f"/fhir/Patient/{patient}").status_code == 200
    settings = group.services.settings
    env = environment(settings.home, settings.database_url)
    engine = group.services.engine
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_entries BEFORE INSERT ON audit_entry "
                    "BEGIN SELECT RAISE(FAIL, 'refused'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_entries() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_entries BEFORE INSERT ON audit_entry "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_entries()"
                )
            )

    refused = invoke_cli(env, "audit", "report", "--patient", f"Patient/{patient}")

    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert "audit ledger cannot be written" in refused.stderr
    assert "Traceback" not in refused.stderr
