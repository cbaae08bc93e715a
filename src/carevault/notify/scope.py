"""The scope document an incident hands over, checked and typed (pure).

Its shape is the contract with ``carevault.incidents``: an ``incident`` object, the
``tiers`` (confirmed, decrypted, at_rest_only, potentially), each a list of patients
with the data categories exposed, and ``counts``. A malformed document is refused
whole (``ScopeError``), before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from carevault.domain.categories import DataCategory

TIERS = ("confirmed", "decrypted", "at_rest_only", "potentially")
#: Tiers whose patients are notified one by one unless the officer decides otherwise.
NOTIFIED_TIERS = ("confirmed", "decrypted")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: A patient the incident module knows only by pseudonym (no longer on record): kept in
#: the counts, never notified (there is no one to read).
_PSEUDONYM = re.compile(r"^pseudonym:[A-Za-z0-9_\-]{1,64}$")
_INCIDENT_ID = re.compile(r"^[A-Za-z0-9\-._:]{1,80}$")


class ScopeError(ValueError):
    """The scope document is not what the incident module promises."""


@dataclass(frozen=True)
class Exposure:
    """One patient of one tier: what of theirs was exposed, and when."""

    patient_id: str
    tier: str
    categories: tuple[DataCategory, ...]
    clinics: tuple[str, ...]
    first: datetime | None
    last: datetime | None
    evidence: tuple[int, ...]
    #: The person the record is of (the scope's ``person``: Patient records of one HKID
    #: are one person, named by the smallest id); "" where the document does not say,
    #: then the record is its own person (``who``).
    person: str = ""
    #: The Patient records a person's notice covers (``Scope.notices``); empty: this
    #: exposure is of ``patient_id`` alone.
    records: tuple[str, ...] = ()

    @property
    def who(self) -> str:
        """The person this exposure counts as: people, not records, are counted."""
        return self.person or self.patient_id

    @property
    def covers(self) -> tuple[str, ...]:
        """The Patient records this exposure is of."""
        return self.records or (self.patient_id,)


@dataclass(frozen=True)
class ContainmentAction:
    """A containment action recorded for the incident (the scope document's
    ``incident.containment``): what a notice may call stopping the access, and what a
    regulator's report lists as the measures taken."""

    mode: str
    target: str | None
    reason: str
    started_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class Incident:
    incident_id: str
    title: str
    status: str
    declared_at: datetime
    since: datetime | None
    until: datetime | None
    compromised: dict[str, Any]
    #: The containment recorded for the incident, oldest first (none: nothing recorded,
    #: and nothing is said to have been stopped).
    containment: tuple[ContainmentAction, ...] = ()
    #: The alert the incident was declared from (``incident declare --from-alert``), if
    #: any: a regulator's report says when it was raised beside the declaration.
    alert_id: str | None = None
    #: Regulators whose report is recorded as filed (``report decide --decision filed``):
    #: not part of the scope document; the send job and the preview fill it in from the
    #: regulators' clocks (``NoticeStore.filed``), so a notice claims only what is done.
    filed_with: frozenset[str] = frozenset()

    @property
    def keys_compromised(self) -> bool:
        return bool(self.compromised.get("key_service")) or bool(self.compromised.get("host"))


