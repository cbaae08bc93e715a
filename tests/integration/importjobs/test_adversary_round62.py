"""Adversary round 62, the system's loads meeting what staff wrote first: Tuen Mun's front
desk and doctor (ordinary logins of one clinic) expect a migration (``carevault import``
of NDJSON files) or an integration client's ``$import`` to load Tsuen Wan's patients, and
write records beforehand under the ids it will use. Each attack is sent as they sent it,
on SQLite and PostgreSQL.

Found: a room or role the desk made at its clinic under an id of its choosing (``PUT
Location/ward-m``) placed every visit or booking a load named it in, without sending it,
at the desk's clinic, and the system's load registered those patients there: the desk
read them and its doctors had care. Now the system registers a patient only at a clinic
the visit names itself (``domain.care.grants``: ``through_directory``).

Found: a Patient the desk made at its clinic under the id a migration gives one of Tsuen
Wan's patients took that migration's visits and results into its own chart: the load's
Patient line was refused (a home clinic changes only by a transfer), but the lines naming
``Patient/mig-1`` were written to the record stored under that id, which a booking by the
desk opened to Tuen Mun's doctor. Now a load refuses the records that name, as their
patient or their place, a record whose own line it refused
(``bulk.loader.Loader._unmoored``).

What must keep working is kept beside them (named ``guard``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from carevault.bootstrap import Services
from carevault.bulk.checking import Checker
from carevault.bulk.importer import Importer, ImportReport
from carevault.bulk.journal import Journal
from carevault.bulk.loader import Loader
from carevault.fhir import jsonio
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.importjobs.worker import ImportWorker
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0040_directory_unknown
from carevault.vault.tables import directory_written
from tests.integration.access.browser import basic, bearer
from tests.integration.access.group import (
    TM,
    TODAY,
    TW,
    Group,
    booked_today,
    build_group,
    care_team,
    encounter,
    observation,
)
from tests.support.client import FhirTestClient

pytestmark = pytest.mark.postgres

NDJSON = {"Content-Type": "application/fhir+ndjson", "Prefer": "respond-async"}
AT_TEN = f"{TODAY.isoformat()}T10:00:00+08:00"


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    yield from build_group(services, api)


def _ref(kind: str, ident: str) -> dict[str, str]:
    return {"reference": f"{kind}/{ident}"}


def _migrate(services: Services, folder: Path, *records: dict[str, Any]) -> ImportReport:
    """``carevault import`` of ``records``, one NDJSON file per type as Bulk Data lays
    them out, run as the CLI runs it (the system's load)."""
    return _import(services, _files(folder, records))


def _files(folder: Path, records: tuple[dict[str, Any], ...]) -> list[Path]:
    """``records`` as NDJSON files in ``folder``, one per type, in the records' order."""
    folder.mkdir()
    files: dict[str, list[bytes]] = {}
    for record in records:
        files.setdefault(record["resourceType"], []).append(jsonio.dumps(record))
    paths = []
    for kind, lines in files.items():
        path = folder / f"{kind}.ndjson"
        path.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def _import(services: Services, paths: list[Path]) -> ImportReport:
    loader = Loader(services.gate, services.now_us, checker=Checker(DEFAULT_LIMITS, workers=0))
    return Importer(loader, Journal(services.engine, services.keys)).run(paths)


def _client_import(group: Group, *records: dict[str, Any]) -> dict[str, Any]:
    """Tsuen Wan's integration client's ``$import`` of ``records``, worked to the end:
    the job's outcome."""
    token, job_id = _kick_off(group, *records)
    assert group.services.imports is not None
    ImportWorker(group.services.imports, "test-worker").run_once(None)
    outcome = group.web.get(f"/fhir/$import-status/{job_id}", headers=bearer(token))
    assert outcome.status_code == 200, outcome.text
    result: dict[str, Any] = outcome.json()
    return result


def _kick_off(group: Group, *records: dict[str, Any]) -> tuple[str, str]:
    """Tsuen Wan's integration client sends ``records`` to ``$import``: (its token, the
    job's id)."""
    scopes = "system/*.cruds"
    _, secret = group.services.admin.add_client(
        "admin:test", "tw-lab", "TW lab", confidential=True, scopes=scopes, clinic_ids=[TW]
    )
    assert secret
    response = group.web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": scopes},
        headers=basic("tw-lab", secret),
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    body = b"".join(jsonio.dumps(record) + b"\n" for record in records)
    kicked = group.web.post("/fhir/$import", content=body, headers={**bearer(token), **NDJSON})
    assert kicked.status_code == 202, kicked.text
    return token, kicked.headers["content-location"].rsplit("/", 1)[1]


def _status(group: Group, who: Any, path: str) -> int:
    status: int = group.call(who, "GET", path).status_code
    return status


def _written(group: Group, who: Any, path: str, body: dict[str, Any]) -> None:
    response = group.call(who, "PUT", path, body)
    assert response.status_code == 201, response.text


# --- found: a room or role made first, named by a load that does not send it ---------------


def _room_made_first(group: Group) -> dict[str, Any]:
    """Tuen Mun's desk makes ``ward-m`` at its clinic; the migration's visit of Tsuen
    Wan's patient at ``ward-m``, which the migration does not send (its rooms are Tsuen
    Wan's, loaded by the directory's app later), with no ``serviceProvider``."""
    room = {"resourceType": "Location", "id": "ward-m", "name": "Ward M"}
    _written(
        group,
        group.desk_tm,
        "/fhir/Location/ward-m",
        {**room, "managingOrganization": _ref("Organization", TM)},
    )
    return _migrated_visit(group, "mig-visit-1", "ward-m")


def _migrated_visit(group: Group, visit_id: str, room: str) -> dict[str, Any]:
    """A migrated visit of Tsuen Wan's patient at ``room``, with no ``serviceProvider``."""
    return {
        "resourceType": "Encounter",
        "id": visit_id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": _ref("Patient", group.tw_patient.id),
        "location": [{"location": _ref("Location", room)}],
        "period": {"start": AT_TEN},
    }


def _role_made_first(group: Group) -> dict[str, Any]:
    """Tuen Mun's desk makes ``role-m`` at its clinic (naming its own doctor); the
    migration's booking of Tsuen Wan's patient with ``role-m``, not sent."""
    role = {
        "resourceType": "PractitionerRole",
        "id": "role-m",
        "active": True,
        "practitioner": _ref("Practitioner", "dr-tm"),
        "organization": _ref("Organization", TM),
    }
    _written(group, group.desk_tm, "/fhir/PractitionerRole/role-m", role)
    return {
        "resourceType": "Appointment",
        "id": "mig-booking-1",
        "status": "booked",
        "start": AT_TEN,
        "end": f"{TODAY.isoformat()}T10:15:00+08:00",
        "participant": [
            {"actor": _ref("Patient", group.tw_patient.id), "status": "accepted"},
            {"actor": _ref("PractitionerRole", "role-m"), "status": "accepted"},
        ],
    }


@pytest.mark.parametrize("made_first", ["Location", "PractitionerRole"])
@pytest.mark.parametrize("made", ["since-records_0034", "before-records_0034"])
def test_a_room_or_role_a_desk_made_first_does_not_register_the_patients_a_migration_places_there(
    group: Group, tmp_path: Path, made_first: str, made: str
) -> None:
    """A room or role a desk wrote before records_0034 has no ``directory_written`` row,
    and stop 64 read "no row" as the system's own directory: a load's booking in it
    registered Tsuen Wan's patient at Tuen Mun, and the desk and its doctor read the
    chart (adversary round 82). records_0040 keeps every such record as of an unknown
    writer: the load's record is refused, as for one a desk wrote since."""
    record = _room_made_first(group) if made_first == "Location" else _role_made_first(group)
    if made == "before-records_0034":
        # The database as it stood when upgraded across records_0034, then across 0040.
        with group.services.engine.begin() as connection:
            connection.execute(delete(directory_written))
        downgrade("records", group.services.engine, r0040_directory_unknown.down_revision)
        upgrade("records", group.services.engine, r0040_directory_unknown.revision)
    report = _migrate(group.services, tmp_path / "mig", record)
    # Since stop 55 the visit or booking is refused, saying why, rather than placed at
    # the desk's clinic (below); it registers no one either way.
    assert (report.accepted, report.rejected) == (0, 1)
    ((_, reason),) = report.files[0].rejections
    assert f"only through {made_first}/" in reason

    patient = group.tw_patient
    assert _status(group, group.desk_tm, f"/fhir/Patient/{patient.id}") == 403
    assert _status(group, group.doctor_tm, f"/fhir/Observation/{patient.observation}") == 403


def test_a_room_a_desk_made_first_does_not_show_it_a_migrated_visit_placed_there(
    group: Group, tmp_path: Path
) -> None:
    """A visit a load names only by a room, at a clinic where its patient is not
    registered, is refused with the reason, not placed at the room's clinic (a strict
    xfail from round 62 to stop 55)."""
    record = _room_made_first(group)
    report = _migrate(group.services, tmp_path / "mig", record)
    assert (report.accepted, report.rejected) == (0, 1)
    ((_, reason),) = report.files[0].rejections
    assert "only through Location/ward-m" in reason and "serviceProvider" in reason
    assert _status(group, group.desk_tm, f"/fhir/Encounter/{record['id']}") in (403, 404)


def test_a_visit_naming_its_clinic_is_placed_there_though_it_names_a_room_too(
    group: Group, tmp_path: Path
) -> None:
    """guard: the same migrated visit naming Tsuen Wan as its serviceProvider is written,
    at Tsuen Wan, whatever room it names; Tuen Mun's desk does not read it."""
    record = {**_room_made_first(group), "serviceProvider": _ref("Organization", TW)}
    report = _migrate(group.services, tmp_path / "mig", record)
    assert (report.accepted, report.rejected) == (1, 0)
    assert _status(group, group.desk_tm, f"/fhir/Encounter/{record['id']}") == 403
    assert _status(group, group.desk_tw, f"/fhir/Encounter/{record['id']}") == 200


def test_a_visit_in_a_room_of_its_patients_own_clinic_is_placed_there(
    group: Group, tmp_path: Path
) -> None:
    """guard: a room of the clinic where the patient is registered places the visit
    there, as before (a migration naming rooms only, no serviceProvider)."""
    room = {"resourceType": "Location", "id": "ward-w", "name": "Ward W",
            "managingOrganization": _ref("Organization", TW)}  # fmt: skip
    _written(group, group.desk_tw, "/fhir/Location/ward-w", room)
    record = {
        **_room_made_first(group),
        "location": [{"location": _ref("Location", "ward-w")}],
    }
    report = _migrate(group.services, tmp_path / "mig", record)
    assert (report.accepted, report.rejected) == (1, 0)
    assert _status(group, group.desk_tw, f"/fhir/Encounter/{record['id']}") == 200


# --- found: a patient made first under the id a migration uses --------------------------------


def _migrated_history(patient_id: str) -> list[dict[str, Any]]:
    """A Tsuen Wan patient's migrated history: the patient, a visit at Tsuen Wan, a
    result of that visit."""
    patient = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": "Ng", "given": ["Ka Yan"]}],
        "birthDate": "1961-05-09",
        "managingOrganization": _ref("Organization", TW),
    }
    visit = {**encounter(patient_id, TW), "id": f"{patient_id}-visit"}
    result = {
        **observation(patient_id, "HIV-1 RNA 40 copies/mL"),
        "id": f"{patient_id}-result",
        "encounter": _ref("Encounter", f"{patient_id}-visit"),
    }
    return [patient, visit, result]


