"""Alerts as stored: raised (deduplicated, escalated), listed, acknowledged, dismissed.

One alert per detector, subject and period (``Finding.dedup_key``): a second finding for
the same key widens the alert (more patients, a later ledger position) and may raise its
severity, but never makes a second alert. Alerts are grouped into one case per account
(or client app, or system principal). Patients are kept by pseudonym only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from carevault.db import ROW_ID_MAX, read_transaction, write_transaction
from carevault.detect.model import Finding, Severity
from carevault.detect.tables import detect_alert, detect_alert_patient


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"


OPEN = AlertStatus.OPEN.value
STATUSES = tuple(status.value for status in AlertStatus)
#: At most this many pseudonyms are listed on one alert (its page); every one is kept in
#: ``detect_alert_patient``, which the count is of.
KEPT_PATIENTS = 5000


@dataclass(frozen=True)
class Alert:
    alert_id: int
    case_key: str
    detector: str
    severity: Severity
    account: str | None
    role: str | None
    client: str | None
    session: str | None
    source_address: str | None
    patient_count: int
    patients: tuple[str, ...]
    first_position: int | None
    last_position: int | None
    raised_us: int
    updated_us: int
    action: str | None
    containment_id: int | None
    status: str
    explanation: str
    handled_by: str | None
    #: Detector, subject and period (``Finding.dedup_key``): one alert per key.
    dedup_key: str | None = None

    @property
    def principal(self) -> str | None:
        if self.account:
            return f"staff:{self.account}"
        if self.client:
            return f"client:{self.client}"
        return None


@dataclass(frozen=True)
class Raised:
    """An alert that is new, or whose severity went up: what responses act on."""

    alert: Alert
    new: bool
    #: The audit-ledger position of the entry that raised (or escalated) it.
    trigger: int | None = None


def iso(at_us: int) -> str:
    """Always with its microseconds: ``isoformat()`` left them out on a whole second, and
    a script reading the other alerts' times with one format failed on that one."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=at_us)
    return moment.isoformat(timespec="microseconds")


def as_dict(alert: Alert) -> dict[str, Any]:
    """The agreed shape (``carevault alerts list --json``, ``GET /admin/alerts``)."""
    return {
        "id": str(alert.alert_id),
        "case": alert.case_key,
        "detector": alert.detector,
        "severity": str(alert.severity),
        "account": alert.account,
        "role": alert.role,
        "client": alert.client,
        "source_address": alert.source_address,
        "patient_count": alert.patient_count,
        "first_position": alert.first_position,
        "last_position": alert.last_position,
        "raised_at": iso(alert.raised_us),
        "action": alert.action,
        "status": alert.status,
        "explanation": alert.explanation,
    }


def _alert(row: Any) -> Alert:
    m = row._mapping
    return Alert(
        alert_id=int(m["alert_id"]),
        case_key=m["case_key"],
        detector=m["detector"],
        severity=Severity(m["severity"]),
        account=m["account"],
        role=m["role"],
        client=m["client"],
        session=m["session"],
        source_address=m["source_address"],
        patient_count=int(m["patient_count"]),
        patients=tuple(json.loads(m["patients"])),
        first_position=m["first_position"],
        last_position=m["last_position"],
        raised_us=int(m["raised_us"]),
        updated_us=int(m["updated_us"]),
        action=m["action"],
        containment_id=m["containment_id"],
        status=m["status"],
        explanation=m["explanation"],
        handled_by=m["handled_by"],
        dedup_key=m["dedup_key"],
    )