@dataclass(frozen=True)
class Scope:
    incident: Incident
    tiers: dict[str, tuple[Exposure, ...]]
    counts: dict[str, Any]
    #: Patients whose records a compromised principal wrote in the window, by patient id:
    #: the evidence names the writes (ledger positions); where they wrote over the
    #: Patient record, its notice takes no details from them (``notify.reader``).
    changed: dict[str, Exposure] = field(default_factory=dict)

    def with_filings(self, regulators: frozenset[str]) -> Scope:
        """This scope, its incident's reports to ``regulators`` recorded as filed."""
        return replace(self, incident=replace(self.incident, filed_with=regulators))

    def exposures(self, tiers: Iterable[str] = NOTIFIED_TIERS) -> Iterator[Exposure]:
        """Each patient once, in the first (worst) of ``tiers`` that names them, with the
        categories of every chosen tier that names them."""
        chosen = [tier for tier in TIERS if tier in set(tiers)]
        merged: dict[str, Exposure] = {}
        for tier in chosen:
            for item in self.tiers.get(tier, ()):
                known = merged.get(item.patient_id)
                if known is None:
                    merged[item.patient_id] = item
                    continue
                categories = tuple(sorted(set(known.categories) | set(item.categories)))
                merged[item.patient_id] = Exposure(
                    known.patient_id,
                    known.tier,
                    categories,
                    tuple(sorted(set(known.clinics) | set(item.clinics))),
                    _earliest(known.first, item.first),
                    _latest(known.last, item.last),
                    known.evidence + item.evidence,
                    known.person,
                )
        yield from merged.values()

    def notices(self, tiers: Iterable[str] = NOTIFIED_TIERS) -> Iterator[Exposure]:
        """One exposure per person (``Exposure.who``): what their one notice covers. A
        person's records in ``tiers`` (``exposures``) are merged: the worst tier that
        holds any, every category and clinic, the earliest first and the latest last
        exposure, all the evidence; it is named by the person (``patient_id``: the
        scope's ``person``, a Patient id of theirs) and lists the records (``records``).
        A person with one record named by its own id is that record's exposure as is."""
        by_person: dict[str, list[Exposure]] = {}
        for exposure in self.exposures(tiers):
            by_person.setdefault(exposure.who, []).append(exposure)
        for person, held in by_person.items():
            if len(held) == 1 and held[0].patient_id == person:
                yield held[0]
                continue
            yield Exposure(
                patient_id=person,
                tier=min((e.tier for e in held), key=TIERS.index),
                categories=tuple(sorted({c for e in held for c in e.categories})),
                clinics=tuple(sorted({c for e in held for c in e.clinics})),
                first=min((e.first for e in held if e.first is not None), default=None),
                last=max((e.last for e in held if e.last is not None), default=None),
                evidence=tuple(sorted({seq for e in held for seq in e.evidence})),
                person=person,
                records=tuple(sorted(e.patient_id for e in held)),
            )

    def patient_count(self, tiers: Iterable[str] = TIERS) -> int:
        """Patient records in ``tiers`` (each once)."""
        return sum(1 for _ in self.exposures(tiers))

    def notice_count(self, tiers: Iterable[str] = NOTIFIED_TIERS) -> int:
        """Notices ``tiers`` make: people, each once (``notices``)."""
        return sum(1 for _ in self.notices(tiers))


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((x for x in (a, b) if x is not None), default=None)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((x for x in (a, b) if x is not None), default=None)


def _instant(value: Any, where: str, *, required: bool = False) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ScopeError(f"{where}: an ISO 8601 instant is required")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScopeError(f"{where}: {value[:40]!r} is not an ISO 8601 instant") from None
    if moment.tzinfo is None:
        # Refused, not guessed: taken as UTC it was 8 hours off the group's time (every
        # other door reads a time without a zone in ``CAREVAULT_TIMEZONE``), and the
        # regulators' clocks open from ``declared_at``. Scopes CareVault writes say "Z".
        raise ScopeError(f"{where}: an instant with its offset (or Z) is required")
    return moment


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ScopeError(f"{where}: a list of strings is required")
    return tuple(value)


