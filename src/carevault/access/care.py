"""Care relationships: who may open a patient's health data, and until when.

Derived when an Encounter, Appointment or CareTeam is written (inside the same
transaction), kept in a table of clear clinic ids, blind practitioner tokens and
day-granular windows. A clinician has a care relationship with a patient now if
a window covers now for one of their clinics or for them as a practitioner.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
)

from carevault.access.tables import care_relationship
from carevault.clock import to_micros
from carevault.db import driver_scalar, read_transaction
from carevault.fhir import dates
from carevault.fhir.elements import reference_targets

#: Statuses that do not make a relationship.
_VOID = frozenset({"cancelled", "noshow", "entered-in-error", "inactive"})
#: How far ahead an open-ended care team reaches.
_OPEN_END = datetime(9999, 1, 1, tzinfo=UTC)

_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    # resource type → (element giving the time, elements naming practitioners)
    "Encounter": ("period", ("participant.individual",)),
    "Appointment": ("start", ("participant.actor",)),
    "CareTeam": ("period", ("participant.member",)),
}


@dataclass(frozen=True)
class Relationship:
    clinic_id: str | None
    practitioner_id: str | None
    valid_from_us: int
    valid_until_us: int


def derive(
    resource_type: str,
    resource: dict[str, Any],
    clinic_id: str | None,
    zone: tzinfo,
    *,
    days_before: int,
    days_after: int,
) -> list[Relationship]:
    """The relationships a resource creates (pure)."""
    source = _SOURCES.get(resource_type)
    if source is None or resource.get("status") in _VOID:
        return []
    when_path, people_paths = source
    value: Any = resource.get(when_path)
    if resource_type == "Appointment":
        value = {
            "start": resource.get("start"),
            "end": resource.get("end") or resource.get("start"),
        }
    found = dates.value_range(value, zone) if value is not None else None
    if found is None and resource_type != "CareTeam":
        return []
    low = found.low if found is not None else None
    high = found.high if found is not None else None
    if resource_type == "CareTeam":
        start = (low or datetime(1900, 1, 1, tzinfo=zone)) - timedelta(days=days_before)
        end = high + timedelta(days=days_after) if high is not None else _OPEN_END
    else:
        if low is None:
            return []
        start = low - timedelta(days=days_before)
        end = (high or low) + timedelta(days=days_after)
    window = (to_micros(start), to_micros(end))
    practitioners = sorted(
        {
            ident
            for kind, ident in reference_targets(resource, people_paths)
            if kind == "Practitioner"
        }
    )
    made = [Relationship(clinic_id, None, *window)] if clinic_id else []
    made += [Relationship(None, practitioner, *window) for practitioner in practitioners]
    return made


@functools.cache
def _exists(clinics: int) -> Select[tuple[bool]]:
    """Whether a clinician (by one of ``clinics`` clinics, or by practitioner token) has a
    care relationship with a patient now. Built once per number of clinics: an
    expanding ``IN`` parameter had SQLAlchemy rewrite the SQL on every execution, which
    cost more than the query."""
    return select(
        exists().where(
            care_relationship.c.patient_pseudonym == bindparam("pseudonym"),
            or_(
                care_relationship.c.clinic_id.in_(
                    [bindparam(f"clinic_{n}") for n in range(clinics)]
                ),
                care_relationship.c.practitioner_token == bindparam("token"),
            ),
            care_relationship.c.valid_from_us <= bindparam("now"),
            care_relationship.c.valid_until_us >= bindparam("now"),
        )
    )


class CareRelationships:
    def __init__(
        self,
        engine: Engine,
        practitioner_token: Callable[[str], bytes],
        *,
        cache_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self._blind = practitioner_token
        self._tokens: dict[str, bytes] = {}
        # Answers of ``exists`` outside a write, for as long as session state may be
        # stale anyway; a relationship written by this process clears them at once.
        self.cache_seconds = cache_seconds
        self._answers: dict[tuple[str, frozenset[str], str | None], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def _token(self, practitioner_id: str) -> bytes:
        found = self._tokens.get(practitioner_id)
        if found is None:
            found = self._blind(practitioner_id)
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[practitioner_id] = found
        return found

    def replace(
        self,
        connection: Connection,
        source_row_id: int,
        pseudonym: str | None,
        relationships: Iterable[Relationship],
    ) -> None:
        """Inside the write's transaction: the source's relationships are now these."""
        with self._lock:
            self._answers.clear()
        connection.execute(
            delete(care_relationship).where(care_relationship.c.source_row_id == source_row_id)
        )
        rows = [
            {
                "patient_pseudonym": pseudonym,
                "clinic_id": item.clinic_id,
                "practitioner_token": self._token(item.practitioner_id)
                if item.practitioner_id
                else None,
                "source_row_id": source_row_id,
                "valid_from_us": item.valid_from_us,
                "valid_until_us": item.valid_until_us,
            }
            for item in relationships
        ]
        if pseudonym is not None and rows:
            connection.execute(insert(care_relationship), rows)

    def _matches(
        self, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int
    ) -> ColumnElement[bool]:
        who: list[ColumnElement[bool]] = []
        if clinic_ids:
            who.append(care_relationship.c.clinic_id.in_(sorted(clinic_ids)))
        if practitioner_id:
            who.append(care_relationship.c.practitioner_token == self._token(practitioner_id))
        if not who:
            return care_relationship.c.source_row_id.is_(None)  # matches nothing
        return (
            or_(*who)
            & (care_relationship.c.valid_from_us <= now_us)
            & (care_relationship.c.valid_until_us >= now_us)
        )

    def exists(
        self,
        pseudonym: str,
        clinic_ids: frozenset[str],
        practitioner_id: str | None,
        now_us: int,
        connection: Connection | None = None,
        reading: Connection | None = None,
    ) -> bool:
        """Whether a care relationship holds now. ``connection``: a write's transaction
        (facts it wrote count; no cache). ``reading``: a read transaction the caller
        already holds, used if the answer is not cached."""
        query = _exists(len(clinic_ids))
        if connection is not None:
            params = self._params(pseudonym, clinic_ids, practitioner_id, now_us)
            return bool(driver_scalar(connection, query, params))
        key = (pseudonym, clinic_ids, practitioner_id)
        moment = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and moment - cached[0] < self.cache_seconds:
            return cached[1]
        params = self._params(pseudonym, clinic_ids, practitioner_id, now_us)
        if reading is not None:
            answer = bool(driver_scalar(reading, query, params))
        else:
            with read_transaction(self.engine) as fresh:
                answer = bool(driver_scalar(fresh, query, params))
        with self._lock:
            if len(self._answers) > 50_000:
                self._answers.clear()
            self._answers[key] = (moment, answer)
        return answer

    def _params(
        self, pseudonym: str, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int
    ) -> dict[str, object]:
        return {
            "pseudonym": pseudonym,
            **{f"clinic_{n}": clinic for n, clinic in enumerate(sorted(clinic_ids))},
            # No practitioner: a token no row has (rows hold 32-byte HMACs or NULL).
            "token": self._token(practitioner_id) if practitioner_id else b"",
            "now": now_us,
        }

    def patients(self, clinic_ids: frozenset[str], practitioner_id: str | None, now_us: int) -> Any:
        """A subquery of the pseudonyms the clinician has a care relationship with now."""
        return select(care_relationship.c.patient_pseudonym).where(
            self._matches(clinic_ids, practitioner_id, now_us)
        )