def _decoy(group: Group, patient_id: str) -> None:
    """Tuen Mun's desk makes a patient of its own clinic under ``patient_id`` and books
    them today with its clinic, which opens the record to Tuen Mun's clinicians."""
    decoy = {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": "Decoy"}],
        "managingOrganization": _ref("Organization", TM),
    }
    _written(group, group.desk_tm, f"/fhir/Patient/{patient_id}", decoy)
    booked = group.call(group.desk_tm, "POST", "/fhir/Appointment", booked_today(patient_id, TM))
    assert booked.status_code == 201, booked.text


def _history_stays_closed_to_tuen_mun(group: Group, patient_id: str) -> None:
    result = f"/fhir/Observation/{patient_id}-result"
    visit = f"/fhir/Encounter/{patient_id}-visit"
    assert _status(group, group.doctor_tm, result) in (403, 404)
    assert _status(group, group.desk_tm, visit) in (403, 404)


def test_a_patient_a_desk_made_first_under_a_migrations_id_takes_none_of_its_history(
    group: Group, tmp_path: Path
) -> None:
    _decoy(group, "mig-1")
    report = _migrate(group.services, tmp_path / "mig", *_migrated_history("mig-1"))

    _history_stays_closed_to_tuen_mun(group, "mig-1")
    assert (report.accepted, report.rejected) == (0, 3)
    reasons = {reason for file in report.files for _, reason in file.rejections}
    assert any("transfer" in reason for reason in reasons), reasons
    assert any("Patient/mig-1" in reason for reason in reasons), reasons


