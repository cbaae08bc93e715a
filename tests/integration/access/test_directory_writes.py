"""Directory records (clinics, their locations, schedules and slots) are changed only by
the clinic they belong to. On SQLite and PostgreSQL.

Hole: the policy granted any write on a record that is no one's patient data to any role
holding the category's write right, whatever clinic the record belonged to. A front desk
at one clinic could rename or delete another clinic's Organization, move its Locations
to their own clinic, and delete or book out its Slots (its patients' bookings vanish,
its telephone number changes to the insider's). Reading the directory stays open to all;
writing it needs the record's clinic (before and after the change) to be one of the
writer's, unless it is a clinic of no one here (an outside hospital named by an import).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.group import TM, TW, Group, build_group
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.postgres

LOCATION = {
    "resourceType": "Location",
    "id": "loc-tw",
    "name": "Tsuen Wan clinic, 2/F",
    "managingOrganization": {"reference": f"Organization/{TW}"},
}
SCHEDULE = {
    "resourceType": "Schedule",
    "id": "sched-tw",
    "actor": [{"reference": "Location/loc-tw"}],
}
SLOT = {
    "resourceType": "Slot",
    "id": "slot-tw",
    "schedule": {"reference": "Schedule/sched-tw"},
    "status": "free",
    "start": "2026-12-03T09:00:00+08:00",
    "end": "2026-12-03T09:15:00+08:00",
}


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    for built in build_group(services, api):
        for body in (LOCATION, SCHEDULE, SLOT):
            path = f"/fhir/{body['resourceType']}/{body['id']}"
            assert api.put_json(path, body).status_code == 201
        yield built


def _refused(group: Group, method: str, path: str, body: Any = None) -> None:
    response = group.call(group.desk_tm, method, path, body)
    assert response.status_code == 403, (method, path, response.text)
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_front_desk_cannot_change_another_clinics_directory(group: Group) -> None:
    clinic = group.call(group.desk_tm, "GET", f"/fhir/Organization/{TW}")
    assert clinic.status_code == 200  # reading the directory stays open
    renamed = {**clinic.json(), "name": "Closed - call +852 5555 0000"}
    renamed.pop("meta")

    _refused(group, "PUT", f"/fhir/Organization/{TW}", renamed)
    _refused(group, "DELETE", f"/fhir/Organization/{TW}")
    moved = {**LOCATION, "managingOrganization": {"reference": f"Organization/{TM}"}}
    _refused(group, "PUT", "/fhir/Location/loc-tw", moved)
    _refused(group, "PUT", "/fhir/Slot/slot-tw", {**SLOT, "status": "busy"})
    _refused(group, "DELETE", "/fhir/Slot/slot-tw")
    _refused(group, "DELETE", "/fhir/Schedule/sched-tw")
    new_slot = {**SLOT, "start": "2026-12-03T10:00:00+08:00", "end": "2026-12-03T10:15:00+08:00"}
    new_slot.pop("id")
    _refused(group, "POST", "/fhir/Slot", new_slot)

    own = group.call(group.desk_tw, "GET", f"/fhir/Organization/{TW}").json()
    assert own["name"] == TW and own["meta"]["versionId"] == "1"
    slot = group.call(group.desk_tw, "GET", "/fhir/Slot/slot-tw").json()
    assert slot["status"] == "free" and slot["meta"]["versionId"] == "1"
    location = group.call(group.desk_tw, "GET", "/fhir/Location/loc-tw").json()
    assert location["managingOrganization"]["reference"] == f"Organization/{TW}"
    denied = [
        e
        for e in group.events()
        if e.outcome is Outcome.DENIED
        and e.principal == f"staff:{group.desk_tm.account.username}"
        and e.tag in (Tag.FHIR_UPDATE, Tag.FHIR_CREATE, Tag.FHIR_DELETE)
    ]
    assert len(denied) == 7


def test_a_clinic_still_keeps_its_own_directory_and_names_outside_providers(
    group: Group,
) -> None:
    slot = group.call(group.desk_tw, "PUT", "/fhir/Slot/slot-tw", {**SLOT, "status": "busy"})
    assert slot.status_code == 200, slot.text
    location = {
        "resourceType": "Location",
        "name": "Tuen Mun clinic, G/F",
        "managingOrganization": {"reference": f"Organization/{TM}"},
    }
    assert group.call(group.desk_tm, "POST", "/fhir/Location", location).status_code == 201
    # A hospital no one here works at is no clinic's: anyone writing may name it.
    hospital = {"resourceType": "Organization", "id": "hosp-qeh", "name": "QEH"}
    created = group.call(group.desk_tm, "PUT", "/fhir/Organization/hosp-qeh", hospital)
    assert created.status_code == 201, created.text


def test_a_practitioner_who_works_here_is_changed_only_by_their_clinics_staff(
    group: Group,
) -> None:
    """A front desk re-writing the record of a doctor at another clinic (the number
    patients are told to call, the name an app shows for the signed-in doctor)."""
    doctor = group.call(group.desk_tm, "GET", "/fhir/Practitioner/dr-tw").json()
    doctor.pop("meta")
    doctor["telecom"] = [{"system": "phone", "value": "+852 5555 0000"}]

    _refused(group, "PUT", "/fhir/Practitioner/dr-tw", doctor)
    _refused(group, "DELETE", "/fhir/Practitioner/dr-tw")

    assert group.call(group.desk_tw, "PUT", "/fhir/Practitioner/dr-tw", doctor).status_code == 200
    own = {**doctor, "id": "dr-tm"}
    assert group.call(group.desk_tm, "PUT", "/fhir/Practitioner/dr-tm", own).status_code == 200
    # A practitioner no account here is (a hospital doctor in an imported history): anyone.
    outside = {"resourceType": "Practitioner", "id": "dr-qeh", "name": [{"family": "Ho"}]}
    assert group.call(group.desk_tm, "PUT", "/fhir/Practitioner/dr-qeh", outside).status_code == 201


def test_no_member_of_staff_renames_or_deletes_a_clinics_own_record(
    group: Group, api: FhirTestClient
) -> None:
    """A front desk renaming its own clinic "Closed - call +852 5555 0000" (the name and
    number clinic apps show for it), or deleting it: the clinic's staff keep its
    locations, schedules and slots, but its own record is the system's (seeding) or the
    directory integration's."""
    clinic = group.call(group.desk_tw, "GET", f"/fhir/Organization/{TW}").json()
    clinic.pop("meta")
    renamed = {**clinic, "name": "Closed - call +852 5555 0000"}
    manager = make_staff(group.services, Role.CLINIC_MANAGER, [TW])
    for who in (group.desk_tw, group.doctor_tw, manager, group.officer):
        for method, body in (("PUT", renamed), ("DELETE", None)):
            response = group.call(who, method, f"/fhir/Organization/{TW}", body)
            assert response.status_code == 403, (method, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"
    kept = group.call(group.desk_tw, "GET", f"/fhir/Organization/{TW}").json()
    assert kept["name"] == TW and kept["meta"]["versionId"] == "1"
    # The system (the test's own API, as seeding writes it) still keeps it.
    updated = {**clinic, "telecom": [{"system": "phone", "value": "+852 2400 0000"}]}
    assert api.put_json(f"/fhir/Organization/{TW}", updated).status_code == 200


#: A doctor's own timetable, as clinic apps often keep it: the Schedule names only the
#: doctor (no Location, no Organization), so its head names no clinic.
DOCTORS_SCHEDULE = {
    "resourceType": "Schedule",
    "id": "sched-drtw",
    "actor": [{"reference": "Practitioner/dr-tw"}],
}
DOCTORS_SLOT = {
    "resourceType": "Slot",
    "id": "slot-drtw",
    "schedule": {"reference": "Schedule/sched-drtw"},
    "status": "free",
    "start": "2026-12-03T09:00:00+08:00",
    "end": "2026-12-03T09:15:00+08:00",
}
DOCTORS_ROLE = {
    "resourceType": "PractitionerRole",
    "id": "role-drtw",
    "active": True,
    "practitioner": {"reference": "Practitioner/dr-tw"},
    "telecom": [{"system": "phone", "value": "+852 2411 0000"}],
}


def test_a_doctors_own_schedule_slots_and_role_are_kept_by_their_clinics_staff(
    group: Group,
) -> None:
    """Hole (found by an insider's probe): a directory record naming only a doctor of
    the group was no clinic's, so another clinic's desk could book out or delete the
    doctor's slots, delete their schedule, or give their role the insider's number."""
    for body in (DOCTORS_SCHEDULE, DOCTORS_SLOT, DOCTORS_ROLE):
        path = f"/fhir/{body['resourceType']}/{body['id']}"
        made = group.call(group.desk_tw, "PUT", path, body)
        assert made.status_code == 201, made.text

    _refused(group, "PUT", "/fhir/Slot/slot-drtw", {**DOCTORS_SLOT, "status": "busy"})
    _refused(group, "DELETE", "/fhir/Slot/slot-drtw")
    _refused(group, "DELETE", "/fhir/Schedule/sched-drtw")
    # Naming another actor instead is judged on what is stored, too.
    moved = {**DOCTORS_SCHEDULE, "actor": [{"reference": "Practitioner/dr-qeh"}]}
    _refused(group, "PUT", "/fhir/Schedule/sched-drtw", moved)
    phished = {**DOCTORS_ROLE, "telecom": [{"system": "phone", "value": "+852 5555 0000"}]}
    _refused(group, "PUT", "/fhir/PractitionerRole/role-drtw", phished)
    _refused(group, "DELETE", "/fhir/PractitionerRole/role-drtw")
    # Nor may they make one for the doctor, or a slot in the doctor's timetable.
    other = {**DOCTORS_ROLE, "id": "role-drtw-2"}
    _refused(group, "PUT", "/fhir/PractitionerRole/role-drtw-2", other)
    extra = {**DOCTORS_SLOT, "id": "slot-drtw-2", "start": "2026-12-03T10:00:00+08:00"}
    extra["end"] = "2026-12-03T10:15:00+08:00"
    _refused(group, "PUT", "/fhir/Slot/slot-drtw-2", extra)

    for resource_type, rid in (
        ("Slot", "slot-drtw"),
        ("Schedule", "sched-drtw"),
        ("PractitionerRole", "role-drtw"),
    ):
        kept = group.call(group.desk_tm, "GET", f"/fhir/{resource_type}/{rid}")
        assert kept.status_code == 200 and kept.json()["meta"]["versionId"] == "1", kept.text
    for rid in ("role-drtw-2",):
        assert group.call(group.desk_tw, "GET", f"/fhir/PractitionerRole/{rid}").status_code == 404

    # The doctor's own clinic keeps them.
    busy = group.call(
        group.desk_tw, "PUT", "/fhir/Slot/slot-drtw", {**DOCTORS_SLOT, "status": "busy"}
    )
    assert busy.status_code == 200, busy.text
    own_role = group.call(group.desk_tw, "PUT", "/fhir/PractitionerRole/role-drtw", phished)
    assert own_role.status_code == 200, own_role.text
    assert group.call(group.desk_tw, "DELETE", "/fhir/Slot/slot-drtw").status_code == 204


def test_a_schedule_of_an_outside_practitioner_stays_open(group: Group) -> None:
    """A doctor no account here is (an imported history's hospital doctor) is no
    clinic's: their timetable and role stay anyone's to write, as before."""
    schedule = {
        **DOCTORS_SCHEDULE,
        "id": "sched-qeh",
        "actor": [{"reference": "Practitioner/dr-qeh"}],
    }
    slot = {**DOCTORS_SLOT, "id": "slot-qeh", "schedule": {"reference": "Schedule/sched-qeh"}}
    for body in (schedule, slot):
        path = f"/fhir/{body['resourceType']}/{body['id']}"
        assert group.call(group.desk_tw, "PUT", path, body).status_code == 201
    busy = group.call(group.desk_tm, "PUT", "/fhir/Slot/slot-qeh", {**slot, "status": "busy"})
    assert busy.status_code == 200, busy.text


def tuen_mun_room(group: Group) -> dict[str, str]:
    """A reference to a room Tuen Mun's front desk creates at its own clinic."""
    place = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Location",
        {
            "resourceType": "Location",
            "name": "Tuen Mun clinic, 3/F",
            "managingOrganization": {"reference": f"Organization/{TM}"},
        },
    )
    assert place.status_code == 201, place.text
    return {"reference": f"Location/{place.json()['id']}"}


