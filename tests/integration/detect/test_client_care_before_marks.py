"""Stop 66: care a client app made before stop 65 explains no VIP read after the upgrade.

Stop 65 marks the maker of care only a client's writes made (``domain.makers``), so a
doctor's read of a VIP only the kiosk's booking explains raises ``vip`` medium
(adversary round 82). A booking written before stop 65 kept the client's plain token,
which reads as another principal's care: the insider's kiosk booking of a VIP made
before the upgrade still explained the read, and nothing was raised. The first start
after the upgrade marks such rows once (``access.client_marks``), resealed; rows staff
or the system made are left as they are, and a row that does not match its seal stays
so (it explains nothing)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from carevault.access.care import SEALED_COLUMNS, CareRelationships, care_seal
from carevault.access.tables import care_relationship
from carevault.bootstrap import Services, build_services
from carevault.db import read_transaction, write_transaction
from carevault.detect import alerts_as_dicts
from carevault.domain.makers import CLIENT_ALONE
from carevault.domain.roles import Role
from carevault.keys.anchors import anchors_path
from carevault.web.app import create_app
from tests.integration.detect.conftest import Clinic, vip_clinic
from tests.integration.detect.test_adversary_round82 import (
    APP,
    _book,
    _booking,
    _token,
    _vip_alerts,
    _write_again,
)
from tests.support.client import FhirTestClient
from tests.support.ledgers import patient_pseudonym
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

#: The note beside the keyring that the pass was done (``bootstrap.CLIENT_CARE_MARKED``).
NOTE = "care-client-marks"

Row = tuple[Any, ...]


def _rows(services: Services, pseudonym: str) -> list[Row]:
    """The patient's care rows as stored: sealed columns and seal, bytes as bytes."""
    with read_transaction(services.engine) as connection:
        found = connection.execute(
            select(
                *(care_relationship.c[name] for name in SEALED_COLUMNS), care_relationship.c.seal
            ).where(care_relationship.c.patient_pseudonym == pseudonym)
        ).all()
    return sorted(
        tuple(bytes(v) if isinstance(v, bytes | memoryview) else v for v in row) for row in found
    )


def _genuine(care: CareRelationships, row: Row) -> bool:
    """Whether a row as ``_rows`` gives it matches its seal."""
    return care.genuine(dict(zip((*SEALED_COLUMNS, "seal"), row, strict=True)))


def _rewrite(services: Services, pseudonym: str, maker: bytes, *, reseal: bool) -> int:
    """Give the patient's care rows ``maker``: resealed, as the code before stop 65 wrote
    a client's booking (its plain token, sealed); or not (someone writing the database
    without the key). Returns how many rows."""
    key = services.access.care.seal_key
    assert key is not None
    with write_transaction(services.engine) as connection:
        rows = connection.execute(
            select(care_relationship).where(care_relationship.c.patient_pseudonym == pseudonym)
        ).all()
        for row in rows:
            stored = dict(row._mapping)
            values: dict[str, Any] = {"granted_by": maker}
            if reseal:
                values["seal"] = care_seal(key, {**stored, "granted_by": maker})
            connection.execute(
                update(care_relationship)
                .where(
                    *(
                        care_relationship.c[name].is_(None)
                        if stored[name] is None
                        else care_relationship.c[name] == stored[name]
                        for name in SEALED_COLUMNS
                    )
                )
                .values(**values)
            )
    return len(rows)


def _before_stop_66(services: Services) -> None:
    """The home as a release before stop 66 left it: no note that the pass was done."""
    path = anchors_path(services.settings.resolved_keyring_path)
    kept = [line for line in path.read_text().splitlines() if line != NOTE]
    path.write_text("".join(f"{line}\n" for line in kept))


@contextmanager
def _restarted(clinic: Clinic) -> Iterator[Clinic]:
    """The clinic's services stopped and started again on the same home and database."""
    settings = clinic.services.settings
    clinic.services.close()
    again = build_services(settings, clock=clinic.clock)
    try:
        with FhirTestClient(create_app(again.settings, again)) as web:
            yield replace(clinic, services=again, web=web)
    finally:
        again.close()


