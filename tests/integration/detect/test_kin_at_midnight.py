"""A co-worker's record opened just before midnight (adv4, finding 2). A pick of kin
waits for its grace (a booking made just after the look-up may explain it) and is then
judged against its own day's counts, even when the account's next entry, after
midnight, has moved it on to the next day: before, ``snoop.snooping`` dropped it.

The reads are ledger entries as the gate writes them (the services' clock cannot be
moved to a chosen hour: tokens are checked against the wall clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from carevault.clock import to_micros
from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Outcome, Tag
from tests.integration.detect.conftest import Clinic, raising_clinic
from tests.integration.detect.test_snooping import _create, _hkid, _patient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import make_staff


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    bodies = (_patient(f"Lee{n}", [f"Flat {n % 8}, {n}/F", f"{n} Nathan Road"]) for n in range(5))
    with raising_clinic(backend, tmp_path, request, bodies, detect_kin_grace_seconds=0) as opened:
        yield opened


def _read(clinic: Clinic, username: str, pseudonym: str, at: datetime) -> None:
    clinic.services.audit.record(
        [
            AuditEvent(
                tag=Tag.FHIR_READ,
                outcome=Outcome.SUCCESS,
                at_us=to_micros(at),
                principal=f"staff:{username}",
                role="front_desk",
                clinic_ids=("clinic-a",),
                resource_type="Patient",
                patient_pseudonym=pseudonym,
                categories=("identity",),
                purpose="TREAT",
            )
        ]
    )


@pytest.mark.parametrize("then_reads_after_midnight", [False, True], ids=["alone", "then-more"])
def test_a_co_workers_record_opened_at_23_55_raises_an_alert(
    clinic: Clinic, then_reads_after_midnight: bool
) -> None:
    detection = clinic.services.detection
    assert detection is not None
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))
    coworker = patient_pseudonym(
        clinic.services, _create(clinic, _patient("Ho", ["9 Kings Road"], _hkid(2)))
    )
    other = patient_pseudonym(clinic.services, clinic.patients[0])
    desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    assert alerts_as_dicts(clinic.services) == []
    zone = ZoneInfo(clinic.services.settings.timezone)
    today = clinic.clock().astimezone(zone).date()
    late = datetime.combine(today - timedelta(days=1), time(23, 55), zone)
    _read(clinic, desk.account.username, coworker, late)
    if then_reads_after_midnight:
        _read(clinic, desk.account.username, other, late + timedelta(minutes=10))
    mine = [a for a in alerts_as_dicts(clinic.services) if a["account"] == desk.account.username]
    # The co-worker's record opened at 23:55 is judged, whatever follows.
    (alert,) = [a for a in mine if a["detector"] == "co-worker"]
    assert alert["patient_count"] == 1
