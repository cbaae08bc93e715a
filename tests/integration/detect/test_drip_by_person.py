"""``slow-drip`` counts a person, not a login: a practitioner who reads a few more
patients than usual with each of two logins, day after day, drips through both though
neither login alone runs above its usual day (``detect/drip.py``). Worked out from the
logins' stored days, so it holds after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.bootstrap import build_services
from carevault.db import write_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.model import DAY_US
from carevault.detect.profile import Profile
from carevault.detect.service import zone_offset_us
from carevault.detect.state import save_states
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.integration.detect.conftest import clinic_patients, clinic_settings, opened_clinic
from tests.support.client import FhirTestClient
from tests.support.staff import Staff, make_staff


def _drip_so_far(today: int, now_us: int) -> dict[str, object]:
    """A physician's stored profile: twenty closed days of 3 patients no care explains,
    then the last five (up to yesterday) of 8: within a login's slack (3 + 4 a day is
    ordinary variation, so its own CUSUM stands at 5 of 30), twice that together."""
    profile = Profile(role="physician", first_us=now_us - 40 * DAY_US, last_us=now_us - DAY_US)
    for index in range(25):
        count = 3 if index < 20 else 8
        profile.days[str(today - 25 + index)] = {"all": count, "unexplained": count}
    profile.day, profile.cusum = today - 1, 5.0
    return profile.to_json()


def _drips(
    pairs: list[tuple[str, str | None]],
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> tuple[list[dict[str, object]], list[Staff]]:
    """Logins made with ``pairs`` (role name, practitioner), given the stored days of
    ``_drip_so_far``; after a restart each reads six patients of its own that no care
    explains: the ``slow-drip`` alerts, and the logins."""
    settings = clinic_settings(backend, tmp_path, request, detect_responses="medium=raise")
    with opened_clinic(settings, clinic_patients()) as clinic:
        staff = [
            make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner)
            for _, practitioner in pairs
        ]
        now_us = int(clinic.clock().timestamp() * 1_000_000)
        today = (now_us + zone_offset_us(settings.timezone)) // DAY_US
        clinic.services.close()
        with write_transaction(clinic.services.engine) as connection:
            stored = {who.account.username: _drip_so_far(today, now_us) for who in staff}
            save_states(connection, {f"staff:{name}": v for name, v in stored.items()}, now_us)
        clinic.services.engine.dispose()  # the connection this opened after closing
        again = build_services(settings)
        try:
            with FhirTestClient(create_app(again.settings, again)) as web:
                for index, who in enumerate(staff):
                    for patient in clinic.patients[index * 6 : index * 6 + 6]:
                        response = web.get(f"/fhir/Patient/{patient}", headers=who.headers)
                        assert response.status_code == 200
            found = [a for a in alerts_as_dicts(again) if a["detector"] == "slow-drip"]
        finally:
            again.close()
    return found, staff


def test_a_drip_split_across_two_logins_of_one_doctor_raises_an_alert(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    alerts, (first, second) = _drips(
        [("physician", "dr-wong"), ("physician", "dr-wong")], backend, tmp_path, request
    )
    (alert,) = alerts
    assert alert["account"] == second.account.username
    explanation = str(alert["explanation"])
    assert "with the logins of one practitioner" in explanation
    assert first.account.username in explanation and "usual 6 a day" in explanation
    # 30 + 11 - 10 > 30: raised from the person's eleventh patient of the day; the
    # alert names the first login's six with the second's.
    assert "12 today, 6 of them with this one" in explanation
    assert alert["patient_count"] == 12


def test_the_same_days_of_two_doctors_raise_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    alerts, _ = _drips(
        [("physician", "dr-wong"), ("physician", "dr-chan")], backend, tmp_path, request
    )
    assert alerts == []
