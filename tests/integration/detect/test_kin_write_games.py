"""Writes a snooping receptionist plays so that kin is not seen (SQLite and
PostgreSQL): she moves her household member's record to another address, renames a
namesake or changes a co-worker's HKID number, and then opens it. The tokens a write
replaced are kept for the kin window (``patient_kin_replaced``), so what she changed
first hides nothing; they are forgotten after it, and an honest move of a patient who is
not kin raises nothing. And she books the patient herself within the grace that lets a
booking made just after a look-up explain it: care of her own making explains nothing
(held)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from carevault.db import read_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.detect.engine import PRUNE_EVERY_US, REPLAY_US
from carevault.detect.kin import KIN_WINDOW_US
from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.gate import Caller
from carevault.vault.tables import patient_kin_replaced, resource_head
from carevault.web.security import caller
from tests.integration.detect.conftest import Clinic
from tests.integration.detect.test_snooping import (
    HOME,
    _create,
    _encounter,
    _hkid,
    _patient,
    clinic,
    snoop_settings,
)
from tests.support.staff import Staff, make_staff

__all__ = ["clinic", "snoop_settings"]


def _merge_patch(clinic: Clinic, patient: str, change: dict[str, Any], who: Staff) -> None:
    patched = clinic.web.patch(
        f"/fhir/Patient/{patient}",
        content=json.dumps(change),
        headers={**who.headers, "content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text


def _pseudonym(clinic: Clinic, patient: str) -> str:
    with read_transaction(clinic.services.engine) as connection:
        return str(
            connection.execute(
                select(resource_head.c.patient_pseudonym).where(
                    resource_head.c.resource_type == "Patient",
                    resource_head.c.resource_id == patient,
                )
            ).scalar_one()
        )


def _replaced_kinds(clinic: Clinic, patient: str) -> list[str]:
    """The kinds of the kin tokens writes took away from ``patient``'s record, as kept."""
    pseudonym = _pseudonym(clinic, patient)
    with read_transaction(clinic.services.engine) as connection:
        return sorted(
            connection.execute(
                select(patient_kin_replaced.c.kind).where(
                    patient_kin_replaced.c.patient_pseudonym == pseudonym
                )
            ).scalars()
        )


def test_moving_a_household_members_record_first_does_not_hide_the_look(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(
        officer, clinic.desk.account.username, surname="WONG", address_lines=HOME, hkid=_hkid(1)
    )
    other_desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    spouse = _create(clinic, _patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"]), other_desk)
    child = _create(clinic, _patient("Lee", ["Flat A, 3/F", "12 Hill Road"]), other_desk)
    # Opened as the record stands: a same-address alert naming the child.
    assert clinic.read(clinic.desk, child) == 200
    (alert,) = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "same-address"]
    assert alert["patient_count"] == 1
    # Moved to another address by a merge patch (its own read of the record included),
    # then opened: the household member is counted too.
    moved = {"address": [{"use": "home", "line": ["1 Elsewhere Road"]}]}
    _merge_patch(clinic, spouse, moved, clinic.desk)
    assert clinic.read(clinic.desk, spouse) == 200
    counted = sum(
        a["patient_count"]
        for a in alerts_as_dicts(clinic.services)
        if a["detector"] == "same-address"
    )
    assert counted == 2


def test_renaming_a_namesake_first_does_not_hide_the_look(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(officer, clinic.desk.account.username, surname="WONG")
    other_desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    namesakes = [
        _create(clinic, _patient("Wong", [f"{n} Java Road"]), other_desk) for n in range(4)
    ]
    # Two Wongs opened as they stand: two of two picks where one patient in eleven is a
    # Wong is chance (about 1 in 120).
    for patient in namesakes[:2]:
        assert clinic.read(clinic.desk, patient) == 200
    assert alerts_as_dicts(clinic.services) == []
    # Two renamed by merge patches (their own reads included), then opened: all four
    # count, four of four picks (about 1 in 15,000).
    renamed = {"name": [{"family": "Chan", "given": ["Siu Ming"]}]}
    for patient in namesakes[2:]:
        _merge_patch(clinic, patient, renamed, clinic.desk)
        assert clinic.read(clinic.desk, patient) == 200
    (alert,) = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "same-surname"]
    assert alert["patient_count"] == 4
    assert set(detection.alerts.get(alert["id"]).patients) == {
        _pseudonym(clinic, patient) for patient in namesakes
    }


def test_a_co_workers_record_whose_hkid_number_was_changed_first_is_still_theirs(
    clinic: Clinic,
) -> None:
    """The front desk cannot change an HKID number (she may not read it back, and a
    write keeps what she may not see), but a system feed can: the record whose number
    it changed is still a co-worker's when the receptionist opens it."""
    detection = clinic.services.detection
    assert detection is not None
    detection.kinship.refresh_seconds = 0  # the records written below, known at once
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))
    coworker = _create(clinic, _patient("Ho", ["9 Kings Road"], _hkid(2)))
    overrides = clinic.web.app.dependency_overrides
    overrides[caller] = lambda: Caller(principal="system:test")
    changed = {"identifier": [{"system": HKID_SYSTEM, "value": _hkid(77)}]}
    _merge_patch(clinic, coworker, changed, clinic.desk)  # as the system: the override
    del overrides[caller]
    assert _replaced_kinds(clinic, coworker) == ["hkid"]
    assert clinic.read(clinic.desk, coworker) == 200
    (alert,) = [
        a
        for a in alerts_as_dicts(clinic.services)
        if a["detector"] == "co-worker" and a["account"] == clinic.desk.account.username
    ]
    assert detection.alerts.get(alert["id"]).patients == (_pseudonym(clinic, coworker),)


