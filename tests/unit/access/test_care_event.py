"""What a record says about care (``access.care.care_event``): where a visit or booking
names its clinic itself, and where only through a room or role placed there."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from carevault.access.care import care_event, event_at
from carevault.bulk.checking import _sendable, received
from carevault.fhir.derived import Derived, derive
from carevault.fhir.registry import RESOURCE_TYPES

START = "2026-12-05T10:00:00+08:00"


def _visit(**more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": START},
        **more,
    }


def _booking(*actors: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "start": START,
        "participant": [{"actor": {"reference": actor}} for actor in ("Patient/p1", *actors)],
    }


@pytest.mark.parametrize(
    ("resource", "through_directory"),
    [
        (_visit(serviceProvider={"reference": "Organization/clinic-tm"}), False),
        (
            _visit(
                serviceProvider={"reference": "Organization/clinic-tm"},
                location=[{"location": {"reference": "Location/ward-m"}}],
            ),
            False,
        ),
        (_visit(location=[{"location": {"reference": "Location/ward-m"}}]), True),
        (_booking("Organization/clinic-tm"), False),
        (_booking("PractitionerRole/role-m"), True),
        (_booking("Location/ward-m", "Practitioner/dr-tm"), True),
    ],
    ids=[
        "visit-own-organization",
        "visit-own-organization-and-room",
        "visit-room-only",
        "booking-own-organization",
        "booking-role-only",
        "booking-room-only",
    ],
)
def test_a_clinic_reached_only_through_a_room_or_role_is_told_apart(
    resource: dict[str, Any], through_directory: bool
) -> None:
    event = care_event(resource["resourceType"], resource, "clinic-tm", UTC)

    assert event is not None
    assert event.through_directory is through_directory


def test_a_referral_names_its_clinic_itself() -> None:
    referral = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": START,
        "performer": [{"reference": "Organization/clinic-tw"}],
    }
    event = care_event("ServiceRequest", referral, "clinic-tm", UTC)

    assert event is not None and event.clinic_id == "clinic-tw"
    assert not event.through_directory


_REFERRAL = {
    "resourceType": "ServiceRequest",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "authoredOn": START,
    "performer": [{"reference": "Practitioner/dr-tm"}, {"reference": "Organization/clinic-tm"}],
}
_TEAM = {
    "resourceType": "CareTeam",
    "status": "active",
    "subject": {"reference": "Patient/p1"},
    "period": {"start": START, "end": "2027-01-05"},
    "participant": [{"member": {"reference": "Practitioner/dr-tm"}}],
}


@pytest.mark.parametrize(
    "resource",
    [
        _visit(serviceProvider={"reference": "Organization/clinic-tm"}),
        _visit(location=[{"location": {"reference": "Location/ward-m"}}]),
        _visit(status="cancelled"),
        _booking("Organization/clinic-tm", "Practitioner/dr-b", "Practitioner/dr-a"),
        _booking("PractitionerRole/role-m"),
        _REFERRAL,
        {**_REFERRAL, "status": "completed"},
        {**_REFERRAL, "performer": []},
        _TEAM,
        {"resourceType": "Observation", "status": "final"},
    ],
)
@pytest.mark.parametrize("clinic_id", [None, "clinic-tm", "clinic-m"])
def test_the_care_a_bulk_load_works_out_beside_the_writer_is_the_care_the_writer_reads(
    resource: dict[str, Any], clinic_id: str | None
) -> None:
    """A bulk load's checking processes read what a record says about care (``Derived.
    care``), and the writer puts it together with the record's clinic: the same event
    as read from the record where it is written, having crossed between processes."""
    rt = RESOURCE_TYPES[resource["resourceType"]]
    worked_out = received(_sendable(derive(rt, resource, UTC)))
    assert isinstance(worked_out, Derived)
    expected = care_event(rt.name, resource, clinic_id, UTC)
    assert (None if worked_out.care is None else event_at(worked_out.care, clinic_id)) == expected
