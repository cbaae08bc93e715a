"""Incidents and their scope: whose data, which kinds, which clinics, with proof.

The entry points other packages use: ``incidents_for`` (the incident service over a
``Services``), ``declare_case`` (an incident from an alert case), ``compute_scope`` (a
new kept scope run), ``kept_scope`` (a kept run, checked) and ``scope_document`` (the
document of a new run, as ``incident scope`` prints it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from carevault.incidents.model import (
    Compromised,
    Incident,
    IncidentError,
    instant,
    instant_in,
    parse_compromised,
    parse_title,
    parse_window,
)
from carevault.incidents.naming import (
    UnknownAccount,
    UnknownClient,
    UnknownClinic,
    UnknownName,
    UnknownSession,
)
from carevault.incidents.report import lines_of
from carevault.incidents.runs import Covers, ScopeRun, ScopeRunMissing, ScopeRunTampered
from carevault.incidents.service import Actor, IncidentNotFound, Incidents, StepUpRequired

if TYPE_CHECKING:
    from carevault.bootstrap import Services

__all__ = [
    "Actor",
    "Compromised",
    "Incident",
    "IncidentError",
    "IncidentNotFound",
    "Incidents",
    "ScopeRun",
    "ScopeRunMissing",
    "ScopeRunTampered",
    "StepUpRequired",
    "UnknownAccount",
    "UnknownClient",
    "UnknownClinic",
    "UnknownName",
    "UnknownSession",
    "case_from_alert",
    "compute_scope",
    "declare_case",
    "incidents_for",
    "kept_scope",
    "scope_document",
]

#: Who runs a scope when no one is named (the notification helper, a script).
SCOPE_ACTOR = Actor("system:incident-scope")


def incidents_for(services: Services) -> Incidents:
    from carevault.incidents.registry import Directory

    return Incidents(
        services.engine,
        services.audit_ledger,
        services.containment,
        services.now_us,
        Directory(services),
        services.keys,
    )


def declare_case(
    services: Services, actor: Actor, case: dict[str, Any], alert_id: str | None = None
) -> Incident:
    """Declare an incident from a case {"title", "accounts", "clients", "addresses",
    "since", "until"} (an alert case, or the HTTP API's body); checked field by field."""
    if not isinstance(case, dict):
        raise IncidentError("the case must be an object")
    known = {"title", "accounts", "clients", "sessions", "addresses", "clinics", "database",
             "host", "key_service", "since", "until"}  # fmt: skip
    unknown = sorted(set(case) - known)
    if unknown:
        raise IncidentError(f"unknown field {unknown[0][:40]!r}")
    title = parse_title(case.get("title"))
    since_us, until_us = parse_window(case.get("since"), case.get("until"), zone_of(services))
    if alert_id is not None:
        _holds_the_alert(services, alert_id, since_us, until_us)
    compromised = parse_compromised(case)
    return incidents_for(services).declare(
        actor, title, compromised, since_us, until_us, alert_id=alert_id
    )


def case_from_alert(
    services: Services, alert_id: str, given: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The case of a detection alert, with what ``given`` adds (lists are joined; a value
    given wins, e.g. a ``since`` earlier than the alert was raised). IncidentError if no
    detection engine is installed or it knows no such alert."""
    import importlib

    try:
        detect = importlib.import_module("carevault.detect")
    except ModuleNotFoundError:
        raise IncidentError("no detection engine installed: declare by hand") from None
    find = getattr(detect, "alert_case", None)
    if find is None:
        raise IncidentError("the detection engine installed gives no alert cases")
    try:
        found = find(services, alert_id)
    except KeyError:
        raise IncidentError(f"no alert {alert_id}") from None
    except RuntimeError as error:
        raise IncidentError(f"alert {alert_id}: {error}") from None
    if not isinstance(found, dict):
        raise IncidentError(f"alert {alert_id}: no case")
    first = _first_access_us(services, alert_id)
    if first is not None and isinstance(found.get("since"), str):
        # An alert is raised after the accesses that raise it: the window opens at the
        # first access the alert's case covers, not when the alert was raised.
        zone = zone_of(services)
        found["since"] = min(
            found["since"], instant(first), key=lambda text: instant_in(text, zone, "since")
        )
    case = dict(given or {})
    for key, value in found.items():
        if isinstance(value, list):
            case[key] = sorted({*case.get(key, []), *value})
        elif case.get(key) is None and value is not None:
            case[key] = value
    return case


def zone_of(services: Services) -> ZoneInfo:
    """The group's time zone: what a time written without one means (``instant_in``)."""
    return ZoneInfo(services.settings.timezone)


def incidents_holding(services: Services, pseudonym: str, principal: str) -> list[int]:
    """The incidents not closed whose scope, computed now on behalf of ``principal`` (a
    kept, recorded run), lists the patient ``pseudonym`` in any tier or as changed: an
    erasure waits for them (``ContainmentService.erase_patient``)."""
    from carevault.incidents.model import Status

    held = []
    for found in incidents_for(services).all():
        if found.status is Status.CLOSED:
            continue
        document = scope_document(services, found.incident_id, actor=Actor(principal))
        lines = [line for _, line in lines_of(document)]
        if any(line.get("pseudonym") == pseudonym for line in lines):
            held.append(found.incident_id)
    return held


def _holds_the_alert(
    services: Services, alert_id: str, since_us: int, until_us: int | None
) -> None:
    """An incident declared from an alert holds the alert's own evidence: its window may
    open earlier than the case's first access (and end later), never later (nor end
    before it). Adversary round 58: the officer an alert was about declared from it a
    window opening after their reads (the console's and the CLI's ``since`` won over the
    case's), and its scope read "no patient affected" beside the alert."""
    own = case_from_alert(services, alert_id)
    first_text = own.get("since")
    if not isinstance(first_text, str):
        return
    first = instant_in(first_text, zone_of(services), "since")
    if since_us > first or (until_us is not None and until_us <= first):
        raise IncidentError(
            f"since: an incident declared from alert {alert_id} holds its evidence, "
            f"which begins {first_text}: the window may open earlier, never later"
        )
    # Round 59: an end after the first access but before the last (``--until`` on the
    # CLI or the API's body wins over the open case's) kept the first read of the case
    # and dropped the rest: the window must reach the case's last access too.
    last = _last_access_us(services, alert_id)
    if until_us is not None and last is not None and until_us <= last:
        raise IncidentError(
            f"until: an incident declared from alert {alert_id} holds its evidence, "
            f"which ends {instant(last)}: the window may end later, never earlier"
        )


def _first_access_us(services: Services, alert_id: str) -> int | None:
    """The time of the first ledger entry the alert's case covers, if detection says."""
    return _evidence_us(services, alert_id, last=False)


def _last_access_us(services: Services, alert_id: str) -> int | None:
    """The time of the last ledger entry the alert's case covers, if detection says."""
    return _evidence_us(services, alert_id, last=True)


def _evidence_us(services: Services, alert_id: str, *, last: bool) -> int | None:
    """The time of the first (or last) ledger entry the alert's case covers."""
    from carevault.ledger.events import AuditEvent

    detection = getattr(services, "detection", None)
    try:
        alert = detection.alerts.get(alert_id)  # type: ignore[union-attr]
        case = detection.alerts.list(case=alert.case_key)  # type: ignore[union-attr]
        positions = [
            position
            for a in case
            if (position := a.last_position if last else a.first_position) is not None
        ]
    except Exception:  # noqa: BLE001 - a detection engine without positions: keep its window
        return None
    if not positions:
        return None
    chosen = max(positions) if last else min(positions)
    data = services.audit_ledger.store.entry(chosen)
    return AuditEvent.from_canonical(data, seq=chosen).at_us if data is not None else None


def _incident_number(incident_id: int | str) -> int:
    if isinstance(incident_id, str):
        if not incident_id.strip().isdigit():
            raise IncidentError(f"no incident {incident_id[:40]!r}")
        return int(incident_id)
    return incident_id


def compute_scope(
    services: Services,
    incident_id: int | str,
    *,
    engine: str = "auto",
    actor: Actor = SCOPE_ACTOR,
) -> ScopeRun:
    """Compute the scope of ``incident_id`` now and keep it as the incident's next run:
    the whole document, its digest, who and up to which ledger positions, recorded in
    the audit ledger. What ``incident scope``, the API and the console's Recompute call."""
    from carevault.incidents.scope import compute

    incident_id = _incident_number(incident_id)
    incidents = incidents_for(services)
    incident = incidents.get(incident_id)
    # The sizes before anything is read: every entry before them was there to be read.
    covers = Covers(
        audit=services.audit_ledger.store.head()[0],
        unwrap=services.unwrap_ledger.store.head()[0],
    )
    document = compute(services, incident, engine)
    return incidents.record_scope(actor, incident_id, document, covers)


def kept_scope(services: Services, incident_id: int | str, number: int | None = None) -> ScopeRun:
    """Kept run ``number`` of ``incident_id`` (None: the latest), checked against its
    digest and ledger entry; ScopeRunMissing if there is none, ScopeRunTampered."""
    return incidents_for(services).scope_run(_incident_number(incident_id), number)


def scope_document(
    services: Services,
    incident_id: int | str,
    *,
    engine: str = "auto",
    actor: Actor = SCOPE_ACTOR,
) -> dict[str, Any]:
    """The scope of ``incident_id``: {"incident", "tiers", "counts"}; the run is kept, and
    ``incident.changes`` says what changed since the previous run."""
    document = compute_scope(services, incident_id, engine=engine, actor=actor).document
    assert document is not None  # noqa: S101 - a computed run carries its document
    return document
