"""What the dashboard shows, gathered from the services: ledger health, the key
provider, and accesses per hour by clinic. Reads only; nothing here is patient data."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from carevault.bootstrap import Services
from carevault.clock import from_micros
from carevault.console.sessions import Viewer
from carevault.domain.roles import Role
from carevault.keys.provider import KeyProviderError
from carevault.ledger.activity import HOUR_US, hourly_accesses
from carevault.ledger.checkpoints import StoredCheckpoint
from carevault.ledger.runs import VerifyRun
from carevault.ledger.service import Ledger
from carevault.ledger.verifier import VerificationError, verify_cosignature
from carevault.web.console.chart import Series, series_colours

#: How far back to look for the latest checkpoint a witness cosigned.
COSIGNATURE_LOOKBACK = 50
MOST_SERIES = 8
SYSTEM = "system"
SEVERAL = "several"
OTHER = "other"


@dataclass(frozen=True)
class LedgerHealth:
    name: str
    entries: int
    checkpoint: StoredCheckpoint | None
    cosigned_us: int | None
    cosigned_by: str | None
    verified: VerifyRun | None
    running: VerifyRun | None


@dataclass(frozen=True)
class KeyStatus:
    provider: str | None
    reachable: bool
    active_version: int | None
    versions: tuple[int, ...]
    pending_rewrap: int | None
    lockdown: bool


@dataclass(frozen=True)
class Activity:
    hour_labels: list[str]
    series: list[Series]
    total: int

    def rows(self) -> list[tuple[str, list[int]]]:
        """The figures as a table: one row per hour, one column per series."""
        return [
            (label, [item.values[index] for item in self.series])
            for index, label in enumerate(self.hour_labels)
        ]


def _last_cosignature(ledger: Ledger) -> tuple[int | None, str | None]:
    """When a witness last cosigned a checkpoint of ``ledger`` (its own timestamp)."""
    keys = [witness.verifier_key() for witness in ledger.witnesses]
    if not keys:
        return None, None
    for checkpoint in ledger.checkpoints.recent(COSIGNATURE_LOOKBACK):
        for key in keys:
            try:
                seconds = verify_cosignature(checkpoint.note, key)
            except VerificationError:
                continue
            return seconds * 1_000_000, key.name
    return None, None


def ledger_health(svc: Services) -> list[LedgerHealth]:
    finished = svc.verify_runs.latest_finished()
    latest = svc.verify_runs.latest()
    found = []
    for ledger in svc.ledgers():
        name = ledger.store.name
        cosigned_us, witness = _last_cosignature(ledger)
        newest = latest.get(name)
        found.append(
            LedgerHealth(
                name=name,
                entries=ledger.store.head()[0],
                checkpoint=ledger.checkpoints.latest(),
                cosigned_us=cosigned_us,
                cosigned_by=witness,
                verified=finished.get(name),
                running=newest if newest is not None and newest.running else None,
            )
        )
    return found


def key_status(svc: Services) -> KeyStatus:
    lockdown = svc.containment.current().key_lockdown
    if svc.provider is None or svc.keys is None:
        return KeyStatus(None, False, None, (), None, lockdown)
    try:
        active = svc.provider.active_version()
        versions = tuple(svc.provider.versions())
        pending = svc.keys.pending_rewrap()
    except KeyProviderError:
        return KeyStatus(svc.provider.name, False, None, (), None, lockdown)
    return KeyStatus(svc.provider.name, True, active, versions, pending, lockdown)


def _clinic_of(
    actor: str, staff: dict[str, frozenset[str]], apps: dict[str, frozenset[str]]
) -> str:
    if actor.startswith("staff:"):
        clinics = staff.get(actor.removeprefix("staff:"), frozenset())
    elif actor.startswith("client:"):
        clinics = apps.get(actor.removeprefix("client:"), frozenset())
    else:
        return SYSTEM
    if len(clinics) == 1:
        return next(iter(clinics))
    return SEVERAL if clinics else SYSTEM


def activity(svc: Services, viewer: Viewer, names: dict[str, str], zone: ZoneInfo) -> Activity:
    """Accesses to patient records in the last 24 hours, per hour, by the clinic of
    whoever made them (a clinic manager sees only their own clinics)."""
    now_us = svc.now_us()
    start = now_us - now_us % HOUR_US - 23 * HOUR_US
    counts = hourly_accesses(svc.audit_ledger.store, svc.engine, start, now_us + 1)
    staff = {account.username: account.clinic_ids for account in svc.accounts.all()}
    apps = {app.client_id: app.clinic_ids for app in svc.clients.all()}
    table: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    for item in counts:
        clinic = _clinic_of(item.actor, staff, apps)
        if viewer.role is not Role.PRIVACY_OFFICER and clinic not in viewer.clinic_ids:
            continue
        index = (item.hour_us - start) // HOUR_US
        if 0 <= index < 24:
            table[clinic][index] += item.count
    ranked = sorted(table, key=lambda clinic: (-sum(table[clinic]), clinic))
    if len(ranked) > MOST_SERIES:
        rest = ranked[MOST_SERIES - 1 :]
        merged = [sum(table[clinic][index] for clinic in rest) for index in range(24)]
        ranked = [*ranked[: MOST_SERIES - 1], OTHER]
        table[OTHER] = merged
    labels = [names.get(clinic, clinic) for clinic in ranked]
    colours = series_colours(labels)
    series = [
        Series(label, tuple(table[clinic]), colours[label])
        for clinic, label in zip(ranked, labels, strict=True)
    ]
    hours = [
        datetime.strftime(from_micros(start + index * HOUR_US).astimezone(zone), "%H:00")
        for index in range(24)
    ]
    return Activity(hours, series, sum(sum(item.values) for item in series))
