"""Small builders of FHIR elements shared by the group and the patients."""

from __future__ import annotations

import random
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

#: Hong Kong Time: UTC+8 all year, no daylight saving.
HKT = timezone(timedelta(hours=8), "HKT")


_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_BITS = (0x4000 << 64) | (0x8000 << 48)


def new_id(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng``, so the same seed gives the same ids.

    Equal to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, formatted by
    hand because half a million of them are made per 20,000 patients.
    """
    digits = "%032x" % (rng.getrandbits(128) & _VERSION_MASK | _VERSION_BITS)
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def new_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def ref(resource_type: str, resource_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def at(day: date, clock: time) -> datetime:
    """``day`` at ``clock`` in Hong Kong."""
    return datetime.combine(day, clock, HKT)


def instant(moment: datetime) -> str:
    """A FHIR dateTime/instant with seconds and the +08:00 offset."""
    return moment.isoformat(timespec="seconds")


def quantity(value: float, unit: str, code: str | None = None) -> dict[str, Any]:
    return {
        "value": value,
        "unit": unit,
        "system": "http://unitsofmeasure.org",
        "code": code or unit,
    }


def money(amount: float) -> dict[str, Any]:
    return {"value": amount, "currency": "HKD"}


def format_hk_number(digits: str) -> str:
    """``+852 9123 4567`` from the eight local digits."""
    return f"+852 {digits[:4]} {digits[4:]}"
