"""A registration or a care relationship inserted in the database by someone without the
key places or opens nothing (adversary round 70). Until stop 57 that was all: the log
said "... does not match its seal" on every read that looked at it, and nothing reached
the ledger or an officer. Now each is told once a process, as an altered grant,
session, account or client app is: an ``access:registration:altered`` or
``access:care:altered`` entry naming it (the patient's pseudonym, as the ledger names
patients, and the clinic it claims: who was aimed at, and from where) and a critical
``stored-data-altered`` alert. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from carevault.access.registrations import registration_name
from carevault.bootstrap import Services
from tests.integration.access.group import TM, Group, build_group
from tests.integration.access.test_adversary_round70 import (
    _open_to_tm,
    _past_the_caches,
    _register_at_tm,
    _tw_pseudonym,
)
from tests.support.client import FhirTestClient
from tests.support.ledgers import altered_alerts, entries_once_written

pytestmark = pytest.mark.postgres

ALTERED = "access:registration:altered"
CARE_ALTERED = "access:care:altered"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def test_a_registration_inserted_in_the_database_is_told_once_and_raised(
    group: Group, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    pseudonym = _tw_pseudonym(group)
    path = f"/fhir/Patient/{group.tw_patient.id}"
    _register_at_tm(services, pseudonym)
    with caplog.at_level(logging.ERROR, logger="carevault.access"):
        for _ in range(3):
            _past_the_caches(services)
            assert group.call(group.desk_tm, "GET", path).status_code == 403
    (entry,) = entries_once_written(services, ALTERED)
    named = registration_name(pseudonym, TM)
    assert entry.detail == {"registration": named}
    assert entry.principal == "system:access"
    # Told once a process, however often it is read: the log too.
    told = [record for record in caplog.records if "registration" in record.getMessage()]
    assert len(told) == 1, [record.getMessage() for record in told]
    assert altered_alerts(services) == ["critical"]
    # The patient's own clinic reads them as before.
    assert group.call(group.desk_tw, "GET", path).status_code == 200


def test_a_care_relationship_inserted_in_the_database_is_told_once_and_raised(
    group: Group, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    pseudonym = _tw_pseudonym(group)
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    _open_to_tm(services, pseudonym)
    with caplog.at_level(logging.ERROR, logger="carevault.access"):
        for _ in range(3):
            _past_the_caches(services)
            assert group.call(group.doctor_tm, "GET", path).status_code == 403
    (entry,) = entries_once_written(services, CARE_ALTERED)
    assert entry.detail == {"relationship": f"{pseudonym}@{TM}/0"}
    told = [record for record in caplog.records if "care relationship" in record.getMessage()]
    assert len(told) == 1, [record.getMessage() for record in told]
    assert altered_alerts(services) == ["critical"]