def test_a_patient_a_desk_made_first_under_a_clients_import_id_takes_none_of_its_history(
    group: Group,
) -> None:
    _decoy(group, "mig-2")
    outcome = _client_import(group, *_migrated_history("mig-2"))

    _history_stays_closed_to_tuen_mun(group, "mig-2")
    assert "0 accepted, 3 rejected" in json.dumps(outcome)


def test_a_visit_a_doctor_wrote_first_under_a_migrations_id_places_none_of_its_results(
    group: Group, tmp_path: Path
) -> None:
    """Tuen Mun's doctor writes ``mig-3-visit`` for his own patient; the migration's
    visit under that id is another patient's (refused: an update never moves a record
    to another patient). Its result named that visit, so it was placed at Tuen Mun
    through the doctor's visit (read 403 all the same: no one at Tuen Mun cares for the
    patient); now it is refused with the visit it names."""
    mine = {**encounter(group.tm_patient.id, TM, "dr-tm"), "id": "mig-3-visit"}
    _written(group, group.doctor_tm, "/fhir/Encounter/mig-3-visit", mine)
    patient, visit, result = _migrated_history("mig-3")
    report = _migrate(group.services, tmp_path / "mig", patient, visit, result)

    assert _status(group, group.doctor_tm, "/fhir/Observation/mig-3-result") in (403, 404)
    assert (report.accepted, report.rejected) == (1, 2)
    stored = group.call(group.doctor_tm, "GET", "/fhir/Encounter/mig-3-visit").json()
    assert stored["subject"] == _ref("Patient", group.tm_patient.id)


