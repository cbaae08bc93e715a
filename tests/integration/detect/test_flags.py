"""Patients a privacy officer flags: opening a decoy is critical at once and suspends the
account; a VIP opened without care is an alert. Flagging needs a fresh TOTP."""

from __future__ import annotations

import pytest

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.domain.roles import Role
from tests.integration.detect.conftest import Clinic
from tests.support.staff import make_staff


def _officer(clinic: Clinic) -> OfficerCode:
    return OfficerCode(clinic.officer.account.username, clinic.officer.totp())


def test_opening_a_decoy_suspends_at_once(clinic: Clinic) -> None:
    assert clinic.services.detection is not None
    decoy = clinic.patients[5]
    clinic.services.detection.desk.flag(_officer(clinic), "decoy", decoy)
    assert clinic.read(clinic.desk, clinic.patients[0]) == 200
    assert alerts_as_dicts(clinic.services) == []
    assert clinic.read(clinic.desk, decoy) == 200
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["severity"], alert["action"]) == (
        "honeytoken", "critical", "suspend",
    )  # fmt: skip
    assert alert["patient_count"] == 1
    active = clinic.services.containment.refresh().active
    assert [c.mode for c in active] == [Mode.ACCOUNT_SUSPENDED]
    assert clinic.read(clinic.desk, clinic.patients[0]) == 401


def test_a_vip_opened_without_care_is_an_alert(clinic: Clinic) -> None:
    assert clinic.services.detection is not None
    clinic.services.detection.desk.flag(_officer(clinic), "vip", clinic.patients[3])
    # The front desk looks up whoever calls to book: medium, the officer judges it.
    assert clinic.read(clinic.desk, clinic.patients[3]) == 200
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["severity"], alert["action"]) == ("vip", "medium", "step-up")
    # Anyone else without care (a nurse): high, suspended.
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    assert clinic.read(nurse, clinic.patients[3]) == 200
    found = {a["account"]: a for a in alerts_as_dicts(clinic.services)}
    assert (found[nurse.account.username]["severity"], found[nurse.account.username]["action"]) == (
        "high", "suspend",
    )  # fmt: skip


def test_flagging_needs_a_privacy_officer(clinic: Clinic) -> None:
    assert clinic.services.detection is not None
    with pytest.raises(OfficerRefused):
        clinic.services.detection.desk.flag(
            OfficerCode(clinic.desk.account.username, clinic.desk.totp()), "vip", clinic.patients[1]
        )
    with pytest.raises(KeyError):
        clinic.services.detection.desk.flag(_officer(clinic), "vip", "no-such-patient")
    assert clinic.services.detection.flags.listed("vip") == []
