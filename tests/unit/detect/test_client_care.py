"""Care a client app made (adversary round 82): it explains no member of staff's VIP
read, and a client creating or rewriting care for many patients in ten minutes is
``client-care`` (adversary rounds 82 and 83)."""

from __future__ import annotations

import pytest

from carevault.detect.model import MINUTE_US, Severity
from carevault.detect.signals import Context
from tests.unit.detect.test_signals import MORNING, Feed

CREATE = "fhir:resource:create"
UPDATE = "fhir:resource:update"


def test_a_vip_read_only_client_made_care_explains_is_medium() -> None:
    feed = Feed()
    feed.context = Context(vips=frozenset({"star"}))
    [found] = feed.entry(MORNING, "star", explained=True, near_care=True, client_care=True)
    assert (found.detector, found.severity) == ("vip", Severity.MEDIUM)
    assert "client app" in found.explanation
    assert feed.entry(MORNING + 1, "star", explained=True, near_care=True) == []
    assert feed.entry(MORNING + 2, "other", explained=True, client_care=True) == []


def test_a_client_reading_a_vip_it_booked_is_judged_by_care_alone() -> None:
    feed = Feed("integration")
    feed.context = Context(vips=frozenset({"star"}))
    found = feed.entry(MORNING, "star", principal="client:portal", explained=True, client_care=True)
    assert "vip" not in {f.detector for f in found}


def book(
    feed: Feed, at_us: int, patient: str, resource_type: str = "Appointment", tag: str = CREATE
) -> None:
    feed.entry(
        at_us,
        patient,
        tag=tag,
        principal="client:kiosk",
        client_id="kiosk",
        resource_type=resource_type,
    )


def test_a_client_booking_past_the_floor_in_ten_minutes_is_client_care() -> None:
    feed = Feed("integration")
    feed.detectors.client_care_per_10_minutes = 40
    for n in range(40):
        book(feed, MORNING + n * 1_000_000, f"p{n}")
        book(feed, MORNING + n * 1_000_000 + 1, f"p{n}")  # the same patient twice: one
    assert "client-care" not in feed.detectors_fired()
    book(feed, MORNING + 41 * 1_000_000, "p40")
    [found] = [f for f in feed.found if f.detector == "client-care"]
    assert found.severity is Severity.MEDIUM
    assert "41 distinct patients" in found.explanation
    assert len(found.patients) == 41 and found.first_position == 0


def test_a_portal_booking_through_the_day_is_no_client_care() -> None:
    feed = Feed("integration")
    feed.detectors.client_care_per_10_minutes = 40
    for n in range(400):
        book(feed, MORNING + n * MINUTE_US // 3, f"p{n}")  # 30 in each ten minutes
    assert "client-care" not in feed.detectors_fired()


@pytest.mark.parametrize(
    ("resource_type", "tag"),
    [("Observation", CREATE), ("Observation", UPDATE), ("Appointment", "fhir:resource:delete")],
    ids=["other-records", "other-records-updated", "bookings-deleted"],
)
def test_what_a_client_writes_but_care_is_not_counted(resource_type: str, tag: str) -> None:
    """Other records a client writes are no care; a booking deleted ends care."""
    feed = Feed("integration")
    feed.detectors.client_care_per_10_minutes = 10
    for n in range(30):
        book(feed, MORNING + n, f"p{n}", resource_type=resource_type, tag=tag)
    assert "client-care" not in feed.detectors_fired()


def test_a_client_rewriting_many_bookings_in_ten_minutes_is_client_care() -> None:
    """Adversary round 83: a client's secret naming a doctor on sixty of the desk's old
    bookings (``PUT``) opened them to him as sixty new bookings would, and nothing
    counted it. A version of a record of care is care the client makes; creates and
    updates of one patient count once."""
    feed = Feed("integration")
    feed.detectors.client_care_per_10_minutes = 40
    for n in range(40):
        book(feed, MORNING + n * 1_000_000, f"p{n}", tag=UPDATE)
        book(feed, MORNING + n * 1_000_000 + 1, f"p{n}")  # and booked anew: one patient
    assert "client-care" not in feed.detectors_fired()
    book(feed, MORNING + 41 * 1_000_000, "p40", tag=UPDATE)
    [found] = [f for f in feed.found if f.detector == "client-care"]
    assert "created or rewrote care" in found.explanation
    assert "41 distinct patients" in found.explanation