def test_a_resumed_migration_remembers_the_patient_its_first_run_refused(
    group: Group, tmp_path: Path
) -> None:
    """The migration is stopped once its patients' file is done (the patient line
    refused: the id is the desk's decoy) and run again over every file. The run that
    refused the line knew it; the resumed run did not, and wrote the visit and the
    result into the decoy's chart, open to Tuen Mun's doctor through the desk's
    booking. Now each refusal keeps the record it was about, and a resumed run refuses
    the lines naming it, as the first run would have."""
    _decoy(group, "mig-5")
    paths = _files(tmp_path / "mig", tuple(_migrated_history("mig-5")))
    patients = [path for path in paths if path.name == "Patient.ndjson"]
    first = _import(group.services, patients)
    assert (first.accepted, first.rejected) == (0, 1)

    resumed = _import(group.services, paths)

    _history_stays_closed_to_tuen_mun(group, "mig-5")
    assert resumed.written == 0
    assert (resumed.accepted, resumed.rejected) == (0, 3)
    reasons = [reason for file in resumed.files for _, reason in file.rejections]
    # The visit and the result name the patient: each refused for it.
    assert sum("names Patient/mig-5," in reason for reason in reasons) == 2, reasons


def test_a_clients_import_picked_up_again_remembers_the_patient_it_refused(
    group: Group,
) -> None:
    """The same through ``$import``: the worker stops after the body's first line (the
    patient, refused) and a later pass picks the job up again."""
    assert group.services.imports is not None
    imports = group.services.imports
    imports.settings = replace(imports.settings, batch_lines=1)
    _decoy(group, "mig-6")
    token, job_id = _kick_off(group, *_migrated_history("mig-6"))
    worker = ImportWorker(imports, "test-worker")
    assert worker.run_once(1) == 1
    worker.run_once(None)

    _history_stays_closed_to_tuen_mun(group, "mig-6")
    outcome = group.web.get(f"/fhir/$import-status/{job_id}", headers=bearer(token))
    assert "0 accepted, 3 rejected" in outcome.text


