"""Alerts as scripts poll them (``carevault alerts list --json``, ``GET /admin/alerts``):
only those after an id or changed since a time, each with when the activity it is about
happened and at which clinics, read from its ledger positions (integrator round 67).

A SOC polled every alert each time and kept the last id it saw; an alert gave ledger
positions but neither the time of the activity nor the clinic, which the SOC's tickets
are filed by. The fields added here are additive: every field scripts read before is
as it was (README, "For scripts").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from carevault.db import ROW_ID_MAX
from carevault.detect.alerts import Alert, as_dict, iso
from carevault.ledger.events import AuditEvent
from carevault.ledger.store import LedgerStore


class PollRefused(ValueError):
    """A filter that is not one (a malformed time, an id that is not a number): said to
    the caller (exit 2, ``400``), never taken for no filter or for an empty answer."""


@dataclass(frozen=True)
class AlertPoll:
    """Which alerts a poll asks for: each filter set must hold."""

    status: str | None = None
    #: Alerts numbered above this (0: every one).
    after_id: int = 0
    #: Alerts raised, widened or escalated at or after this (microseconds).
    changed_since_us: int | None = None


def poll(status: str | None, since: str | None, after: str | None, zone: tzinfo) -> AlertPoll:
    """The poll ``status``, ``since`` (ISO 8601; one without a zone is a time in
    ``zone``, as everywhere a person gives CareVault a time) and ``after`` (an alert id,
    as ``alerts list --json`` gives them) ask for. ``PollRefused`` for a bad value."""
    after_id = 0
    if after is not None:
        if not (after.isascii() and after.isdigit()) or len(after) > 18:
            raise PollRefused(f"after is an alert id, a number: {after[:40]!r} is not one")
        # Past the largest id a row can have, no alert is newer (the driver would
        # overflow on the number itself).
        after_id = min(int(after), ROW_ID_MAX)
    changed_since_us = None
    if since is not None:
        from carevault.incidents.model import IncidentError, instant_in

        try:
            changed_since_us = instant_in(since, zone, "since")
        except IncidentError as refused:
            raise PollRefused(str(refused)) from None
    return AlertPoll(status, after_id, changed_since_us)


def described(alerts: Iterable[Alert], ledger: LedgerStore) -> list[dict[str, Any]]:
    """Each alert as ``as_dict`` gives it, with what its ledger positions say: the
    time of its first and last entry (``first_activity_at``, ``last_activity_at``), the
    clinics the acting login worked at in them (``clinics``, Organization ids), and when
    it last changed (``updated_at``). An alert without audit-ledger positions (a gate
    bypass, judged from the unwrap ledger) has None for both times and no clinics."""
    listed = list(alerts)
    positions = [
        seq
        for alert in listed
        for seq in (alert.first_position, alert.last_position)
        if seq is not None
    ]
    entries = {
        seq: AuditEvent.from_canonical(data, seq=seq)
        for seq, data in ledger.entries_at(positions).items()
    }
    answers: list[dict[str, Any]] = []
    for alert in listed:
        first = entries.get(alert.first_position) if alert.first_position is not None else None
        last = entries.get(alert.last_position) if alert.last_position is not None else None
        clinics = sorted({c for event in (first, last) if event for c in event.clinic_ids})
        answers.append(
            {
                **as_dict(alert),
                "updated_at": iso(alert.updated_us),
                "first_activity_at": iso(first.at_us) if first else None,
                "last_activity_at": iso(last.at_us) if last else None,
                "clinics": clinics,
            }
        )
    return answers