def test_a_clients_booking_of_a_vip_from_before_stop_65_explains_no_read_after_the_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with vip_clinic(backend, tmp_path, request, 5) as clinic:
        doctor = make_staff(clinic.services, Role.PHYSICIAN, ["clinic-a"], practitioner_id="dr-in")
        app = _token(clinic)
        booked_before, written_again, control, desk_booked, tampered = clinic.patients
        services = clinic.services
        client = services.access.care.maker(f"client:{APP}")
        assert client is not None
        # The kiosk booked the VIP before stop 65: the row holds its plain token, sealed.
        _book(clinic, booked_before, app)
        old = patient_pseudonym(services, booked_before)
        assert _rewrite(services, old, client, reseal=True) >= 1
        # And another, which the doctor writes again after the upgrade.
        again_booked = _book(clinic, written_again, app)
        before = patient_pseudonym(services, written_again)
        assert _rewrite(services, before, client, reseal=True) >= 1
        # The doctor's own booking (control), the desk's booking (staff-made), and a
        # booking of the doctor's whose maker someone set to the kiosk's in the
        # database, without the key.
        _book(clinic, control, doctor.headers)
        _book(clinic, tampered, doctor.headers)
        made = clinic.web.post_json(
            "/fhir/Appointment", _booking(desk_booked, "dr-in"), **clinic.desk.headers
        )
        assert made.status_code == 201, made.text
        altered = patient_pseudonym(services, tampered)
        assert _rewrite(services, altered, client, reseal=False) >= 1
        staff_made = {
            p: _rows(services, patient_pseudonym(services, p))
            for p in (control, desk_booked, tampered)
        }
        assert "stored-data-altered" not in {a["detector"] for a in alerts_as_dicts(services)}
        _before_stop_66(services)

        with _restarted(clinic) as upgraded:
            again = upgraded.services
            care = again.access.care
            # The doctor's reads of the VIPs the kiosk booked before are judged now, the
            # one he wrote again too (his version is no one else's word; unmarked, the
            # kiosk's plain token was taken for another person's, and corroborated it).
            _write_again(upgraded, written_again, again_booked, doctor.headers)
            for patient in (booked_before, written_again, control):
                assert upgraded.read(doctor, patient) == 200
            assert _vip_alerts(upgraded, doctor) == {
                booked_before: "medium",
                written_again: "medium",
                control: "high",
            }
            # The kiosk's booking is marked as the kiosk's alone, and sealed again.
            rows = _rows(again, old)
            assert rows and {row[SEALED_COLUMNS.index("granted_by")] for row in rows} == {
                CLIENT_ALONE + client
            }
            assert all(_genuine(care, row) for row in rows)
            # Staff's rows untouched; the tampered one too, and it still does not match.
            for patient, before in staff_made.items():
                assert _rows(again, patient_pseudonym(again, patient)) == before, patient
            for row in staff_made[tampered]:
                assert not _genuine(care, row)
            # ... and the pass told it, as a read would have.
            assert "stored-data-altered" in {a["detector"] for a in alerts_as_dicts(again)}
            for row in staff_made[control] + staff_made[desk_booked]:
                assert _genuine(care, row)


def test_the_pass_is_done_once_and_a_second_run_changes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from carevault import bootstrap
    from carevault.access.client_marks import mark_client_care

    with vip_clinic(backend, tmp_path, request, 2) as clinic:
        app = _token(clinic)
        first, second = clinic.patients
        services = clinic.services
        client = services.access.care.maker(f"client:{APP}")
        assert client is not None
        _book(clinic, first, app)
        _book(clinic, second, app)
        pseudonyms = [patient_pseudonym(services, p) for p in clinic.patients]
        _rewrite(services, pseudonyms[0], client, reseal=True)
        # A revoked app's booking from before is marked too.
        services.admin.revoke_client("admin:test", APP)
        _before_stop_66(services)
        with _restarted(clinic) as upgraded:
            again = upgraded.services
            marked = {p: _rows(again, p) for p in pseudonyms}
            assert {
                row[SEALED_COLUMNS.index("granted_by")] for p in pseudonyms for row in marked[p]
            } == {CLIENT_ALONE + client}
            # Run again: nothing found, nothing changed (no mark twice).
            assert mark_client_care(again.access.care) == 0
            assert {p: _rows(again, p) for p in pseudonyms} == marked
            path = anchors_path(again.settings.resolved_keyring_path)
            assert path.read_text().split().count(NOTE) == 1

            def no_second_pass(*_args: object) -> int:
                raise AssertionError("the table was read again at a later start")

            monkeypatch.setattr(bootstrap, "mark_client_care", no_second_pass)
            third = build_services(again.settings, clock=clinic.clock)
            third.close()


@pytest.mark.parametrize("which", ["client-marks", "sealing"])
def test_the_pass_waits_for_record_writes_in_flight(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, which: str
) -> None:
    """Record writes rewrite care rows too (a record written again clears and inserts
    its own): a pass marking rows while one is in flight updated them in another order,
    and PostgreSQL ended one of the two as a deadlock (a server's start failed, or a
    clinician's write). Each pass over the care rows at start (the client marks; the
    sealing of rows from before sealing began) waits for the writes in flight; SQLite's
    write lock did already."""
    from carevault.access.client_marks import mark_client_care
    from carevault.db import hold_record_writes

    with vip_clinic(backend, tmp_path, request, 1) as clinic:
        services = clinic.services
        care = services.access.care
        (patient,) = clinic.patients
        client = care.maker(f"client:{APP}")
        assert client is not None
        _book(clinic, patient, _token(clinic))
        pseudonym = patient_pseudonym(services, patient)
        if which == "client-marks":
            assert _rewrite(services, pseudonym, client, reseal=True) >= 1
        else:
            with write_transaction(services.engine) as connection:
                connection.execute(
                    update(care_relationship)
                    .where(care_relationship.c.patient_pseudonym == pseudonym)
                    .values(seal=None)
                )
        done = threading.Event()
        passed: list[int] = []

        def run_the_pass() -> None:
            passed.append(
                mark_client_care(care) if which == "client-marks" else care.seal_unsealed()
            )
            done.set()

        with write_transaction(services.engine) as connection:
            hold_record_writes(connection)
            passing = threading.Thread(target=run_the_pass)
            passing.start()
            # The write in flight holds the pass: nothing changed while it runs.
            assert not done.wait(0.5)
        passing.join(timeout=30)
        assert passed and passed[0] >= 1
        rows = _rows(services, pseudonym)
        assert all(_genuine(care, row) for row in rows)
        if which == "client-marks":
            assert {row[SEALED_COLUMNS.index("granted_by")] for row in rows} == {
                CLIENT_ALONE + client
            }