# --- guards ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Appointment", "CareTeam"])
def test_guard_a_booking_or_care_team_written_first_under_a_migrations_id_opens_nothing(
    group: Group, tmp_path: Path, kind: str
) -> None:
    """Tuen Mun's doctor writes, for his own patient, the booking or care team whose id
    the migration gives one of Tsuen Wan's patient's (naming Tuen Mun's doctor on it):
    the migration's line is refused (an update never moves a record to another
    patient), and Tuen Mun reads nothing more of Tsuen Wan's patient."""
    tw = group.tw_patient.id
    if kind == "Appointment":
        mine = booked_today(group.tm_patient.id, TM, "dr-tm")
        theirs = booked_today(tw, TW, "dr-tm")
    else:
        mine = care_team(group.tm_patient.id, "dr-tw", TM)
        theirs = care_team(tw, "dr-tm", TW)
    _written(group, group.doctor_tm, f"/fhir/{kind}/mig-{kind}", {**mine, "id": f"mig-{kind}"})
    report = _migrate(group.services, tmp_path / "mig", {**theirs, "id": f"mig-{kind}"})

    assert (report.accepted, report.rejected) == (0, 1)
    assert _status(group, group.desk_tm, f"/fhir/Patient/{tw}") == 403
    assert (
        _status(group, group.doctor_tm, f"/fhir/Observation/{group.tw_patient.observation}") == 403
    )


def test_guard_a_migration_registers_its_patients_at_the_clinic_its_visits_name(
    group: Group, tmp_path: Path
) -> None:
    """A migration's visit of Tuen Mun's patient at Tsuen Wan (``serviceProvider``, in a
    ward the migration sends) registers the patient there: Tsuen Wan's desk reads them."""
    ward = {
        "resourceType": "Location",
        "id": "tw-ward-1",
        "name": "TW ward 1",
        "managingOrganization": _ref("Organization", TW),
    }
    visit = {
        **encounter(group.tm_patient.id, TW),
        "id": "mig-visit-tw",
        "location": [{"location": _ref("Location", "tw-ward-1")}],
    }
    patient = f"/fhir/Patient/{group.tm_patient.id}"
    assert _status(group, group.desk_tw, patient) == 403
    report = _migrate(group.services, tmp_path / "mig", ward, visit)
    assert (report.accepted, report.rejected) == (2, 0)
    assert _status(group, group.desk_tw, patient) == 200


def test_guard_a_migrated_patient_whose_id_no_one_held_loads_whole(
    group: Group, tmp_path: Path
) -> None:
    report = _migrate(group.services, tmp_path / "mig", *_migrated_history("mig-4"))
    assert (report.accepted, report.rejected) == (3, 0)
    assert _status(group, group.desk_tw, "/fhir/Patient/mig-4") == 200
    assert _status(group, group.doctor_tw, "/fhir/Observation/mig-4-result") == 200
    _history_stays_closed_to_tuen_mun(group, "mig-4")


def test_guard_a_clients_import_of_its_own_patients_loads_whole(group: Group) -> None:
    outcome = _client_import(group, *_migrated_history("mig-5"))
    assert "3 accepted, 0 rejected" in json.dumps(outcome)
    assert _status(group, group.desk_tw, "/fhir/Encounter/mig-5-visit") == 200


def test_guard_a_desk_still_makes_and_uses_its_own_rooms(group: Group) -> None:
    """A desk names its clinic's new room (``PUT``) and books its own patient there; its
    doctor sees the patient's visit in that room."""
    room = {
        "resourceType": "Location",
        "id": "tm-room-9",
        "name": "Room 9",
        "managingOrganization": _ref("Organization", TM),
    }
    _written(group, group.desk_tm, "/fhir/Location/tm-room-9", room)
    visit = {
        **encounter(group.tm_patient.id, TM, "dr-tm"),
        "location": [{"location": _ref("Location", "tm-room-9")}],
    }
    made = group.call(group.doctor_tm, "POST", "/fhir/Encounter", visit)
    assert made.status_code == 201, made.text
    assert _status(group, group.desk_tm, f"/fhir/Encounter/{made.json()['id']}") == 200


