"""Care dates: when the care a record describes took place (``Patient/$everything``'s
``start`` and ``end``), as opposed to when the record was last changed.

A record's care dates are the values of its type's ``date`` search parameter (an
Encounter's period, an Observation's effective time, a Condition's onset...). A type
without one (Patient, Organization...) has no care date and is never filtered out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from carevault.fhir import dates
from carevault.fhir.elements import values_at
from carevault.fhir.registry import ResourceType


@dataclass(frozen=True)
class CarePeriod:
    """[start, end) of the care asked for; None is open on that side."""

    start: datetime | None
    end: datetime | None

    def overlaps(self, value: dates.DateRange) -> bool:
        if self.start is not None and value.high is not None and value.high <= self.start:
            return False
        return not (self.end is not None and value.low is not None and value.low >= self.end)


def has_care_date(rt: ResourceType) -> bool:
    return rt.param("date") is not None


def within(rt: ResourceType, resource: dict[str, Any], period: CarePeriod, zone: tzinfo) -> bool:
    """Whether ``resource`` belongs to the care asked for: True when one of its care
    dates overlaps ``period``, or when it shows no care date at all (nothing to judge it
    by: kept, as $everything keeps what it cannot place)."""
    param = rt.param("date")
    if param is None:
        return True
    found = False
    for path in param.paths:
        for value in values_at(resource, path):
            parsed = dates.value_range(value, zone)
            if parsed is None:
                continue
            found = True
            if period.overlaps(parsed):
                return True
    return not found
