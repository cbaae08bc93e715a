"""Patients a privacy officer flags: opening a decoy is critical at once and suspends the
account; a VIP opened without care is an alert. Flagging needs a fresh TOTP."""

from __future__ import annotations

import pyotp
import pytest

from carevault.containment.state import Mode
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode, OfficerRefused
from carevault.domain.roles import Role
from carevault.ledger.events import AuditEvent, Tag
from tests.integration.detect.conftest import Clinic
from tests.support.staff import Staff, make_staff


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


def test_switching_a_flag_off_takes_a_second_officer(clinic: Clinic) -> None:
    """A VIP or decoy flag off is a patient no longer watched: one officer who switched it
    off could read the patient unnoticed (round 58 left it open). The first officer's
    "off" is a request; the flag stays until another officer confirms it within a day.
    The same officer asking again, or a lapsed request, confirms nothing."""
    detection = clinic.services.detection
    assert detection is not None
    other = make_staff(clinic.services, Role.PRIVACY_OFFICER, ["clinic-a"])

    def code(who: Staff) -> OfficerCode:
        # A fresh step of the services' clock for each code (codes are single-use).
        clinic.clock.advance(30)
        at = clinic.clock().timestamp()
        return OfficerCode(who.account.username, pyotp.TOTP(who.login.totp_secret).at(at))

    first, second = clinic.officer, other
    vip, decoy = clinic.patients[3], clinic.patients[4]
    desk = detection.desk
    assert desk.flag(code(first), "vip", vip).done
    assert desk.flag(code(first), "decoy", decoy).done
    asked = desk.flag(code(first), "vip", vip, on=False)
    assert not asked.done and detection.flags.listed("vip") == [asked.pseudonym]
    assert not desk.flag(code(first), "vip", vip, on=False).done
    # Still watched: the desk's look at the VIP without care is an alert.
    assert clinic.read(clinic.desk, vip) == 200
    assert [a["detector"] for a in alerts_as_dicts(clinic.services)] == ["vip"]
    assert desk.flag(code(second), "vip", vip, on=False).done
    assert detection.flags.listed("vip") == []

    # A request not confirmed within a day lapses: the next "off" is a request again.
    assert not desk.flag(code(first), "decoy", decoy, on=False).done
    clinic.clock.advance(24 * 3600)
    assert not desk.flag(code(second), "decoy", decoy, on=False).done
    assert detection.flags.listed("decoy") != []
    # Marking the patient again drops a pending request.
    assert desk.flag(code(first), "decoy", decoy).done
    assert not desk.flag(code(first), "decoy", decoy, on=False).done
    assert desk.flag(code(second), "decoy", decoy, on=False).done
    assert detection.flags.listed("decoy") == []
    entries = [
        event.detail
        for _, data in clinic.services.audit_ledger.store.entries()
        if (event := AuditEvent.from_canonical(data)).tag is Tag.DETECT_FLAG_SET
        and event.detail.get("asked_by")
    ]
    assert [(e["flag"], e["on"]) for e in entries] == [("vip", False), ("decoy", False)]
    assert all(e["asked_by"] == f"staff:{first.account.username}" for e in entries)
