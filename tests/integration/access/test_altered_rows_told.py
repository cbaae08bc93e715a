"""A registration or a care relationship inserted in the database by someone without the
key places or opens nothing (adversary round 70). Until stop 57 that was all: the log
said "... does not match its seal" on every read that looked at it, and nothing reached
the ledger or an officer. Now each is told once a process, as an altered grant,
session, account or client app is: an ``access:registration:altered`` or
``access:care:altered`` entry naming it (a digest of the row and the clinic it claims:
never the patient's pseudonym, which the alert's mail and webhook must not carry and
which the insider chose) and a critical ``stored-data-altered`` alert. On SQLite and
PostgreSQL."""

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
    assert named.endswith(f"@{TM}") and pseudonym not in named
    assert entry.detail == {"registration": named}
    assert entry.principal == "system:access" and entry.patient_pseudonym is None
    # Told once a process, however often it is read: the log too.
    told = [record for record in caplog.records if "registration" in record.getMessage()]
    assert len(told) == 1, [record.getMessage() for record in told]
    assert altered_alerts(services) == ["critical"]
    _no_pseudonym_told(services, caplog, pseudonym)
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
    (named,) = entry.detail.values()
    assert list(entry.detail) == ["relationship"] and named.endswith(f"@{TM}")
    told = [record for record in caplog.records if "care relationship" in record.getMessage()]
    assert len(told) == 1, [record.getMessage() for record in told]
    assert altered_alerts(services) == ["critical"]
    _no_pseudonym_told(services, caplog, pseudonym)


def _no_pseudonym_told(
    services: Services, caplog: pytest.LogCaptureFixture, pseudonym: str
) -> None:
    """Neither the log nor any alert (what mail and webhooks carry) names the patient."""
    assert not [record for record in caplog.records if pseudonym in record.getMessage()]
    detection = services.detection
    assert detection is not None
    for alert in detection.alerts.list():
        assert pseudonym not in alert.explanation