def test_a_clinic_cannot_say_another_clinics_doctor_works_or_takes_bookings_there(
    group: Group,
) -> None:
    """Integrator review: a front desk created a PractitionerRole saying another clinic's
    doctor works at its own clinic (201). It opened nothing (where a doctor works is
    their staff account's clinics), but apps that route bookings by PractitionerRole, or
    offer a Schedule's slots, showed and booked what is not so. A role or timetable
    placed at a clinic of the group names only the group's practitioners who work there;
    outside practitioners, and the doctor's own clinic, are as before (the directory's
    integration is not held to it: ``tests/unit/domain/test_policy.py``)."""
    room = tuen_mun_room(group)
    at_tm = {"organization": {"reference": f"Organization/{TM}"}}
    role = {"resourceType": "PractitionerRole", "active": True, **at_tm}
    stranger = {"practitioner": {"reference": "Practitioner/dr-tw"}}
    schedule = {"resourceType": "Schedule", "actor": [room, stranger["practitioner"]]}

    for path, body in (
        ("/fhir/PractitionerRole", {**role, **stranger}),
        ("/fhir/Schedule", schedule),
    ):
        refused = group.call(group.desk_tm, "POST", path, body)
        assert refused.status_code == 403, refused.text
        assert "dr-tw" in refused.json()["issue"][0]["diagnostics"]
    # An update that swaps in another clinic's doctor is refused as a create would be.
    own = {**role, "practitioner": {"reference": "Practitioner/dr-tm"}}
    made = group.call(group.desk_tm, "POST", "/fhir/PractitionerRole", own)
    assert made.status_code == 201, made.text
    swapped = {**own, **stranger, "id": made.json()["id"]}
    _refused(group, "PUT", f"/fhir/PractitionerRole/{made.json()['id']}", swapped)
    kept = group.call(group.desk_tm, "GET", f"/fhir/PractitionerRole/{made.json()['id']}")
    assert kept.json()["practitioner"]["reference"] == "Practitioner/dr-tm"
    listed = group.call(group.desk_tm, "GET", "/fhir/PractitionerRole?practitioner=dr-tw")
    assert "entry" not in listed.json()

    # An outside practitioner, and the doctor at their own clinic, are placed as before.
    outside = {**role, "practitioner": {"reference": "Practitioner/dr-qeh"}}
    assert group.call(group.desk_tm, "POST", "/fhir/PractitionerRole", outside).status_code == 201
    at_tw = {**role, **stranger, "organization": {"reference": f"Organization/{TW}"}}
    assert group.call(group.desk_tw, "POST", "/fhir/PractitionerRole", at_tw).status_code == 201
    denied = [
        e
        for e in group.events()
        if e.outcome is Outcome.DENIED
        and e.principal == f"staff:{group.desk_tm.account.username}"
        and e.tag in (Tag.FHIR_UPDATE, Tag.FHIR_CREATE)
    ]
    assert len(denied) == 3