def test_an_honest_move_of_a_patient_who_is_not_kin_raises_nothing_new(clinic: Clinic) -> None:
    """A patient who is no kin of the receptionist moves house (her record updated at
    the desk), and is then looked up and seen as any patient is: the tokens her move
    replaced are kept, and relate her to no one."""
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    detection.desk.identify(
        officer, clinic.desk.account.username, surname="WONG", address_lines=HOME, hkid=_hkid(1)
    )
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    other_desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    patient = _create(clinic, _patient("Lee", ["Flat B, 5/F", "7 Java Road"]), other_desk)
    _create(clinic, _encounter(patient), nurse)
    assert clinic.read(clinic.desk, patient) == 200
    before = alerts_as_dicts(clinic.services)
    moved = {"address": [{"use": "home", "line": ["Flat 2, 8/F", "30 Tai Po Road"]}]}
    _merge_patch(clinic, patient, moved, clinic.desk)
    assert _replaced_kinds(clinic, patient) == ["building", "household"]
    assert clinic.read(clinic.desk, patient) == 200
    assert clinic.read(nurse, patient) == 200
    for other in clinic.patients[:3]:
        assert clinic.read(clinic.desk, other) == 200
    assert alerts_as_dicts(clinic.services) == before


def test_replaced_kin_tokens_are_forgotten_after_the_kin_window(clinic: Clinic) -> None:
    other_desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    patient = _create(clinic, _patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"]), other_desk)
    renamed = {"name": [{"family": "Ho", "given": ["Siu Ming"]}]}
    _merge_patch(clinic, patient, renamed, other_desk)
    alerts_as_dicts(clinic.services)  # judged, and pruned up to now: kept
    assert _replaced_kinds(clinic, patient) == ["surname"]
    # Past the window, the replay of a rebuilt engine and the pruning's period: the
    # entries judged next prune it. (Made by the system: a member of staff's token
    # minted on the moved clock is not yet valid by the wall clock.)
    clinic.clock.advance((KIN_WINDOW_US + REPLAY_US + PRUNE_EVERY_US) / 1_000_000 + 60)
    clinic.web.app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    assert clinic.web.get(f"/fhir/Patient/{clinic.patients[0]}").status_code == 200
    alerts_as_dicts(clinic.services)
    assert _replaced_kinds(clinic, patient) == []


def test_a_booking_she_makes_herself_within_the_grace_does_not_explain_her_look(
    clinic: Clinic,
) -> None:
    detection = clinic.services.detection
    assert detection is not None
    detection.engine.stop()  # judged here, step by step, not by the engine's thread
    detection.engine.kin_grace_us = 2_000_000
    detection.kinship.identify(
        f"staff:{clinic.desk.account.username}", "test:hr", address_lines=HOME
    )
    other_desk = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    spouse = _create(clinic, _patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"]), other_desk)
    assert clinic.read(clinic.desk, spouse) == 200
    detection.engine.catch_up()  # the grace runs
    visit = {**_encounter(spouse), "status": "planned"}
    _create(clinic, visit, clinic.desk)
    clinic.clock.advance(2.2)  # the grace is over
    detectors = {a["detector"] for a in alerts_as_dicts(clinic.services)}
    assert "same-address" in detectors
