"""Adversary round 69, the insider with the database: someone who may write to the
database but holds no key lifts a containment mode behind the officer's back, on SQLite
and PostgreSQL.

Found: the state every process obeys was the ``containment`` table as it stood. The
officer took patient data offline (503 for Tsuen Wan's doctor); an ``UPDATE containment
SET released_us = ...`` (or a ``DELETE``) had the doctor read again within half a second
(200), with nothing in the ledger and no alert. Now each row is sealed (an HMAC under a
key derived from the index key: ``ContainmentStore``, records_0032): a mode a process saw
on that ends with no sealed release, or is deleted, is kept on; at start, every mode
whose release is not sealed is kept on; each is a ``containment:state:altered`` entry and
a critical alert (``stored-data-altered``). An officer's release still lifts it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, update

from carevault.bootstrap import Services, build_services
from carevault.containment.service import Officer
from carevault.containment.state import Mode
from carevault.containment.tables import containment
from tests.integration.access.group import TM, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.ledgers import altered_alerts, entries_once_written

pytestmark = pytest.mark.postgres

ALTERED = "containment:state:altered"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _offline(group: Group) -> int:
    """The officer takes patient data offline; the doctor is refused (503)."""
    officer = Officer(group.officer.account.username, group.officer.totp())
    started = group.services.contain.start(officer, Mode.PHI_OFFLINE, None, "ransomware")
    assert _doctor_reads(group) == 503
    return started.containment_id


def _doctor_reads(group: Group) -> int:
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    status: int = group.call(group.doctor_tw, "GET", path).status_code
    return status


def _after_a_refresh(group: Group) -> int:
    """What the doctor gets once every process has read the table again."""
    time.sleep(group.services.containment.refresh_seconds + 0.1)
    return _doctor_reads(group)


def _no_seal() -> dict[str, None]:
    """The seal taken away (a table without one, before records_0032: nothing to take)."""
    return {"seal": None} if "seal" in containment.c else {}


def test_phi_offline_released_in_the_database_stays_on(group: Group, services: Services) -> None:
    containment_id = _offline(group)
    with services.engine.begin() as connection:
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == containment_id)
            .values(released_us=services.now_us(), released_by=group.officer.login.username)
        )
    assert _after_a_refresh(group) == 503
    assert services.containment.current().phi_offline
    (entry,) = entries_once_written(services, ALTERED)
    assert entry.detail["containment"] == containment_id
    assert entry.detail["why"] == "released without a sealed release"
    assert "ransomware" not in entry.canonical().decode()  # the officer's words
    assert altered_alerts(services) == ["critical"]


def test_phi_offline_deleted_in_the_database_stays_on(group: Group, services: Services) -> None:
    containment_id = _offline(group)
    with services.engine.begin() as connection:
        connection.execute(delete(containment))
    assert _after_a_refresh(group) == 503
    (entry,) = entries_once_written(services, ALTERED)
    assert entry.detail == {"containment": containment_id, "mode": "phi-offline", "why": "deleted"}
    # The officer's release still lifts it, and writes the row back, released.
    officer = Officer(group.officer.account.username, group.officer.totp())
    services.contain.release(officer, containment_id, "restored from backup")
    assert _after_a_refresh(group) == 200
    assert services.containment.get(containment_id).released_us is not None


def test_a_server_started_after_the_release_keeps_it_on(group: Group, services: Services) -> None:
    """Released in the database while every server was down: the next to start holds it
    on, whether the seal was left as it was or taken away."""
    first = _offline(group)
    officer = Officer(group.officer.account.username, group.officer.totp())
    suspended = services.contain.start(
        officer, Mode.CLINIC_LOCK, TM, "someone at Tuen Mun"
    ).containment_id
    with services.engine.begin() as connection:
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == first)
            .values(released_us=services.now_us(), released_by="staff:someone")
        )
        connection.execute(
            update(containment)
            .where(containment.c.containment_id == suspended)
            .values(released_us=services.now_us(), released_by="staff:someone", **_no_seal())
        )
    restarted = build_services(services.settings)
    try:
        state = restarted.containment.current()
        assert state.phi_offline and state.locked_clinics == {TM}
    finally:
        restarted.close()


def test_an_officers_release_lifts_it_and_nothing_is_reported(
    group: Group, services: Services
) -> None:
    """Guard: the officer's own release (here, and as another process reads it)."""
    containment_id = _offline(group)
    other = build_services(services.settings)
    try:
        assert other.containment.current().phi_offline
        officer = Officer(group.officer.account.username, group.officer.totp())
        services.contain.release(officer, containment_id, "contained")
        assert _after_a_refresh(group) == 200
        assert not other.containment.refresh().phi_offline
    finally:
        other.close()
    restarted = build_services(services.settings)
    try:
        assert not restarted.containment.current().phi_offline
    finally:
        restarted.close()
    assert [
        data for _, data in services.audit_ledger.store.entries() if ALTERED.encode() in data
    ] == []
    assert altered_alerts(services) == []


def test_every_seal_taken_away_while_the_servers_are_down_keeps_it_on(
    group: Group, services: Services
) -> None:
    """The insider strips the seal of every row, so that none is younger than a sealed
    one, and releases PHI-offline: the note beside the keyring says every row was
    sealed, so the next server to start holds it on."""
    _offline(group)
    with services.engine.begin() as connection:
        connection.execute(
            update(containment).values(
                released_us=services.now_us(), released_by="staff:someone", **_no_seal()
            )
        )
    restarted = build_services(services.settings)
    try:
        assert restarted.containment.current().phi_offline
    finally:
        restarted.close()
