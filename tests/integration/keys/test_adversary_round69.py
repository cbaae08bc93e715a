"""Adversary round 69, the insider with the database: someone who may write to the key
store's database but holds no keyring undoes an erasure, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from carevault.bootstrap import Services
from carevault.containment.service import Officer
from carevault.keys.tables import data_key
from carevault.vault.tables import resource_head
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient
from tests.support.ledgers import altered_alerts

pytestmark = pytest.mark.postgres


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _doctor_reads(group: Group) -> int:
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    status: int = group.call(group.doctor_tw, "GET", path).status_code
    return status


def test_an_erasure_is_not_undone_by_putting_the_wrapped_key_back(
    group: Group, services: Services
) -> None:
    """The insider keeps a copy of the key store's row from before an erasure (a backup,
    a restore job) and writes it back after. Found: the KEK had not been rotated since
    (no erasure rotates it), so the key unwrapped again and the erased patient's
    observation was served to Tsuen Wan's doctor (410, then 200). Now the erasure is
    written first in a register beside the keyring (``keys.shreds``), which the database
    does not hold: the key is refused (500 ``security``, no patient named), the refusal
    recorded and alerted, and a KEK rotation stops rather than re-wrap it."""
    with services.engine.connect() as connection:
        pseudonym = connection.execute(
            select(resource_head.c.patient_pseudonym).where(
                resource_head.c.resource_id == group.tw_patient.id
            )
        ).scalar_one()
    with services.key_engine.connect() as connection:
        kept = connection.execute(
            select(data_key.c.wrapped, data_key.c.kek_version).where(data_key.c.key_id == pseudonym)
        ).one()
    officer = Officer(group.officer.account.username, group.officer.totp())
    assert services.keys is not None
    services.contain.erase_patient(officer, pseudonym, "asked in person", services.keys)
    assert _doctor_reads(group) == 410
    with services.key_engine.begin() as connection:
        connection.execute(
            update(data_key)
            .where(data_key.c.key_id == pseudonym)
            .values(wrapped=kept.wrapped, kek_version=kept.kek_version, shredded_us=None)
        )
    services.keys.forget_cached()
    path = f"/fhir/Observation/{group.tw_patient.observation}"
    read = group.call(group.doctor_tw, "GET", path)
    assert read.status_code == 500, "the erased patient's record was served again"
    issue = read.json()["issue"][0]
    assert issue["code"] == "security" and "erasure" in issue["diagnostics"]
    assert pseudonym not in read.text and "HbA1c" not in read.text
    assert altered_alerts(services) == ["critical"]
    # A KEK rotation now would re-wrap it as if never shredded: it stops instead.
    from carevault.keys.service import ShredUndone  # here: the code before has none

    services.keys.provider.create_version()  # type: ignore[attr-defined]
    with pytest.raises(ShredUndone):
        while services.keys.rewrap_batch(10_000):
            pass