def _exposure(item: Any, tier: str, index: int, where: str = "") -> Exposure:
    where = where or f"tiers.{tier}[{index}]"
    if not isinstance(item, dict):
        raise ScopeError(f"{where}: an object is required")
    patient = str(item.get("patient", "")).removeprefix("Patient/")
    if not (_ID.match(patient) or _PSEUDONYM.match(patient)):
        raise ScopeError(f"{where}.patient: a Patient id is required")
    categories: list[DataCategory] = []
    for name in _strings(item.get("categories"), f"{where}.categories"):
        try:
            categories.append(DataCategory(name))
        except ValueError:
            raise ScopeError(f"{where}.categories: unknown category {name[:40]!r}") from None
    person = str(item.get("person") or "").removeprefix("Patient/")
    if person and not (_ID.match(person) or _PSEUDONYM.match(person)):
        raise ScopeError(f"{where}.person: a Patient id is required")
    evidence = item.get("evidence") or []
    if not isinstance(evidence, list) or not all(
        isinstance(e, int) and not isinstance(e, bool) for e in evidence
    ):
        raise ScopeError(f"{where}.evidence: a list of ledger positions is required")
    return Exposure(
        patient_id=patient,
        tier=tier,
        categories=tuple(sorted(set(categories))),
        clinics=_strings(item.get("clinics"), f"{where}.clinics"),
        first=_instant(item.get("first"), f"{where}.first"),
        last=_instant(item.get("last"), f"{where}.last"),
        evidence=tuple(evidence),
        person=person,
    )


def _containment(value: Any) -> tuple[ContainmentAction, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScopeError("incident.containment: a list is required")
    actions = []
    for index, item in enumerate(value):
        where = f"incident.containment[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("mode"), str):
            raise ScopeError(f"{where}: an object with a mode is required")
        target = item.get("target")
        started = _instant(item.get("started_at"), f"{where}.started_at", required=True)
        assert started is not None  # noqa: S101 - required above
        actions.append(
            ContainmentAction(
                mode=item["mode"][:40],
                target=str(target)[:200] if target is not None else None,
                reason=str(item.get("reason") or "")[:500],
                started_at=started,
                released_at=_instant(item.get("released_at"), f"{where}.released_at"),
            )
        )
    return tuple(actions)


def parse_scope(document: Any) -> Scope:
    """The typed scope of ``document`` (parsed JSON); ScopeError if it is malformed."""
    if not isinstance(document, dict):
        raise ScopeError("a scope document is a JSON object")
    raw = document.get("incident")
    if not isinstance(raw, dict):
        raise ScopeError("incident: an object is required")
    incident_id = str(raw.get("id", ""))
    if not _INCIDENT_ID.match(incident_id):
        raise ScopeError("incident.id: letters, digits and - . _ : only, at most 80")
    compromised = raw.get("compromised") or {}
    if not isinstance(compromised, dict):
        raise ScopeError("incident.compromised: an object is required")
    incident = Incident(
        incident_id=incident_id,
        title=str(raw.get("title") or "")[:200],
        status=str(raw.get("status") or "open")[:40],
        declared_at=_instant(raw.get("declared_at"), "incident.declared_at", required=True)
        or datetime.now(UTC),
        since=_instant(raw.get("since"), "incident.since"),
        until=_instant(raw.get("until"), "incident.until"),
        compromised=compromised,
        containment=_containment(raw.get("containment")),
        alert_id=_alert_id(raw.get("alert")),
    )
    tiers_raw = document.get("tiers")
    if not isinstance(tiers_raw, dict):
        raise ScopeError("tiers: an object is required")
    unknown = set(tiers_raw) - set(TIERS)
    if unknown:
        raise ScopeError(f"tiers: unknown tier {sorted(unknown)[0][:40]!r}")
    tiers: dict[str, tuple[Exposure, ...]] = {}
    for tier in TIERS:
        items = tiers_raw.get(tier) or []
        if not isinstance(items, list):
            raise ScopeError(f"tiers.{tier}: a list is required")
        tiers[tier] = tuple(_exposure(item, tier, index) for index, item in enumerate(items))
    changed_raw = document.get("changed") or []
    if not isinstance(changed_raw, list):
        raise ScopeError("changed: a list is required")
    changed = [
        _exposure(item, "changed", index, f"changed[{index}]")
        for index, item in enumerate(changed_raw)
    ]
    counts = document.get("counts") or {}
    return Scope(
        incident,
        tiers,
        counts if isinstance(counts, dict) else {},
        {item.patient_id: item for item in changed},
    )


def _alert_id(value: object) -> str | None:
    """An incident's alert as its scope document names it (an id of digits), else None."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return text if text.isdigit() and len(text) <= 18 else None
