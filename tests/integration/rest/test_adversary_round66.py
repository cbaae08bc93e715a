"""Adversary round 66, races and several server processes: Tuen Mun's front desk and
doctor (ordinary logins of one clinic) send their requests to whichever server process
takes them, while a privacy officer acts through another. Each process of ``carevault
serve --workers N`` is a ``Services`` of its own over one database, as here: the second
is built on the same home (its own caches, its own pools), as a worker process is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.web.app import create_app
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

#: How long a test waits for another process to see what changed: far past any bound a
#: process keeps a fact for (a second at most), far short of the hour a data key may
#: be kept in the tests that keep it that long.
PATIENCE_SECONDS = 30.0


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


@pytest.fixture
def other_process(settings: Settings) -> Iterator[FhirTestClient]:
    """A second server process over the same database: its own caches and pools."""
    other = build_services(settings)
    try:
        with FhirTestClient(create_app(settings, other)) as web:
            yield web
    finally:
        other.close()


def _status_until(web: FhirTestClient, headers: dict[str, str], path: str, wanted: int) -> int:
    """``GET path`` on ``web`` until it answers ``wanted`` or patience runs out: the last
    status."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        status = web.get(path, headers=headers).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.mark.settings(dek_cache_seconds=3600)
def test_an_erased_patient_is_not_read_through_another_process(
    group: Group, other_process: FhirTestClient
) -> None:
    """The doctor reads his patient's chart through one worker (which keeps the data key
    it unwrapped); the officer erases the patient through another (crypto-shredding: the
    data key is destroyed); the doctor reads the chart again on the first worker."""
    chart = f"/fhir/Observation/{group.tm_patient.observation}"
    doctor = group.doctor_tm.headers
    assert other_process.get(chart, headers=doctor).status_code == 200
    pseudonym = group.services.vault.patient_pseudonyms([group.tm_patient.id])
    keys = group.services.keys
    assert keys is not None
    group.services.contain.erase_patient(
        Officer(group.officer.account.username, group.officer.totp()),
        pseudonym[group.tm_patient.id],
        "erasure request 66",
        keys,
    )
    assert group.call(group.doctor_tm, "GET", chart).status_code == 410

    assert _status_until(other_process, doctor, chart, 410) == 410