def test_a_room_the_system_loaded_places_a_visit_where_its_patient_is_not_registered(
    group: Group, tmp_path: Path
) -> None:
    """guard: the group's directory as the system loads it places what the system loads
    (a booking at another clinic the patient never came to: the simulated group has
    them); only a room or role that staff or a client app wrote is held to the patient's
    registrations, and a desk's later edit of the system's room makes it one."""
    room = {"resourceType": "Location", "id": "ward-s", "name": "Ward S",
            "managingOrganization": _ref("Organization", TM)}  # fmt: skip
    visit = _migrated_visit(group, "mig-visit-1", "ward-s")
    report = _migrate(group.services, tmp_path / "mig", room, visit)
    assert (report.accepted, report.rejected) == (2, 0)
    # And registers its patient there (stop 64): Tuen Mun's desk reads them.
    assert _status(group, group.desk_tm, f"/fhir/Patient/{group.tw_patient.id}") == 200

    edited = group.call(group.desk_tm, "PUT", "/fhir/Location/ward-s", {**room, "name": "S2"})
    assert edited.status_code == 200, edited.text
    patient, _, _ = _migrated_history("mig-6")
    visit = {**_migrated_visit(group, "mig-6-visit", "ward-s"), "subject": _ref("Patient", "mig-6")}
    report = _migrate(group.services, tmp_path / "mig2", patient, visit)
    assert (report.accepted, report.rejected) == (1, 1)
    assert _status(group, group.desk_tm, "/fhir/Patient/mig-6") == 403


def test_a_booking_the_system_loads_in_its_own_room_registers_the_patient_there(
    group: Group, tmp_path: Path
) -> None:
    """A migrated schedule books Tsuen Wan's patient into Tuen Mun's specialist clinic,
    naming the room the same load brought (R4 lets an Appointment name its clinic only
    through a room or a role). Since round 62's fix such a booking registered no one, and
    Tuen Mun's nurse and doctor were refused the patient they saw that day (the simulated
    month: 16 refusals of clinicians at the other branch; stop 64). The group's own
    directory, as the system loaded it, registers the patient where it places the
    booking; a room a desk wrote still does not (above)."""
    room = {"resourceType": "Location", "id": "spec-m", "name": "Specialist room",
            "managingOrganization": _ref("Organization", TM)}  # fmt: skip
    booking = {
        "resourceType": "Appointment",
        "id": "mig-booking-s",
        "status": "booked",
        "start": AT_TEN,
        "end": f"{TODAY.isoformat()}T10:15:00+08:00",
        "participant": [
            {"actor": _ref("Patient", group.tw_patient.id), "status": "accepted"},
            {"actor": _ref("Practitioner", "dr-tm"), "status": "accepted"},
            {"actor": _ref("Location", "spec-m"), "status": "accepted"},
        ],
    }
    patient = group.tw_patient
    assert _status(group, group.doctor_tm, f"/fhir/Patient/{patient.id}") == 403
    report = _migrate(group.services, tmp_path / "mig", room, booking)
    assert (report.accepted, report.rejected) == (2, 0)
    assert _status(group, group.desk_tm, f"/fhir/Patient/{patient.id}") == 200
    assert _status(group, group.doctor_tm, f"/fhir/Patient/{patient.id}") == 200
    assert _status(group, group.doctor_tm, f"/fhir/Observation/{patient.observation}") == 200


def test_guard_a_room_the_system_loaded_before_records_0040_is_the_directorys_once_loaded_again(
    group: Group, tmp_path: Path
) -> None:
    """guard: a room the system loaded before records_0040 is kept as of an unknown
    writer too (nothing tells the two apart); once the system loads it again it is the
    group's directory, and the visits loaded in it register their patients there."""
    room = {"resourceType": "Location", "id": "spec-m", "name": "Specialist room",
            "managingOrganization": _ref("Organization", TM)}  # fmt: skip
    assert _migrate(group.services, tmp_path / "first", room).accepted == 1
    downgrade("records", group.services.engine, r0040_directory_unknown.down_revision)
    upgrade("records", group.services.engine, r0040_directory_unknown.revision)
    visit = _migrated_visit(group, "mig-visit-s", "spec-m")
    refused = _migrate(group.services, tmp_path / "refused", visit)
    assert (refused.accepted, refused.rejected) == (0, 1)
    # Loaded again (files of their own: a file loaded before is one the import has done),
    # the room is the directory's, and a visit of the next load registers its patient.
    renamed = {**room, "name": "Specialist room 2"}
    assert _migrate(group.services, tmp_path / "room", renamed).accepted == 1
    again = _migrate(group.services, tmp_path / "again", {**visit, "id": "mig-visit-s2"})
    assert (again.accepted, again.rejected) == (1, 0)
    assert _status(group, group.desk_tm, f"/fhir/Patient/{group.tw_patient.id}") == 200
