"""What a record says about care, read from the record alone (pure).

A visit, a booking, a care team or a referral may open a care relationship; which
one it opens is the access rules' (``carevault.domain.care``) and needs the clinic
the record is placed at, which only its writer knows. What the record itself says (its
dates, the practitioners it names, where a referral sends the patient, the
organizations a visit names itself) needs nothing but the record: a bulk load works it
out in its checking processes with the rest of ``fhir/derived.py``, where the writer
spent 30 µs a record of care on it (3 % of its CPU), and ``access.care.event_at`` puts
it together with the clinic.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any, NamedTuple

from carevault.clock import to_micros
from carevault.domain.care import CareSource
from carevault.fhir import dates
from carevault.fhir.elements import reference_targets
from carevault.fhir.registry import RESOURCE_TYPES

#: Statuses that make no relationship.
_VOID = frozenset({"cancelled", "noshow", "entered-in-error", "inactive", "revoked"})

CARE_ELEMENTS: dict[str, tuple[CareSource, str, tuple[str, ...]]] = {
    # resource type → (what it is, element giving the time, elements naming who cares)
    "Encounter": (CareSource.VISIT, "period", ("participant.individual",)),
    "Appointment": (CareSource.APPOINTMENT, "start", ("participant.actor",)),
    "CareTeam": (CareSource.CARE_TEAM, "period", ("participant.member",)),
    "ServiceRequest": (CareSource.REFERRAL, "occurrencePeriod", ("performer",)),
}

#: The resource types whose writes may open (or close) a care relationship.
CARE_TYPES = frozenset(CARE_ELEMENTS)


class CareFacts(NamedTuple):
    """What a record of care says, its clinic aside."""

    source: CareSource
    practitioner_ids: tuple[str, ...]
    #: When the care starts and ends (µs); None where the record gives no date.
    starts_us: int | None
    ends_us: int | None
    #: A referral's clinic: the first organization it sends the patient to (None for
    #: any other record, or a referral that names none).
    referred_to: str | None
    #: The organizations a visit or booking names itself where its clinic is read from
    #: (a visit's ``serviceProvider``, a booking's participants), rather than through a
    #: room or role; none for a care team or a referral, whose clinic is not so read.
    named_organizations: frozenset[str]


def care_facts(resource_type: str, resource: dict[str, Any], zone: tzinfo) -> CareFacts | None:
    """What ``resource`` says about care; None if it says nothing that could open any."""
    source = CARE_ELEMENTS.get(resource_type)
    if source is None or resource.get("status") in _VOID:
        return None
    kind, when_path, people_paths = source
    if kind is CareSource.REFERRAL and resource.get("status") != "active":
        return None
    value: Any = resource.get(when_path)
    if kind is CareSource.APPOINTMENT:
        value = {
            "start": resource.get("start"),
            "end": resource.get("end") or resource.get("start"),
        }
    elif kind is CareSource.REFERRAL and value is None:
        value = resource.get("occurrenceDateTime") or resource.get("authoredOn")
    found = dates.value_range(value, zone) if value is not None else None
    people = reference_targets(resource, people_paths)
    named: frozenset[str] = frozenset()
    if kind in (CareSource.VISIT, CareSource.APPOINTMENT):
        paths = RESOURCE_TYPES[resource_type].clinic_paths
        named = frozenset(
            ident
            for target, ident in reference_targets(resource, paths)
            if target == "Organization"
        )
    return CareFacts(
        source=kind,
        practitioner_ids=tuple(
            sorted({ident for target, ident in people if target == "Practitioner"})
        ),
        starts_us=to_micros(found.low) if found is not None and found.low else None,
        ends_us=to_micros(found.high) if found is not None and found.high else None,
        # A referral's clinic is the one it sends the patient to, not the one it is from.
        referred_to=next((ident for kind_, ident in people if kind_ == "Organization"), None)
        if kind is CareSource.REFERRAL
        else None,
        named_organizations=named,
    )
