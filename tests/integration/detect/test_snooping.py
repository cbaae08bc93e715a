"""Snooping through the gate (SQLite and PostgreSQL): HR records a receptionist's surname,
home and HKID number as blind tokens; opening her own record, a co-worker's, a
household member's and many of her namesakes' without care raises alerts naming the
ledger positions, and an explained namesake is not counted. Nothing in the clear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select

from carevault.config import Settings
from carevault.db import read_transaction, write_transaction
from carevault.detect import alerts_as_dicts
from carevault.detect.desk import OfficerCode
from carevault.detect.tables import detect_staff_kin
from carevault.domain.hkid import check_digit
from carevault.domain.roles import Role
from carevault.fhir.normalise import HKID_SYSTEM
from carevault.vault.tables import patient_kin, resource_head
from tests.conftest import make_settings
from tests.integration.detect.conftest import Clinic, opened_clinic
from tests.support.staff import Staff, make_staff

HOME = ["Flat A, 3/F", "12 Hill Road"]


def _hkid(number: int) -> str:
    digits = f"{number:06d}"
    return f"K{digits}({check_digit('K', digits)})"


def _patient(family: str, lines: list[str], hkid: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Siu Ming"]}],
        "address": [{"use": "home", "line": lines}],
        "managingOrganization": {"reference": "Organization/clinic-a"},
    }
    if hkid:
        body["identifier"] = [{"system": HKID_SYSTEM, "value": hkid}]
    return body


@pytest.fixture
def snoop_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    # Alerts only: the test reads on after the first alert to see every signal.
    return make_settings(
        tmp_path / "home",
        url,
        detect_responses="medium=raise,high=raise,critical=raise",
        detect_kin_grace_seconds=0,
    )


@pytest.fixture
def clinic(snoop_settings: Settings) -> Iterator[Clinic]:
    bodies = (_patient(f"Lee{n}", [f"Flat {n % 8}, {n}/F", f"{n} Nathan Road"]) for n in range(40))
    with opened_clinic(snoop_settings, bodies) as opened:
        yield opened


def _create(clinic: Clinic, body: dict[str, Any], who: Staff | None = None) -> str:
    writer = who or clinic.desk
    response = clinic.web.post_json(f"/fhir/{body['resourceType']}", body, **writer.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _encounter(patient: str) -> dict[str, Any]:
    today = datetime.now(ZoneInfo("Asia/Hong_Kong")).date().isoformat()
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "serviceProvider": {"reference": "Organization/clinic-a"},
        "period": {"start": f"{today}T09:00:00+08:00"},
    }


def test_a_look_up_followed_by_a_booking_is_explained_once_the_grace_is_over(
    clinic: Clinic,
) -> None:
    """The front desk looks a colleague up to book them in: the booking, made after the
    look-up, explains it, because picks of kin are judged only after a grace."""
    detection = clinic.services.detection
    assert detection is not None
    detection.engine.stop()  # judged here, step by step, not by the engine's thread
    detection.engine.kin_grace_us = 2_000_000
    nurse = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    for number in (2, 3):
        detection.kinship.identify(f"staff:colleague{number}", "test:hr", hkid=_hkid(number))
    booked = _create(clinic, _patient("Ho", ["9 Kings Road"], _hkid(2)))
    unbooked = _create(clinic, _patient("Yip", ["7 Java Road"], _hkid(3)))
    assert clinic.read(clinic.desk, booked) == 200
    detection.engine.catch_up()  # judged before the booking: not yet, the grace runs
    assert alerts_as_dicts(clinic.services) == []
    _create(clinic, _encounter(booked), nurse)
    assert clinic.read(clinic.desk, unbooked) == 200
    clinic.clock.advance(2.2)  # the grace is over
    (alert,) = alerts_as_dicts(clinic.services)
    assert (alert["detector"], alert["patient_count"]) == ("co-worker", 1)
    with read_transaction(clinic.services.engine) as connection:
        pseudonym = connection.execute(
            select(resource_head.c.patient_pseudonym).where(resource_head.c.resource_id == unbooked)
        ).scalar_one()
    assert detection.alerts.get(alert["id"]).patients == (pseudonym,)


def test_kin_opened_without_care_raises_alerts(clinic: Clinic) -> None:
    detection = clinic.services.detection
    assert detection is not None
    officer = OfficerCode(clinic.officer.account.username, clinic.officer.totp())
    desk_name = clinic.desk.account.username
    kinds = detection.desk.identify(
        officer, desk_name, surname="WONG", address_lines=HOME, hkid=_hkid(1)
    )
    assert kinds == ["surname", "household", "building", "hkid"]
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))

    own = _create(clinic, _patient("Wong", ["Flat A, 3/F", "12 Hill Rd"], _hkid(1)))
    coworker = _create(clinic, _patient("Ho", ["Flat 9, 9/F", "9 Kings Road"], _hkid(2)))
    spouse = _create(clinic, _patient("Lee", ["FLAT A 3/F", "12 HILL ROAD"]))
    neighbour = _create(clinic, _patient("Cheung", ["Flat C, 20/F", "12 Hill Road"]))
    namesakes = [_create(clinic, _patient("Wong", [f"{n} Java Road"])) for n in range(6)]
    seen = namesakes[0]
    _create(clinic, _encounter(seen), colleague)
    # Kin tokens are keyed HMACs: no name, address or number in the clear.
    with read_transaction(clinic.services.engine) as connection:
        stored = [bytes(t) for (t,) in connection.execute(select(patient_kin.c.token))]
        stored += [bytes(t) for (t,) in connection.execute(select(detect_staff_kin.c.token))]
    assert stored and all(len(t) == 16 for t in stored)
    assert not any(b"wong" in t.lower() or b"hill" in t.lower() for t in stored)

    # Seven of the 50 patients are Wongs (14 %): five unexplained picks of Wongs in a row
    # is past chance (0.14 ** 5, about 1 in 19,000); the one with an encounter is explained.
    for patient in namesakes:
        assert clinic.read(clinic.desk, patient) == 200
    assert [a["detector"] for a in alerts_as_dicts(clinic.services)] == ["same-surname"]
    # One neighbour in the building, and other patients: nothing more.
    for patient in (neighbour, *clinic.patients[:3]):
        assert clinic.read(clinic.desk, patient) == 200
    assert len(alerts_as_dicts(clinic.services)) == 1
    for patient in (own, coworker, spouse):
        assert clinic.read(clinic.desk, patient) == 200
    alerts = {a["detector"]: a for a in alerts_as_dicts(clinic.services)}
    assert set(alerts) == {"own-record", "co-worker", "same-address", "same-surname"}
    assert alerts["own-record"]["patient_count"] == 1
    assert alerts["co-worker"]["patient_count"] == 1
    # The household member, not the neighbour: one neighbour in a quiet day is chance.
    assert "home address" in alerts["same-address"]["explanation"]
    assert alerts["same-address"]["patient_count"] == 1
    surname = alerts["same-surname"]
    # The namesake with an encounter at the clinic today is explained: not counted.
    assert surname["patient_count"] == 5
    assert "share their surname" in surname["explanation"]
    assert surname["account"] == desk_name
    assert surname["first_position"] is not None and surname["last_position"] is not None
    with read_transaction(clinic.services.engine) as connection:
        pseudonym = connection.execute(
            select(resource_head.c.patient_pseudonym).where(resource_head.c.resource_id == seen)
        ).scalar_one()
    assert pseudonym not in detection.alerts.get(surname["id"]).patients


def test_reindex_fills_the_kin_tokens_of_older_records(clinic: Clinic) -> None:
    engine = clinic.services.engine
    with read_transaction(engine) as connection:
        before = sorted(
            (r.row_id, r.kind, bytes(r.token)) for r in connection.execute(select(patient_kin))
        )
    with write_transaction(engine) as connection:
        connection.execute(delete(patient_kin))
    clinic.services.gate.reindex("cli:operator", batch=7)
    with read_transaction(engine) as connection:
        after = sorted(
            (r.row_id, r.kind, bytes(r.token)) for r in connection.execute(select(patient_kin))
        )
    assert before and after == before


def test_searches_by_initials_are_recorded_by_shape_and_fish(clinic: Clinic) -> None:
    for n in range(10):
        query = "given=Siu" if n % 2 else "name=S&_count=5"
        response = clinic.web.get(f"/fhir/Patient?{query}", headers=clinic.desk.headers)
        assert response.status_code == 200, response.text
    alerts = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "name-fishing"]
    (fishing,) = alerts
    assert fishing["account"] == clinic.desk.account.username
    assert fishing["explanation"].startswith("10 searches by first name only or by initials")
    store = clinic.services.audit_ledger.store
    data = store.entry(int(fishing["last_position"]))
    assert data is not None and b'"name_shape"' in data and b"Siu" not in data


def test_searches_by_initials_sent_in_one_batch_fish_as_ten(clinic: Clinic) -> None:
    """The entries of a batch share its request id: they are ten searches, not one."""
    entries = [
        {"request": {"method": "GET", "url": f"Patient?{'given=Siu' if n % 2 else 'name=S'}"}}
        for n in range(10)
    ]
    batch = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    answered = clinic.web.post_json("/fhir", batch, **clinic.desk.headers)
    assert answered.status_code == 200, answered.text
    assert {e["response"]["status"] for e in answered.json()["entry"]} == {"200 OK"}
    alerts = [a for a in alerts_as_dicts(clinic.services) if a["detector"] == "name-fishing"]
    (fishing,) = alerts
    assert fishing["explanation"].startswith("10 searches by first name only or by initials")


def test_a_search_naming_several_ids_picks_each_as_a_read_would(clinic: Clinic) -> None:
    """``Patient?_id=a,b`` (and ``identifier=x,y``) is a pick of each patient it names,
    not a broad search whose matches were not chosen: a co-worker among them raises the
    same alert as reading the co-worker by id."""
    detection = clinic.services.detection
    assert detection is not None
    colleague = make_staff(clinic.services, Role.NURSE, ["clinic-a"])
    detection.kinship.identify(f"staff:{colleague.account.username}", "test:hr", hkid=_hkid(2))
    coworker = _create(clinic, _patient("Ho", ["Flat 9, 9/F", "9 Kings Road"], _hkid(2)))
    _create(clinic, _patient("Yip", ["7 Java Road"], _hkid(9)))
    by_ids = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    # A list of identifiers is for a role that may read them (a front desk searches one
    # at a time, or the list would tell the HKIDs it may not read).
    by_identifiers = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"])
    by_read = make_staff(clinic.services, Role.FRONT_DESK, ["clinic-a"])
    searches = [
        (by_ids, {"_id": f"{clinic.patients[0]},{coworker}"}),
        (by_identifiers, {"identifier": f"{_hkid(2)},{_hkid(9)}"}),
    ]
    for who, params in searches:
        response = clinic.web.get("/fhir/Patient", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 2
    assert clinic.read(by_read, coworker) == 200
    alerts = {a["account"]: a for a in alerts_as_dicts(clinic.services)}
    read = alerts[by_read.account.username]
    assert (read["detector"], read["patient_count"]) == ("co-worker", 1)
    for who, _ in searches:
        found = alerts[who.account.username]
        assert (found["detector"], found["severity"], found["patient_count"]) == (
            read["detector"], read["severity"], 1,
        )  # fmt: skip
