"""Reports and clocks from the running system: reads what the pure ``risk`` and
``reports`` need (who is a minor, where people live, what the send job did) and opens
each regulator's clock for the incident."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from carevault.clock import from_micros, to_micros
from carevault.notify import store as states
from carevault.notify.reports import (
    REGULATORS,
    TITLES,
    NoticeTally,
    Organisation,
    build_report,
    deadline,
)
from carevault.notify.risk import Assessment, assess
from carevault.notify.scope import TIERS, Scope
from carevault.notify.service import reader_of, site_of
from carevault.notify.store import NoticeStore

if TYPE_CHECKING:
    from carevault.bootstrap import Services


def open_clocks(services: Services, scope: Scope) -> None:
    """Each regulator's clock for the incident, from the moment it was declared."""
    store = NoticeStore(services.engine)
    incident = scope.incident
    for regulator in REGULATORS:
        due = deadline(regulator, incident.declared_at, services.settings.notify_pcpd_days)
        store.open_clock(
            incident.incident_id,
            regulator,
            # Not the incident's title: an officer's words, sealed in the incident (round 67).
            f"{TITLES[regulator]}: incident {incident.incident_id}",
            to_micros(incident.declared_at),
            to_micros(due),
        )


def assessment_of(services: Services, scope: Scope) -> tuple[Assessment, Counter[str]]:
    """The risk assessment, reading each patient of the scope through the gate once.

    Whether a person is a minor and where they live come from the record their one notice
    goes out from (``contacts.contact_of``), as the notice itself does: a duplicate record
    a compromised principal made (a child's birth date, another region) counts for
    nothing while the person has a record of their own (review of one notice per person).
    """
    people = list(scope.notices(TIERS))
    reader = reader_of(services)
    minors: set[str] = set()
    region_of: dict[str, str] = {}
    for start in range(0, len(people), 200):
        page = people[start : start + 200]
        found = reader.people(page, scope.changed)
        for notice in page:
            person = found.get(notice.patient_id)
            if person is None:
                continue
            if person.recipient.minor:
                minors.update(notice.covers)
            if person.recipient.region:
                region_of[notice.who] = person.recipient.region
    regions = Counter(region_of.values())
    return assess(scope, minors=frozenset(minors), regions=regions), regions


def tally_of(services: Services, incident_id: str) -> NoticeTally:
    store = NoticeStore(services.engine)
    counts = store.counts(incident_id)
    sent: Counter[str] = Counter()
    for (state, channel, _), count in counts.items():
        if state == states.SENT:
            sent[channel] += count
    rows = store.in_state(incident_id, states.SENT)
    times = sorted(row.sent_us for row in rows if row.sent_us)

    def total(state: str) -> int:
        return sum(n for (s, _, _), n in counts.items() if s == state)

    return NoticeTally(
        sent_by_channel=dict(sent),
        deceased=total(states.DECEASED),
        unreachable=total(states.UNREACHABLE) + total(states.MISSING),
        pending=total(states.PENDING) + total(states.SENDING),
        first_sent=from_micros(times[0]) if times else None,
        last_sent=from_micros(times[-1]) if times else None,
    )


def make_report(services: Services, scope: Scope, regulator: str) -> dict[str, Any]:
    settings = services.settings
    open_clocks(services, scope)
    assessment, regions = assessment_of(services, scope)
    organisation = Organisation(
        name=settings.notify_group_name,
        contact_name=settings.notify_contact_name,
        contact_phone=settings.notify_hotline,
        contact_email=settings.notify_contact_email,
        site=site_of(settings),
    )
    return build_report(
        regulator,
        scope,
        assessment,
        organisation,
        tally_of(services, scope.incident.incident_id),
        regions=regions,
        pcpd_days=settings.notify_pcpd_days,
        now=services.clock().astimezone(UTC),
        zone=ZoneInfo(settings.timezone),
        alerted_at=_alerted_at(services, scope.incident.alert_id),
    )


def _alerted_at(services: Services, alert_id: str | None) -> datetime | None:
    """When the alert an incident was declared from was raised (None: no alert, or one
    this group does not hold)."""
    if alert_id is None or services.detection is None:
        return None
    try:
        alert = services.detection.alerts.get(alert_id)
    except (KeyError, ValueError):
        return None
    return from_micros(alert.raised_us).astimezone(UTC)