def test_a_schedule_cannot_name_another_clinics_doctor_through_their_role(
    group: Group,
) -> None:
    """Review of 5348b0a: a Schedule's actor may be a PractitionerRole as well as a
    Practitioner. Tuen Mun's front desk put Tsuen Wan's doctor in a timetable at its own
    clinic by naming the doctor's Tsuen Wan role (201): apps offering the Schedule's
    slots booked at Tuen Mun a doctor who does not work there."""
    room = tuen_mun_room(group)
    role = group.call(
        group.desk_tw,
        "POST",
        "/fhir/PractitionerRole",
        {
            "resourceType": "PractitionerRole",
            "organization": {"reference": f"Organization/{TW}"},
            "practitioner": {"reference": "Practitioner/dr-tw"},
        },
    )
    assert role.status_code == 201, role.text
    their_role = {"reference": f"PractitionerRole/{role.json()['id']}"}

    refused = group.call(
        group.desk_tm,
        "POST",
        "/fhir/Schedule",
        {"resourceType": "Schedule", "actor": [room, their_role]},
    )
    assert refused.status_code == 403, refused.text
    assert "dr-tw" in refused.json()["issue"][0]["diagnostics"]
    # A role that is not (or no longer) stored names no one.
    unknown = {"reference": "PractitionerRole/no-such-role"}
    nobody = {"resourceType": "Schedule", "actor": [room, unknown]}
    assert group.call(group.desk_tm, "POST", "/fhir/Schedule", nobody).status_code == 201
    # The doctor's own clinic still names them through their role.
    at_tw = {"resourceType": "Schedule", "actor": [{"reference": "Location/loc-tw"}, their_role]}
    assert group.call(group.desk_tw, "POST", "/fhir/Schedule", at_tw).status_code == 201
