"""Adversary round 59, detection evasion: a doctor of clinic B breaks the glass for five
of clinic A's patients an hour, every hour, and reads each. Every read under a grant is
explained by it (so neither ``breadth`` nor ``vip`` nor the snooping signals see them),
and ``break-glass-volume`` counted an hour only: five an hour stayed within its limit for
ever, 120 patients a day with no alert (measured: 25 in five hours, none raised). A day
now allows four hours' worth; a morning covering a colleague's clinic stays quiet.

And a stolen account of clinic B tries ids taken from clinic A (a dump of the database,
whose resource ids are in the clear): the gate refuses each, and a refused attempt at a
decoy patient raised no ``honeytoken``, only ``denials`` past 20 in ten minutes; nor
did a decoy's HKID, from a leaked list, tested with ``If-None-Exist`` (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carevault.detect import alerts_as_dicts
from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from tests.integration.detect.conftest import Clinic, clinic_patients, raising_clinic
from tests.integration.detect.test_break_glass_volume import _break_glass
from tests.integration.detect.test_snooping import _hkid
from tests.integration.detect.test_snooping import _patient as held_patient
from tests.support.client import FHIR_JSON
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import Staff, make_staff

pytestmark = pytest.mark.postgres

#: Five an hour: as many as ``break-glass-volume`` allows an hour (the default).
PER_HOUR = 5
HOURS = 5


@pytest.fixture
def clinic(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    patients = clinic_patients(PER_HOUR * HOURS, "Star", "Famous")
    with raising_clinic(backend, tmp_path, request, patients) as it:
        yield it


def _sweeps(clinic: Clinic, doctor: Staff) -> list[dict[str, Any]]:
    return [
        alert
        for alert in alerts_as_dicts(clinic.services)
        if alert["account"] == doctor.account.username and alert["detector"] == "break-glass-volume"
    ]


def _hour_by_hour(clinic: Clinic, doctor: Staff, per_hour: int, hours: int) -> list[int]:
    """Break the glass for ``per_hour`` patients (reading each), then wait an hour.
    Returns how many patients had been read when a sweep alert was first listed."""
    seen: list[int] = []
    for hour in range(hours):
        for n in range(per_hour):
            index = hour * per_hour + n
            _break_glass(clinic, doctor, [clinic.patients[index]])
            if _sweeps(clinic, doctor) and not seen:
                seen.append(index + 1)
        clinic.clock.advance(3600)
    return seen


def test_five_grants_an_hour_every_hour_are_a_sweep(clinic: Clinic) -> None:
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    seen = _hour_by_hour(clinic, doctor, PER_HOUR, HOURS)
    # Twenty in a day (four hours' worth) are allowed: the twenty-first is a sweep.
    assert seen == [21]
    (alert,) = _sweeps(clinic, doctor)
    assert "within a day" in str(alert["explanation"])
    assert alert["patient_count"] == PER_HOUR * HOURS


def test_a_morning_covering_a_colleagues_clinic_raises_nothing(clinic: Clinic) -> None:
    """Four patients an hour over a four-hour morning: sixteen, within the day's twenty
    and every hour's five."""
    doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-b"])
    assert _hour_by_hour(clinic, doctor, 4, 4) == []
    assert _sweeps(clinic, doctor) == []


def _decoy(clinic: Clinic, decoy: str | None = None) -> str:
    detection = clinic.services.detection
    assert detection is not None
    decoy = decoy or clinic.patients[-1]
    detection.flags.set("decoy", patient_pseudonym(clinic.services, decoy), "staff:test-officer")
    return decoy


def test_a_refused_attempt_at_a_decoy_is_a_honeytoken(clinic: Clinic) -> None:
    decoy = _decoy(clinic)
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-b"])
    for patient in [*clinic.patients[:3], decoy]:
        assert clinic.read(nurse, patient) in (403, 404)
    (alert,) = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "honeytoken"]
    assert (alert["account"], alert["severity"]) == (nurse.account.username, "critical")
    assert alert["patient_count"] == 1


def test_refused_reads_of_other_patients_are_no_honeytoken(clinic: Clinic) -> None:
    """A nurse of clinic B mistyping into clinic A's records: refused, no alert."""
    _decoy(clinic)
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-b"])
    for patient in clinic.patients[:5]:
        assert clinic.read(nurse, patient) in (403, 404)
    assert alerts_as_dicts(clinic.services) == []


def _held(clinic: Clinic, number: int) -> str:
    """A patient of clinic A holding HKID ``number``, as its desk registers them."""
    sent = clinic.web.post_json(
        "/fhir/Patient", held_patient("Yip", ["9 Kings Road"], _hkid(number)), **clinic.desk.headers
    )
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


def _test_hkid(clinic: Clinic, prober: Staff, number: int) -> int:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": HKID_SYSTEM, "value": _hkid(number)}],
        "name": [{"family": "Yip"}],
        "managingOrganization": {"reference": "Organization/clinic-b"},
    }
    headers = {
        **prober.headers,
        **FHIR_JSON,
        "If-None-Exist": f"identifier={HKID_SYSTEM}|{_hkid(number)}",
    }
    return int(
        clinic.web.post("/fhir/Patient", content=json.dumps(body), headers=headers).status_code
    )


def test_a_decoys_hkid_tested_by_a_conditional_create_is_a_honeytoken(clinic: Clinic) -> None:
    _decoy(clinic, _held(clinic, 7))
    prober = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-b"])
    assert _test_hkid(clinic, prober, 7) == 409
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["account"]) == ("honeytoken", prober.account.username)


def test_an_ordinary_patients_hkid_tested_once_raises_nothing(clinic: Clinic) -> None:
    """A desk of clinic B whose new patient turns out to be clinic A's: one 409."""
    _decoy(clinic)
    _held(clinic, 8)
    prober = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-b"])
    assert _test_hkid(clinic, prober, 8) == 409
    assert alerts_as_dicts(clinic.services) == []