def who(principal: str | None, client_id: str | None) -> tuple[str | None, str | None]:
    """(account username, client id) of an entry's principal."""
    if principal and principal.startswith("staff:"):
        return principal.removeprefix("staff:"), client_id
    if principal and principal.startswith("client:"):
        return None, principal.removeprefix("client:")
    return None, client_id


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(
        self,
        connection: Connection,
        findings: list[Finding],
        now_us: int,
        names: dict[str, str] | None = None,
        seen: dict[str, Alert] | None = None,
    ) -> list[Raised]:
        """Inside the detectors' transaction: record ``findings``; return those that are
        new or escalated. ``names`` maps principals such as ``staff-account:<id>`` to
        usernames. ``seen``: the alerts ``look_up`` read before the transaction; each is
        updated only if no one updated it since, else read again here."""
        raised: list[Raised] = []
        for finding in merge_findings(findings):
            known = (seen or {}).get(finding.dedup_key)
            if known is not None and self._update(connection, finding, known, now_us, raised):
                continue
            row = connection.execute(
                select(detect_alert).where(detect_alert.c.dedup_key == finding.dedup_key)
            ).first()
            access = finding.access
            principal = (names or {}).get(access.principal or "", access.principal)
            account, client = who(principal, access.client_id)
            patients = [p for p in finding.patients if p]
            if row is None:
                values = {
                    "dedup_key": finding.dedup_key,
                    "case_key": f"case:{principal or 'unknown'}",
                    "detector": finding.detector,
                    "severity": str(finding.severity_for(finding.severity, len(set(patients)))),
                    "account": account,
                    "role": access.role,
                    "client": client,
                    "session": access.session_id,
                    "source_address": access.source_address,
                    "patient_count": len(set(patients)),
                    "patients": json.dumps(sorted(set(patients))[:KEPT_PATIENTS]),
                    "first_position": _position(
                        finding.first_position
                        if finding.first_position is not None
                        else access.position
                    ),
                    "last_position": _position(access.position),
                    "raised_us": now_us,
                    "updated_us": now_us,
                    "status": OPEN,
                    "explanation": finding.explanation,
                }
                new_id = connection.execute(
                    insert(detect_alert).values(**values).returning(detect_alert.c.alert_id)
                ).scalar_one()
                _name_patients(connection, int(new_id), set(patients))
                raised.append(Raised(self._get(connection, int(new_id)), True, _trigger(finding)))
                continue
            self._update(connection, finding, _alert(row), now_us, raised, guarded=False)
        return raised

    def look_up(self, findings: list[Finding]) -> dict[str, Alert]:
        """The stored alerts that ``findings`` would update, by dedup key: read before the
        detectors' write transaction, so that the transaction (whose write lock every
        request's audit commit waits for) only writes."""
        keys = sorted({finding.dedup_key for finding in findings})
        found: dict[str, Alert] = {}
        with read_transaction(self.engine) as connection:
            for start in range(0, len(keys), 500):
                for row in connection.execute(
                    select(detect_alert).where(
                        detect_alert.c.dedup_key.in_(keys[start : start + 500])
                    )
                ):
                    found[row._mapping["dedup_key"]] = _alert(row)
        return found

    def _update(
        self,
        connection: Connection,
        finding: Finding,
        current: Alert,
        now_us: int,
        raised: list[Raised],
        *,
        guarded: bool = True,
    ) -> bool:
        """Widen ``current`` by ``finding``; False if ``guarded`` and the stored alert is
        no longer ``current`` (updated since it was read: nothing is written)."""
        access = finding.access
        known = set(current.patients)
        new = {p for p in finding.patients if p} - known
        merged = known | new
        if current.patient_count > len(known):
            # The list is full: the count is of every patient the alert named, kept apart.
            patient_count = max(
                current.patient_count, _name_patients(connection, current.alert_id, new)
            )
        else:
            _name_patients(connection, current.alert_id, new, count=False)
            patient_count = max(current.patient_count, len(merged))
        severity = finding.severity_for(
            max(current.severity, finding.severity, key=lambda s: s.rank), patient_count
        )
        changes: dict[str, object] = {
            "severity": str(severity),
            "patient_count": patient_count,
            "last_position": _position(max(current.last_position or -1, access.position)),
            "updated_us": max(now_us, current.updated_us + 1) if guarded else now_us,
            "explanation": finding.explanation,
        }
        if len(merged) > len(known) and len(known) < KEPT_PATIENTS:
            # The list (up to thousands of pseudonyms) is rewritten only when it
            # grows: an alert that stays open under a sustained read would otherwise
            # re-sort and rewrite it at every batch. Once full it stays as it is.
            changes["patients"] = json.dumps(sorted(merged)[:KEPT_PATIENTS])
        query = update(detect_alert).where(detect_alert.c.alert_id == current.alert_id)
        if guarded:
            query = query.where(detect_alert.c.updated_us == current.updated_us)
        if connection.execute(query.values(**changes)).rowcount == 0 and guarded:
            return False
        if severity.rank > current.severity.rank:
            raised.append(Raised(self._get(connection, current.alert_id), False, _trigger(finding)))
        return True

    def _get(self, connection: Connection, alert_id: int) -> Alert:
        row = connection.execute(
            select(detect_alert).where(detect_alert.c.alert_id == alert_id)
        ).first()
        if row is None:
            raise KeyError(f"no alert {alert_id}")
        return _alert(row)

    def get(self, alert_id: int | str) -> Alert:
        try:
            wanted = int(alert_id)
        except (TypeError, ValueError):
            raise KeyError(f"no alert {alert_id!r}") from None
        if not 0 < wanted <= ROW_ID_MAX:  # no row has it; the driver would overflow
            raise KeyError(f"no alert {alert_id!r}")
        with read_transaction(self.engine) as connection:
            return self._get(connection, wanted)

    def list(
        self,
        *,
        status: str | None = None,
        case: str | None = None,
        limit: int = 10_000,
        after_id: int = 0,
        changed_since_us: int | None = None,
    ) -> list[Alert]:
        """Alerts by id, oldest first: those numbered above ``after_id``, and with
        ``changed_since_us`` those raised, widened or escalated at or after it (a poll
        that kept only new ids would never see an alert of its own grow to critical)."""
        query = select(detect_alert).order_by(detect_alert.c.alert_id).limit(limit)
        if after_id > 0:
            query = query.where(detect_alert.c.alert_id > min(after_id, ROW_ID_MAX))
        if changed_since_us is not None:
            query = query.where(detect_alert.c.updated_us >= changed_since_us)
        if status is not None:
            query = query.where(detect_alert.c.status == status)
        if case is not None:
            query = query.where(detect_alert.c.case_key == case)
        with read_transaction(self.engine) as connection:
            return [_alert(row) for row in connection.execute(query).all()]

    def set_status(self, alert_id: int, status: str, by: str, now_us: int) -> Alert:
        """An officer's handling of an alert; it moves ``updated_us`` as widening does, so
        that a SIEM polling ``--since`` sees the status change (integrator round 67 left
        it open: an alert dismissed after it was polled stayed open in the SIEM)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        with write_transaction(self.engine) as connection:
            current = self._get(connection, alert_id)
            connection.execute(
                update(detect_alert)
                .where(detect_alert.c.alert_id == alert_id)
                .values(
                    status=status,
                    handled_by=by,
                    # Past the alert's last change even on a clock that steps back, and a
                    # change the detectors read before this commits (``_update``'s guard)
                    # is written again over what this leaves.
                    updated_us=max(now_us, current.updated_us + 1),
                )
            )
            return self._get(connection, alert_id)

    def set_action(self, alert_id: int, action: str, containment_id: int | None) -> None:
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(detect_alert)
                .where(detect_alert.c.alert_id == alert_id)
                .values(action=action, containment_id=containment_id)
            )


def merge_findings(findings: list[Finding]) -> list[Finding]:
    """One finding per dedup key within a batch: the last (widest), at the highest
    severity seen, with every patient named by any of them.

    A sustained read repeats a finding at every entry with the whole window's patients
    (hundreds): the union is gathered in one set per key, in one pass, rather than a
    new tuple per finding (quadratic in a batch's entries)."""
    last: dict[str, Finding] = {}
    severity: dict[str, Severity] = {}
    first: dict[str, int | None] = {}
    patients: dict[str, set[str]] = {}
    trigger: dict[str, int] = {}
    for finding in findings:
        key = finding.dedup_key
        if key not in last:
            severity[key], first[key], patients[key] = finding.severity, None, set()
            trigger[key] = (
                finding.trigger if finding.trigger is not None else finding.access.position
            )
        elif finding.severity.rank > severity[key].rank:
            severity[key] = finding.severity
        if first[key] is None:
            first[key] = finding.first_position
        patients[key].update(finding.patients)
        last[key] = finding
    return [
        Finding(
            finding.detector,
            finding.severity_for(severity[key], len(patients[key])),
            finding.period,
            finding.explanation,
            finding.access,
            tuple(patients[key]),
            first[key],
            trigger[key],
            finding.critical_at,
        )
        for key, finding in last.items()
    ]


def _trigger(finding: Finding) -> int | None:
    """The audit-ledger position of the entry that gave ``finding`` first in its batch."""
    return _position(finding.trigger if finding.trigger is not None else finding.access.position)


def _name_patients(
    connection: Connection, alert_id: int, patients: set[str], *, count: bool = True
) -> int:
    """Add ``patients`` to every patient the alert names (each once, however often
    named); how many it names in all (0 when not ``count``)."""
    rows = [{"alert_id": alert_id, "patient_pseudonym": p} for p in sorted(patients)]
    if rows:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(detect_alert_patient).on_conflict_do_nothing()
        for start in range(0, len(rows), 1000):
            connection.execute(statement, rows[start : start + 1000])
    if not count:
        return 0
    return int(
        connection.execute(
            select(func.count())
            .select_from(detect_alert_patient)
            .where(detect_alert_patient.c.alert_id == alert_id)
        ).scalar_one()
    )


def _position(position: int) -> int | None:
    """An audit-ledger position; None for findings from elsewhere (the unwrap ledger)."""
    return position if position >= 0 else None
