"""Adversary round 73 (detection evasion): a doctor of clinic A whose reads are explained
by the desk's bookings, so that the release budget is all that bounds them.

- The day's budget counted the calendar day: 20 patients before midnight and 20 after,
  40 in four hours of one sliding day, no refusal and no alert. It is the last 24 hours.
- A count-only ``$everything`` or instance history of a patient (``_count=0``) past a
  spent budget was answered (how many records, whether a booking fell on a date, how
  many versions), in an entry naming the patient, charged nothing. It is charged as a
  read of the patient is, so refused past the budget as the same question asked by
  search (``Appointment?patient=X&_summary=count``) was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from carevault.detect.budget import ReleaseRefused
from carevault.detect.tables import detect_release
from carevault.domain.roles import Role
from carevault.fhir.registry import RESOURCE_TYPES
from tests.integration.detect.conftest import (
    Clinic,
    clinic_patients,
    clinic_settings,
    opened_clinic,
)
from tests.support.staff import Staff, caller_of, make_staff

pytestmark = pytest.mark.postgres

#: A fixed-offset zone where it is 19:xx as the test begins, so that 21:00 and 00:10 are
#: hours ahead, within the 12 hours a session lasts (Etc/GMT+N is N hours behind UTC).
_N = (datetime.now(ZoneInfo("UTC")).hour - 19) % 24
ZONE_NAME = f"Etc/GMT+{_N}" if _N <= 12 else f"Etc/GMT-{24 - _N}"
ZONE = ZoneInfo(ZONE_NAME)
HOUR, DAY = 10, 20


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    settings = clinic_settings(
        backend, tmp_path, request, release_budget=f"physician={HOUR}/{DAY}", timezone=ZONE_NAME
    )
    with opened_clinic(settings, clinic_patients(44, "Lee", "Siu Ming")) as opened:
        yield opened


def _explained_doctor(clinic: Clinic) -> Staff:
    """The desk books every patient for today (fulfilled): care that explains the reads
    of the clinic's doctor, whom the detectors of unexplained reads then never count."""
    start = datetime.now(ZONE).replace(hour=10, minute=0, second=0, microsecond=0)
    clinic.book_everyone(start, "fulfilled")
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-x")
    clinic.services.access._clinics = None
    return doctor


def _to_local(clinic: Clinic, hour: int, minute: int = 0) -> None:
    """Move the services' clock forward to the next ``hour``:``minute`` of the zone."""
    now = clinic.clock().astimezone(ZONE)
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    clinic.clock.advance((target - now).total_seconds())


def _charged(clinic: Clinic) -> int:
    with clinic.services.engine.connect() as connection:
        distinct = func.count(func.distinct(detect_release.c.pseudonym))
        return int(connection.execute(select(distinct)).scalar_one())


def test_the_days_budget_is_the_last_24_hours_not_the_calendar_day(clinic: Clinic) -> None:
    doctor = _explained_doctor(clinic)
    patients = iter(clinic.patients)
    for hour, minute in [(21, 0), (22, 5)]:
        _to_local(clinic, hour, minute)
        assert [clinic.read(doctor, next(patients)) for _ in range(HOUR)] == [200] * HOUR
    _to_local(clinic, 0, 10)
    refused = clinic.web.get(f"/fhir/Patient/{next(patients)}", headers=doctor.headers)
    assert refused.status_code == 429, refused.text
    assert "20 in the last 24 hours" in refused.text
    # A patient already given costs nothing more, across midnight too.
    assert clinic.read(doctor, clinic.patients[0]) == 200
    assert _charged(clinic) == DAY

    # 24 hours after the first ten, they leave the day's count, but the patient given
    # again at 00:10: nine more, and no more. (Through the gate: a token is checked
    # against the real clock, not the moved one.)
    caller = caller_of(clinic.services, doctor)
    _to_local(clinic, 21, 1)
    gate, patient_type = clinic.services.gate, RESOURCE_TYPES["Patient"]
    for _ in range(HOUR - 1):
        gate.read(caller, patient_type, next(patients))
    with pytest.raises(ReleaseRefused, match="9 in the last hour and 20 in the last 24 hours"):
        gate.read(caller, patient_type, next(patients))


def test_count_only_answers_of_a_patient_are_charged_as_reads(clinic: Clinic) -> None:
    doctor = _explained_doctor(clinic)
    for patient in clinic.patients[:HOUR]:
        assert clinic.read(doctor, patient) == 200
    today = datetime.now(ZONE).date().isoformat()
    probes = [
        "/fhir/Patient/{p}/$everything?_count=0",
        "/fhir/Patient/{p}/$everything?_type=Appointment&_count=0",
        f"/fhir/Patient/{{p}}/$everything?_type=Appointment&start={today}&end={today}&_count=0",
        "/fhir/Patient/{p}/_history?_count=0",
    ]
    for patient, probe in zip(clinic.patients[HOUR:], probes, strict=False):
        answer = clinic.web.get(probe.format(p=patient), headers=doctor.headers)
        assert answer.status_code == 429, (probe, answer.text)
        assert "total" not in answer.text
    assert _charged(clinic) == HOUR

    # Within the budget (another doctor, no one given yet), the same answers are given,
    # and charged.
    other = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-y")
    clinic.services.access._clinics = None
    for patient, probe in zip(clinic.patients[HOUR:], probes, strict=False):
        answer = clinic.web.get(probe.format(p=patient), headers=other.headers)
        assert answer.status_code == 200, (probe, answer.text)
    assert _charged(clinic) == HOUR + len(probes)


def test_a_patient_given_again_today_has_one_row(clinic: Clinic) -> None:
    """Yesterday's row of a patient given again today moves to today: the day's count is
    of rows, and a patient is counted once however often they are given."""
    doctor = _explained_doctor(clinic)
    _to_local(clinic, 23, 0)
    for patient in clinic.patients[:5]:
        assert clinic.read(doctor, patient) == 200
    _to_local(clinic, 0, 30)
    for patient in clinic.patients[:3]:
        assert clinic.read(doctor, patient) == 200
    with clinic.services.engine.connect() as connection:
        rows = connection.execute(
            select(detect_release.c.day, func.count()).group_by(detect_release.c.day)
        ).all()
    assert sorted(count for _, count in rows) == [2, 3]
    assert _charged(clinic) == 5
