"""The scope engine: an incident's compromised things and window, joined with the ledgers,
answered per patient in four tiers (DESIGN.md, "Incidents and scope").

- confirmed: records released through the gate to a compromised principal, with the
  categories the ledger says were shown (after subsetting);
- decrypted: data keys unwrapped in the window by a compromised process, or by anyone
  while the host or key service was compromised; all keys if the key service and the
  database both were;
- at_rest_only: stored in a compromised database, keys never exposed;
- potentially: reachable by a compromised principal's rights (or from a compromised
  host), not read: the upper bound.

A patient is listed in the strongest tier that holds them only, so tiers add up.

Beside the tiers, ``changed`` lists the patients whose records a compromised principal
wrote in the window (made, changed or deleted: integrity, whatever was read), with the
categories written: the records to check against a backup, and the patients whose
contact details the notices must not take from those writes (``carevault.notify``).
``registered`` lists the patients a compromised principal registered at a clinic or
moved to another home in the window, with the clinics each named: access it gave, which
no read shows and which outlasts the incident until an officer reviews it.

Every confirmed, decrypted or changed line cites the ledger positions that prove it, and
a signed checkpoint whose tree holds them (each checkable with the inclusion proofs).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from itertools import chain
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from carevault.access.registrations import ALREADY_REGISTERED
from carevault.containment.state import source_address
from carevault.domain.roles import GROUP_WIDE, Role
from carevault.incidents import containment, patients, people
from carevault.incidents.model import TIERS, Incident, instant, principal_of
from carevault.incidents.query import (
    CHANGE_TAGS,
    REGISTRATION_TAGS,
    DuckScope,
    Hit,
    SqlScope,
    Who,
    Window,
)
from carevault.incidents.segments import Segments, segments_for
from carevault.keys.service import not_patients_keys
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.service import Ledger

if TYPE_CHECKING:
    from carevault.bootstrap import Services

__all__ = ["TIERS", "compute", "document", "open_segments", "segments_for"]

ENGINES = ("auto", "duckdb", "sql")


@dataclass
class Line:
    pseudonym: str
    categories: set[str] = field(default_factory=set)
    first_us: int | None = None
    last_us: int | None = None
    evidence: list[int] = field(default_factory=list)
    ledger: str | None = None
    #: A ``registered`` line's clinics: where its entries registered the patient or moved
    #: their home to, and where they ended the patient's registration or home.
    named_clinics: set[str] = field(default_factory=set)
    ended_clinics: set[str] = field(default_factory=set)


def _who(incident: Incident, seen_addresses: Iterable[str]) -> Who:
    networks = [ipaddress.ip_network(text) for text in incident.compromised.addresses]
    matched: list[str] = []
    for address in seen_addresses:
        parsed = source_address(address)
        if parsed is None:
            continue
        if any(parsed.version == net.version and parsed in net for net in networks):
            matched.append(address)
    compromised = incident.compromised
    return Who(
        principals=tuple(principal_of(account) for account in compromised.accounts),
        # Client ids are registered in lower case; an incident declared before its
        # clients were checked may hold one typed otherwise.
        clients=tuple(sorted({client.strip().casefold() for client in compromised.clients})),
        sessions=compromised.sessions,
        addresses=tuple(sorted(matched)),
        clinics=compromised.clinics,
    )


def _open(services: Services, window: Window, engine: str) -> DuckScope | SqlScope:
    if engine == "sql" or (engine == "auto" and _sql_is_faster(services, window)):
        return SqlScope(services.engine, services.key_engine, window)
    return open_segments(segments_for(services), window)


def open_segments(segments: Segments, window: Window) -> DuckScope:
    """DuckDB over the ledgers' checked segments and unsealed tails: what a scope reads.
    Complete segments the background sealer has not reached yet are sealed first."""
    segments.seal_pending("system:incident-scope")
    return DuckScope.over_segments(segments, window)


#: Windows up to this long run as plain SQL on PostgreSQL (bench/scope.py measured it).
SQL_WINDOW_US = 2 * 86_400 * 1_000_000


def _sql_is_faster(services: Services, window: Window) -> bool:
    return (
        services.engine.dialect.name == "postgresql"
        and services.key_engine.dialect.name == "postgresql"
        and window.until_us is not None
        and window.until_us - window.since_us <= SQL_WINDOW_US
    )


def compute(services: Services, incident: Incident, engine: str = "auto") -> dict[str, Any]:
    """The scope document of ``incident`` (see ``document``)."""
    if engine not in ENGINES:
        raise ValueError(f"engine: one of {', '.join(ENGINES)}")
    window = Window(incident.since_us, incident.until_us)
    query = _open(services, window, engine)
    try:
        who = _who(incident, query.addresses() if incident.compromised.addresses else ())
        released = query.released(who) if not who.is_empty() else []
        changed = query.released(who, CHANGE_TAGS) if not who.is_empty() else []
        registrations = query.released(who, REGISTRATION_TAGS) if not who.is_empty() else []
        compromised = incident.compromised
        everyone = compromised.host or compromised.key_service
        processes = [p for p in who.principals if not p.startswith(("staff:", "client:"))]
        unwrapped = query.unwrapped(processes, everyone) if (processes or everyone) else []
    finally:
        query.close()
    # Only patients' data keys make the decrypted tier: the unwrap ledger also holds the
    # keys of CareVault's own (the directory, the blind index, sealed words, job files).
    others = not_patients_keys(services.key_engine, {hit.patient for hit in unwrapped})
    unwrapped = [hit for hit in unwrapped if hit.patient not in others]
    tiers, known = _tiers(services, incident, released, unwrapped)
    altered = _hits(changed, "audit", with_categories=True)
    registered = _registered(services.audit_ledger, registrations)
    known.update(patients.facts(services.engine, (set(altered) | set(registered)) - set(known)))
    return document(services, incident, tiers, engine_name(query), known, altered, registered)


def engine_name(query: DuckScope | SqlScope) -> str:
    return "duckdb" if isinstance(query, DuckScope) else "postgresql"


def _hits(hits: list[Hit], ledger: str, with_categories: bool) -> dict[str, Line]:
    return {
        hit.patient: Line(
            hit.patient,
            set(hit.categories) if with_categories else set(),
            hit.first_us,
            hit.last_us,
            sorted(hit.positions),
            ledger,
        )
        for hit in hits
    }


#: What an entry of ``REGISTRATION_TAGS`` says when it changed nothing.
_CHANGED_NOTHING = (ALREADY_REGISTERED, "not registered there")


def _registered(ledger: Ledger, hits: list[Hit]) -> dict[str, Line]:
    """``hits`` of registrations, moves of home and ended registrations as lines naming
    the clinics each entry gave the patient to, and those it took them from (an ended
    registration; a first presence ends the ties of the clinics in ``detail.ended`` and
    of the home it moved from). An entry that changed nothing (the patient registered
    there already, or not there to end) is no evidence of it."""
    found = ledger.store.entries_at(seq for hit in hits for seq in hit.positions)
    lines: dict[str, Line] = {}
    for hit in hits:
        line = Line(hit.patient, ledger="audit")
        for seq in hit.positions:
            data = found.get(seq)
            if data is None:
                continue
            event = AuditEvent.from_canonical(data, seq=seq)
            if event.outcome is not Outcome.SUCCESS or event.reason in _CHANGED_NOTHING:
                continue
            given, taken = _clinics_moved(event)
            line.named_clinics |= given
            line.ended_clinics |= taken
            line.evidence.append(seq)
            line.first_us = min(event.at_us, line.first_us or event.at_us)
            line.last_us = max(event.at_us, line.last_us or event.at_us)
        if line.evidence:
            lines[hit.patient] = line
    return lines


def _clinics_moved(event: AuditEvent) -> tuple[set[str], set[str]]:
    """The clinics a registration, transfer or ended registration gave the patient to, and
    those it took them from."""
    detail = event.detail

    def named(*keys: str) -> set[str]:
        return {str(detail[key]) for key in keys if isinstance(detail.get(key), str)}

    if event.tag is Tag.PATIENT_UNREGISTERED:
        return set(), named("clinic")
    ended = detail.get("ended")
    taken = {str(clinic) for clinic in ended} if isinstance(ended, list) else set()
    taken |= named("home_from", "from")
    given = named("clinic", "to")
    return given, taken - given


def _tiers(
    services: Services, incident: Incident, released: list[Hit], unwrapped: list[Hit]
) -> tuple[dict[str, dict[str, Line]], dict[str, patients.PatientFacts]]:
    """The tiers, and what the record store knows of each patient in them."""
    compromised = incident.compromised
    clinic_patients = _ClinicPatients(services)
    confirmed = _hits(released, "audit", with_categories=True)
    decrypted = _hits(unwrapped, "unwrap", with_categories=False)
    at_rest: dict[str, Line] = {}
    reach: dict[str, set[str] | None] = {}  # pseudonym -> readable categories (None: all)
    if compromised.database:
        stored = patients.stored_before(services.engine, incident.until_us)
        target = decrypted if compromised.key_service else at_rest
        for pseudonym in stored:
            target.setdefault(pseudonym, Line(pseudonym))
    if compromised.host:
        for pseudonym in patients.stored_before(services.engine, incident.until_us):
            reach[pseudonym] = None
    for pseudonym in clinic_patients(compromised.clinics):
        reach[pseudonym] = None
    for pseudonym, readable in _reachable(services, incident, clinic_patients).items():
        if reach.get(pseudonym, set()) is not None:
            reach[pseudonym] = (reach.get(pseudonym) or set()) | readable
    potentially = {pseudonym: Line(pseudonym) for pseudonym in reach}
    tiers = {
        "confirmed": confirmed,
        "decrypted": decrypted,
        "at_rest_only": at_rest,
        "potentially": potentially,
    }
    taken: set[str] = set()
    for tier in TIERS:
        tiers[tier] = {p: line for p, line in tiers[tier].items() if p not in taken}
        taken.update(tiers[tier])
    known = patients.facts(services.engine, taken)
    for tier in ("decrypted", "at_rest_only", "potentially"):
        for pseudonym, line in tiers[tier].items():
            stored = known[pseudonym].stored_categories()
            limit = reach.get(pseudonym) if tier == "potentially" else None
            line.categories = stored if limit is None else stored & limit
    return tiers, known


class _ClinicPatients:
    """``patients.at_clinics``, asked once per set of clinics in a scope: a compromised
    clinic and an account of that clinic (the usual case) would ask the same twice."""

    def __init__(self, services: Services) -> None:
        self.engine = services.engine
        self.found: dict[frozenset[str], set[str]] = {}

    def __call__(self, clinics: Iterable[str]) -> set[str]:
        key = frozenset(clinics)
        if key not in self.found:
            self.found[key] = patients.at_clinics(self.engine, key)
        return self.found[key]


def _reachable(
    services: Services, incident: Incident, clinic_patients: _ClinicPatients
) -> dict[str, set[str]]:
    """Patients the compromised accounts and clients could read, with the categories."""
    found: dict[str, set[str]] = {}
    grants: list[tuple[frozenset[str] | None, set[str]]] = []
    for name in incident.compromised.accounts:
        account = services.accounts.find(name.removeprefix("staff:"))
        if account is None:
            continue
        clinics = None if account.role in GROUP_WIDE else account.clinic_ids
        grants.append((clinics, patients.readable_categories(account.role)))
    for client_id in incident.compromised.clients:
        client = services.clients.get(client_id.strip().casefold())
        if client is not None and client.clinic_ids:
            grants.append((client.clinic_ids, patients.readable_categories(Role.INTEGRATION)))
    for clinics, readable in grants:
        reached = (
            patients.stored_before(services.engine, None)
            if clinics is None
            else clinic_patients(clinics)
        )
        for pseudonym in reached:
            found.setdefault(pseudonym, set()).update(readable)
    return found


def _checkpoint(ledger: Ledger, positions: Iterable[int], reason: str) -> dict[str, Any] | None:
    last = max(positions, default=-1)
    if last < 0:
        return None
    found = ledger.checkpoints.covering(last + 1) or ledger.checkpoints.make(reason)
    return {"size": found.size, "root": found.root.hex(), "note": found.note}


def document(
    services: Services,
    incident: Incident,
    tiers: dict[str, dict[str, Line]],
    engine: str,
    known: dict[str, patients.PatientFacts] | None = None,
    changed: dict[str, Line] | None = None,
    registered: dict[str, Line] | None = None,
) -> dict[str, Any]:
    changed = changed or {}
    registered = registered or {}
    if known is None:
        everyone = {p for lines in tiers.values() for p in lines} | set(changed) | set(registered)
        known = patients.facts(services.engine, everyone)
    reason = f"incident {incident.incident_id} scope"
    audit_lines = chain(tiers["confirmed"].values(), changed.values(), registered.values())
    checkpoints = {
        "audit": _checkpoint(
            services.audit_ledger,
            (seq for line in audit_lines for seq in line.evidence),
            reason,
        ),
        "unwrap": _checkpoint(
            services.unwrap_ledger,
            (seq for line in tiers["decrypted"].values() for seq in line.evidence),
            reason,
        ),
    }
    # Every time is formatted at once, by Arrow: one call per line was most of a year's
    # scope (tens of thousands of patients).
    moments = {
        at
        for lines in [*tiers.values(), changed, registered]
        for line in lines.values()
        for at in (line.first_us, line.last_us)
        if at is not None
    }
    texts = dict(zip(moments, instants(list(moments)), strict=True))

    def rendered_lines(lines: dict[str, Line]) -> list[dict[str, Any]]:
        return sorted(
            (
                _line(line, known[pseudonym], checkpoints, texts)
                for pseudonym, line in lines.items()
            ),
            key=lambda item: (item["first"] or "", item["patient"]),
        )

    rendered = {tier: rendered_lines(tiers[tier]) for tier in TIERS}
    altered = rendered_lines(changed)
    given = rendered_lines(registered)
    notifiable = {
        line["patient"]: line["patient"]
        for tier in ("confirmed", "decrypted")
        for line in rendered[tier]
        if not line["patient_record_missing"]
    }
    # A record a compromised principal wrote over is grouped by the HKID it held without
    # their versions (they do not choose who the patient is one person with).
    written = {line["patient"]: line["evidence"] for line in altered}
    person = people.persons(services, notifiable, written)
    for tier in TIERS:
        for line in rendered[tier]:
            line["person"] = person.get(line["patient"], line["patient"])
    header = incident.as_json()
    header["engine"] = engine
    header["generated_at"] = instant(services.now_us())
    header["checkpoints"] = checkpoints
    # When each ledger's first entry was written: a window opening before it reaches back
    # past the evidence, and nothing from before can be in any tier (integrator round 53).
    header["ledgers_begin"] = {
        name: None if (first := ledger.store.written_at(0)) is None else instant(first)
        for name, ledger in (("audit", services.audit_ledger), ("unwrap", services.unwrap_ledger))
    }
    # What was done to stop it, as recorded: the notices and the regulators' reports say
    # the access was stopped, and how, only from this list.
    header["containment"] = [
        containment.as_json(action)
        for action in containment.own_actions(incident, services.containment.history(1000))
    ]
    tally = counts(rendered, ZoneInfo(services.settings.timezone))
    tally["changed"] = len(altered)
    tally["registered"] = len(given)
    return {
        "incident": header,
        "tiers": rendered,
        "changed": altered,
        "registered": given,
        "counts": tally,
    }


def instants(micros: list[int]) -> list[str]:
    """``model.instant`` of each (FHIR instants, milliseconds, UTC), vectorised."""
    if not micros:
        return []
    millis = pc.floor(pc.divide(pa.array(micros, pa.float64()), 1000.0))
    stamps = pc.cast(pc.cast(millis, pa.int64()), pa.timestamp("ms"))
    return [str(text) for text in pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()]


def _line(
    line: Line,
    facts: patients.PatientFacts,
    checkpoints: dict[str, dict[str, Any] | None],
    texts: dict[int, str],
) -> dict[str, Any]:
    proof = checkpoints.get(line.ledger or "") if line.evidence else None
    # A pseudonym without a Patient record (erased, or entries from elsewhere) is still
    # reported, by pseudonym, and said to be so.
    rendered = {
        "patient": facts.patient_id or line.pseudonym,
        # What the ledger entries name the patient by (a data key's id too): without it
        # an outside verifier could not tell whose the evidence was (forensic round 53).
        "pseudonym": line.pseudonym,
        "patient_record_missing": facts.patient_id is None,
        "categories": sorted(line.categories),
        "clinics": sorted(facts.clinics),
        "first": texts[line.first_us] if line.first_us is not None else None,
        "last": texts[line.last_us] if line.last_us is not None else None,
        "evidence": line.evidence,
        "ledger": line.ledger if line.evidence else None,
        "checkpoint": proof["size"] if proof else None,
    }
    if line.named_clinics:
        rendered["registered_at"] = sorted(line.named_clinics)
    if line.ended_clinics:
        rendered["ended_at"] = sorted(line.ended_clinics)
    return rendered


def counts(tiers: dict[str, list[dict[str, Any]]], zone: tzinfo) -> dict[str, Any]:
    """People (each counted once, in the strongest tier that holds them) by tier; and per
    tier, people by category, by clinic, and by the day they were first exposed: a day
    in ``zone``, the group's (``CAREVAULT_TIMEZONE``), as its officers and patients count
    days (20:00 UTC is the next morning in Hong Kong)."""
    counted: set[str] = set()
    people: dict[str, int] = {}
    #: The people each tier counts: a person with records in two tiers (one HKID) is
    #: counted, in the breakdowns too, only in the stronger, so that they add up to
    #: ``people`` (a script summing ``by_day.decrypted`` found one it did not count).
    own: dict[str, set[str]] = {}
    for tier in TIERS:
        persons = {line.get("person", line["patient"]) for line in tiers[tier]} - counted
        people[tier] = len(persons)
        own[tier] = persons
        counted |= persons
    by_category: dict[str, dict[str, int]] = {}
    by_clinic: dict[str, dict[str, int]] = {}
    by_day: dict[str, dict[str, int]] = {}
    #: The day of each instant text seen (many people share an instant's hour and day).
    day_of: dict[str, str] = {}
    for tier in TIERS:
        lines = [line for line in tiers[tier] if line.get("person", line["patient"]) in own[tier]]
        persons_of = [line.get("person", line["patient"]) for line in lines]
        first: dict[str, str] = {}
        for person, line in zip(persons_of, lines, strict=True):
            if line["first"] and (person not in first or line["first"] < first[person]):
                first[person] = line["first"]
        if len(set(persons_of)) == len(lines):
            # One line per person (a tier's usual case): people per category or clinic
            # are lines per category or clinic, counted without a set per key.
            by_category[tier] = _tally(line["categories"] for line in lines)
            by_clinic[tier] = _tally(line["clinics"] for line in lines)
        else:
            by_category[tier] = _people_by(persons_of, lines, "categories")
            by_clinic[tier] = _people_by(persons_of, lines, "clinics")
        days: dict[str, int] = {}
        for moment in first.values():
            day = _day_in(moment, zone, day_of)
            days[day] = days.get(day, 0) + 1
        by_day[tier] = dict(sorted(days.items()))
    return {
        "people": {**people, "total": sum(people.values())},
        "notifiable": people["confirmed"] + people["decrypted"],
        "by_category": by_category,
        "by_clinic": by_clinic,
        "by_day": by_day,
    }


def _day_in(moment: str, zone: tzinfo, known: dict[str, str]) -> str:
    """The day in ``zone`` of the instant ``moment``, remembered in ``known`` by its UTC
    minute (every zone's offset is whole minutes): a year's scope has tens of thousands
    of people, and far fewer minutes in which they were first exposed."""
    key = moment[:16] if moment.endswith("Z") else moment
    day = known.get(key)
    if day is None:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        day = known[key] = parsed.astimezone(zone).date().isoformat()
    return day


def _tally(keys_of_lines: Iterable[list[str]]) -> dict[str, int]:
    """Lines per key, sorted by key (each line lists a key once)."""
    return dict(sorted(Counter(chain.from_iterable(keys_of_lines)).items()))


def _people_by(persons: list[str], lines: list[dict[str, Any]], name: str) -> dict[str, int]:
    """Distinct people per key of the lines' ``name`` list, sorted by key."""
    found: dict[str, set[str]] = {}
    for person, line in zip(persons, lines, strict=True):
        for key in line[name]:
            found.setdefault(key, set()).add(person)
    return {key: len(people) for key, people in sorted(found.items())}
