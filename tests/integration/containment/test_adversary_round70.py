"""Adversary round 70, the insider with the database, continued: a containment measure
whose row is deleted, or whose active row is edited, while no server that saw it on is
running, on SQLite and PostgreSQL.

Found (the review of round 69 read it; round 70 ran it): the officer took patient data
offline, then the insider deleted its row (or edited its mode or target, the row still
"active"); a process started after the edit, the CLI or a restarted server, read a table
with nothing of the measure left in it and served patient data again (a fresh store
said ``phi_offline: False``). Now each measure is written, when it starts and when an
officer releases it, to a register beside the keyring, outside the database
(``keys.measures``); a process that finds a measure there with no sealed release in the
database keeps it on as the register names it, and reports it once
(``containment:state:altered`` and a critical ``stored-data-altered`` alert)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, update

from carevault.bootstrap import Services, build_services
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.containment.tables import containment
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.ledgers import altered_alerts, entries_once_written

pytestmark = pytest.mark.postgres

ALTERED = "containment:state:altered"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _officer(group: Group) -> Officer:
    return Officer(group.officer.account.username, group.officer.totp())


def _offline(group: Group) -> int:
    """The officer takes patient data offline; the doctor is refused (503)."""
    started = group.services.contain.start(_officer(group), Mode.PHI_OFFLINE, None, "ransomware")
    assert _doctor_reads(group) == 503
    return started.containment_id


def _doctor_reads(group: Group) -> int:
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    status: int = group.call(group.doctor_tw, "GET", path).status_code
    return status


def test_a_measure_deleted_in_the_database_stays_on_in_a_server_started_after(
    group: Group, services: Services
) -> None:
    containment_id = _offline(group)
    with services.engine.begin() as connection:
        connection.execute(delete(containment))
    restarted = build_services(services.settings)
    try:
        assert restarted.containment.current().phi_offline
        (entry,) = entries_once_written(restarted, ALTERED)
        assert entry.detail == {
            "containment": containment_id,
            "mode": "phi-offline",
            "why": "deleted",
        }
        assert "ransomware" not in entry.canonical().decode()
        assert altered_alerts(restarted) == ["critical"]
    finally:
        restarted.close()


def test_an_active_measure_edited_in_the_database_stays_on_in_a_server_started_after(
    group: Group, services: Services
) -> None:
    """The rows are left "active", their columns changed: PHI-offline made a block of an
    address no one uses, Tuen Mun's lock moved to a clinic that does not exist."""
    offline = _offline(group)
    locked = services.contain.start(
        _officer(group), Mode.CLINIC_LOCK, TM, "someone at Tuen Mun"
    ).containment_id
    with services.engine.begin() as connection:
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == offline)
            .values(mode=Mode.BLOCK_ADDRESS.value, target="192.0.2.1/32")
        )
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == locked)
            .values(target="clinic-nowhere")
        )
    restarted = build_services(services.settings)
    try:
        state = restarted.containment.current()
        assert state.phi_offline
        assert TM in state.locked_clinics
        reported = {
            (entry.detail["containment"], entry.detail["why"])
            for entry in entries_once_written(restarted, ALTERED)
        }
        assert (offline, "altered") in reported
    finally:
        restarted.close()


def test_an_officers_release_of_a_deleted_measure_lifts_it_in_every_process(
    group: Group, services: Services
) -> None:
    """Guard: the officer releases the measure a fresh process holds on from the register;
    a process started after that serves again, and nothing more is reported."""
    containment_id = _offline(group)
    with services.engine.begin() as connection:
        connection.execute(delete(containment))
    restarted = build_services(services.settings)
    try:
        assert restarted.containment.current().phi_offline
        restarted.contain.release(_officer(group), containment_id, "restored from backup")
        assert not restarted.containment.refresh().phi_offline
    finally:
        restarted.close()
    time.sleep(services.containment.refresh_seconds + 0.1)
    assert _doctor_reads(group) == 200
    again = build_services(services.settings)
    try:
        assert not again.containment.current().phi_offline
        assert again.containment.get(containment_id).released_us is not None
    finally:
        again.close()
    assert len(entries_once_written(services, ALTERED)) == 1


def test_an_officers_release_lifts_it_in_a_server_started_after(
    group: Group, services: Services
) -> None:
    """Guard: a release by the officer, sealed and written to the register, lifts the
    measure in a process started after, with nothing reported."""
    containment_id = _offline(group)
    services.contain.release(_officer(group), containment_id, "contained")
    restarted = build_services(services.settings)
    try:
        assert not restarted.containment.current().phi_offline
        assert TW not in restarted.containment.current().locked_clinics
    finally:
        restarted.close()
    assert entries_once_written(services, ALTERED, seconds=0.5) == []


def test_a_measure_on_before_the_register_began_is_written_to_it_once(
    group: Group, services: Services
) -> None:
    """A home upgraded with a measure on: the first start writes it to the register (and
    notes so beside the keyring), so its row deleted after is kept on as well."""
    from carevault.keys.anchors import anchors_path
    from carevault.keys.measures import measures_path

    containment_id = _offline(group)
    keyring = services.settings.resolved_keyring_path
    measures_path(keyring).unlink()
    anchors = anchors_path(keyring)
    anchors.write_text(
        "".join(
            f"{line}\n" for line in anchors.read_text().split() if line != "containment-measures"
        )
    )
    upgraded = build_services(services.settings)
    upgraded.close()
    assert "containment-measures" in anchors.read_text().split()
    with services.engine.begin() as connection:
        connection.execute(delete(containment))
    restarted = build_services(services.settings)
    try:
        state = restarted.containment.current()
        assert [item.containment_id for item in state.active] == [containment_id]
    finally:
        restarted.close()
