"""Changing where a patient belongs: the two privileged operations, through the gate.

- **Registration at a clinic, with proof of presence** (``Patient/$register``): the
  patient stands at the front desk of another clinic of the group and shows an
  identifier (HKID, or their medical record number) and their birth date; both must
  match one patient through the blind index. The clinic's staff then see the patient
  as their own, and visits there open the record to its clinicians (domain/care.py).
  Failed attempts (and registrations of a patient already at the clinic) are
  counted per account, so the desk cannot be used to fish. A patient whose record was
  opened to the caller from elsewhere (breaking the glass, a referral, a care team) is
  not registered by them: what the record showed proves no presence.
- **Transfer of the home clinic** (``Patient/$transfer``): a privacy officer, or the
  clinic manager of both clinics, with a reason from a fixed list.

Both are recorded in the audit ledger in the transaction that makes the change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import takewhile
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, select

from carevault.access.control import AccessControl
from carevault.access.registrations import ALREADY_REGISTERED, FIRST_PRESENCE, Proof, fisher
from carevault.access.scopes import Interaction
from carevault.db import read_transaction, write_transaction
from carevault.domain import hkid
from carevault.domain.categories import HEALTH_CATEGORIES
from carevault.domain.roles import CLINICIANS, Role
from carevault.fhir import jsonio
from carevault.fhir.codes import has_sensitive_code
from carevault.fhir.indexing import MRN_SYSTEM, hkid_terms, mrn_terms
from carevault.fhir.normalise import HKID_SYSTEM, identifier_value
from carevault.fhir.query import parse_query
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate.core import AccessDenied, Caller, Gate, _Attempt, identifiers_seen
from carevault.keys.envelope import RecordIntegrityError
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.vault.opening import open_sealed
from carevault.vault.records import (
    Gone,
    Head,
    NotFound,
    Opened,
    ReferenceConflict,
    Sealed,
    WriteResult,
)
from carevault.vault.search import find
from carevault.vault.tables import resource_version
from carevault.vault.writer import Authorize, Operation, Put, apply_writes

_PROOF_KINDS = {HKID_SYSTEM: "hkid", MRN_SYSTEM: "mrn"}
_R = TypeVar("_R", bound=StrEnum)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PATIENT = RESOURCE_TYPES["Patient"]

#: Who registers a patient who stands in front of them.
REGISTERING_ROLES = frozenset({Role.FRONT_DESK, Role.NURSE, Role.PHYSICIAN, Role.CLINIC_MANAGER})


class RegistrationInvalid(ValueError):
    """The request is malformed (400); says what to send, never echoes a value."""


#: What a desk is told when a registration needs the privacy officer (``Seen``).
OFFICER_TO_CONFIRM = (
    "this patient's record cannot be registered on the identifier and birth date alone;"
    " ask the privacy officer to confirm who they are"
)


class ConfirmReason(StrEnum):
    """Why a privacy officer registers a patient ``$register`` refused (the fixed list a
    reason comes from: free text could name the patient)."""

    #: The officer confirmed who the person is (with their clinic, their documents).
    IDENTITY_CONFIRMED = "identity-confirmed"
    #: The record's identifiers or birth date were wrong, and have been corrected.
    RECORD_CORRECTED = "record-corrected"
    #: The person says they were never seen at the record's clinic, and only integration
    #: clients recorded care of them: the registering clinic becomes their home.
    NOT_SEEN_BEFORE = "not-seen-before"


class TransferReason(StrEnum):
    """The fixed list a transfer's reason comes from (free text could name the patient)."""

    PATIENT_REQUEST = "patient-request"
    PATIENT_MOVED = "patient-moved"
    SERVICE_CHANGE = "service-change"
    REGISTRATION_ERROR = "registration-error"


class EndReason(StrEnum):
    """Why a privacy officer ends a patient's registration at a clinic."""

    #: Made by a login an incident holds compromised (its scope lists it: ``registered``).
    COMPROMISED_ACCOUNT = "compromised-account"
    #: Made in error (the wrong patient, the wrong clinic).
    REGISTERED_IN_ERROR = "registered-in-error"


@dataclass(frozen=True)
class PresenceProof:
    """What the patient showed: an identifier and their birth date."""

    system: str
    value: str
    birth_date: str

    def check(self) -> None:
        if self.system not in _PROOF_KINDS:
            raise RegistrationInvalid(
                f"the identifier's system must be {HKID_SYSTEM} or {MRN_SYSTEM}"
            )
        if not self.value.strip() or len(self.value) > 64:
            raise RegistrationInvalid("the identifier's value must be 1-64 characters")
        if "," in self.value or "\\" in self.value:
            # A search would read ``a,b,c`` as a list: five guesses for one failure.
            raise RegistrationInvalid("the identifier's value is one identifier, not a list")
        if not _DATE.match(self.birth_date):
            raise RegistrationInvalid("birthDate must be a full date, YYYY-MM-DD")


def register(gate: Gate, caller: Caller, proof: PresenceProof, clinic_id: str | None) -> str:
    """Register the patient who showed ``proof`` at one of the caller's clinics; the
    patient's id. NotFound (and a counted failure) if no one patient matches."""
    with gate._attempt(caller, Tag.PATIENT_REGISTERED, "Patient") as attempt:
        actor = caller.actor
        if actor is None or actor.role not in REGISTERING_ROLES or not actor.account_id:
            raise AccessDenied("only clinic staff register a patient who is present")
        if gate.access is None:
            raise AccessDenied("access control is not configured")
        # The registration widens whom the caller's clinic reaches, as a write of the
        # Patient would: an app granted less than that may not make it.
        gate._scope(caller, _PATIENT, Interaction.UPDATE)
        clinic = clinic_id or (next(iter(actor.clinic_ids)) if len(actor.clinic_ids) == 1 else "")
        if clinic not in actor.clinic_ids:
            raise AccessDenied("a patient can be registered only at one of your clinics")
        proof.check()
        # A change, and the match opens patients' records: stopped as a write is.
        gate._contain_change([_PATIENT])
        attempt.detail.update({"clinic": clinic, "proof": _PROOF_KINDS[proof.system]})
        who = fisher(actor.account_id, actor.practitioner_id, caller.principal)
        with gate.access.registrations.failures.counting(who) as counted:
            matches = _matching(gate, caller, proof)
            if len(matches) != 1:
                counted.missed()
                if matches:
                    raise ReferenceConflict(
                        "more than one patient matches; ask the privacy officer to merge them"
                    )
                raise NotFound("no patient matches the identifier and birth date given")
            (head,) = matches
            assert head.patient_pseudonym is not None  # noqa: S101 - every Patient has one
            attempt.patient_pseudonym = head.patient_pseudonym
            attempt.resource_id = head.resource_id
            _refuse_what_the_record_showed(gate, caller, head.patient_pseudonym, clinic)
            gate._contain_move(head, clinic)
            weighed = _care_versions(gate.vault.engine, head.patient_pseudonym)
            seen = _seen(gate, caller, head, clinic, proof)
            if seen is Seen.NEVER:
                _register_first_presence(gate, caller, attempt, head, clinic, weighed)
                return head.resource_id
            if seen in (Seen.BEFORE_PROOF, Seen.TWO_NUMBERS, Seen.BY_CLIENTS_ONLY):
                # One answer for all: which it was would tell the desk that another
                # clinic's patient holds a second number (third review of stop 62), or
                # that an app wrote the care it has.
                counted.missed()
                raise ReferenceConflict(OFFICER_TO_CONFIRM)
            if head.clinic_id != clinic and _was_home(gate, head.resource_id, clinic):
                # Told to the detectors (``re-registration``): a clinic that wrote a record
                # before the person first came elsewhere learns they came (its reads turn
                # 403) and may register them by what it typed (review of stop 62).
                attempt.detail["home_before"] = True
            with write_transaction(gate.vault.engine) as connection:
                added = gate.access.registrations.register(
                    connection,
                    head.patient_pseudonym,
                    clinic,
                    by=caller.principal,
                    proof=Proof.PRESENCE,
                    now_us=gate.access.now_us(),
                )
                event = gate._event(
                    attempt,
                    Outcome.SUCCESS,
                    reason="registered on proof of presence" if added else ALREADY_REGISTERED,
                )
                gate.audit.record([event], connection)
            if not added:
                # Nothing was registered: the patient was already the clinic's. A miss,
                # as a registration that matched no one is: otherwise a desk could give a
                # decoy patient of its own another clinic's patient's identifier and move
                # its birth date from guess to guess, each miss matching only the decoy
                # (free) and the right date both patients (409), fishing past the throttle.
                counted.missed()
        return head.resource_id


#: Records that say someone attended: what a clinician (health data) or billing (a
#: claim for a service) writes, or the system loads. A front desk writes none of them.
#: Not a coverage: billing records a patient's insurance before any visit (review of
#: stop 62: a coverage kept a planted patient's ties). Nor an explanation of benefit: it
#: is an insurer's answer to a claim, which billing records for whatever claim it is
#: given, an app's planted one too (second review of stop 63); the claim says it.
ATTENDED_TYPES = tuple(
    sorted(
        rt.name
        for rt in RESOURCE_TYPES.values()
        if rt.patient_paths and (rt.category in HEALTH_CATEGORIES or rt.name == "Claim")
    )
)
#: Records of a visit or booking, which a desk writes too: they say someone attended only
#: where a version holds health data (a visit's reason or diagnosis), which no desk may
#: write.
VISIT_TYPES = ("Appointment", "Encounter")


class Seen(StrEnum):
    """Whether the group ever recorded seeing the person who showed a proof."""

    #: Care recorded since the record held the identifier and birth date shown.
    SINCE_PROOF = "since-proof"
    #: Care recorded only before the record was given them: of whoever it was then.
    BEFORE_PROOF = "before-proof"
    #: No care recorded at all.
    NEVER = "never"
    #: The record holds more than one number of the kind shown: whose it is is in doubt.
    TWO_NUMBERS = "two-numbers"
    #: Care recorded since, but only by integration clients: no person saw them.
    BY_CLIENTS_ONLY = "by-clients-only"


def _seen(gate: Gate, caller: Caller, head: Head, clinic: str, proof: PresenceProof) -> Seen:
    """Whether anyone in the group has recorded seeing the patient who showed ``proof``
    (``SINCE_PROOF`` too where it does not matter: the clinic holds them already, or
    their home clinic is where they proved their presence).

    A record of care is any version of one of ``ATTENDED_TYPES``, deleted since or not,
    or a version of a visit or booking holding health data: what a front desk never
    writes. It counts only if written since the record has held the identifier and
    birth date shown: a desk that types a newcomer's HKID and birth date onto a patient
    its clinic has seen did not see the newcomer (review of stop 62)."""
    access = gate.access
    pseudonym = head.patient_pseudonym
    assert access is not None and pseudonym is not None  # noqa: S101 - checked by register
    if clinic in access.registrations.clinics(pseudonym):
        return Seen.SINCE_PROOF
    since, numbers = _proof_since(gate, caller, head, proof)
    if numbers > 1:
        # A person has one HKID: a second, added beside the one a desk may not read (it
        # keeps what it was not shown), is another person's, and whoever registers on
        # it would be given the chart of the first (review of stop 62).
        return Seen.TWO_NUMBERS
    if head.clinic_id is not None and head.clinic_id in access.registrations.proved_at(pseudonym):
        # Their home is where they stood and proved who they are (a first presence
        # moved it there): a registration elsewhere is an ordinary one.
        return Seen.SINCE_PROOF
    acts, visits = _attended_acts(gate, caller, pseudonym)
    if _attested(gate, pseudonym, [act for act in acts if act.at_us >= since]):
        return Seen.SINCE_PROOF
    acts += _visits_with_care(gate, caller, visits)
    recent = [act for act in acts if act.at_us >= since]
    if recent:
        return Seen.SINCE_PROOF if _attested(gate, pseudonym, recent) else Seen.BY_CLIENTS_ONLY
    return Seen.BEFORE_PROOF if acts else Seen.NEVER


@dataclass(frozen=True)
class _Act:
    """A version that recorded care of the patient (``_attended_acts``,
    ``_visits_with_care``): its record, its version and when it was written."""

    at_us: int
    resource_type: str
    resource_id: str
    version: int


def _attended_acts(
    gate: Gate, caller: Caller, pseudonym: str
) -> tuple[list[_Act], list[tuple[str, str]]]:
    """The versions that recorded care in one of ``ATTENDED_TYPES`` (each record's first,
    and the first after a deletion that says something other than the record said before
    it: what a result or claim says of the person was said when it was written; a status
    a clerk changes since, a value a doctor corrects, or a record deleted and written back
    as it was, says nothing new of their presence), deleted since or not; and the
    patient's visits and bookings, to be weighed by ``_visits_with_care``."""
    with read_transaction(gate.vault.engine) as connection:
        rows = connection.execute(
            select(
                resource_version.c.resource_type,
                resource_version.c.resource_id,
                resource_version.c.version_id,
                resource_version.c.last_updated_us,
                resource_version.c.deleted,
            )
            .where(
                resource_version.c.patient_pseudonym == pseudonym,
                resource_version.c.resource_type.in_((*ATTENDED_TYPES, *VISIT_TYPES)),
            )
            .order_by(
                resource_version.c.resource_type,
                resource_version.c.resource_id,
                resource_version.c.version_id,
            )
        ).all()
    acts: list[_Act] = []
    visits: set[tuple[str, str]] = set()
    previous: tuple[str, str, bool] | None = None
    for row in rows:
        record = (str(row.resource_type), str(row.resource_id))
        if row.resource_type in VISIT_TYPES:
            visits.add(record)
            continue
        first = previous is None or previous[:2] != record
        again = not first and previous is not None and previous[2]
        if not row.deleted and (
            first or (again and _said_anew(gate, caller, record, int(row.version_id)))
        ):
            acts.append(_Act(int(row.last_updated_us), *record, int(row.version_id)))
        previous = (*record, bool(row.deleted))
    return acts, sorted(visits)


def _said_anew(gate: Gate, caller: Caller, record: tuple[str, str], version: int) -> bool:
    """Whether ``version`` of ``record``, written after a deletion, says something other
    than the version before the deletion: billing deleting an app's claim and writing its
    view back to the same id wrote the app's words as its own (second review of stop
    63)."""
    _, versions = gate.vault.locate_history(*record)
    earlier = [item for item in versions if item.head.version_id < version and item.sealed]
    written = [item for item in versions if item.head.version_id == version]
    if not earlier or not written:
        return True
    said_then, said_now = (
        {key: value for key, value in jsonio.load(opened.body or b"{}").items() if key != "meta"}
        for opened in _looked_at(gate, caller, [earlier[0], written[0]])
    )
    return said_then != said_now


#: How far a write's ledger entry may be dated from the version it wrote: an entry is
#: dated as its transaction ends, after the versions it wrote; a bulk load's, once its
#: batch (thousands of records) is written.
_ENTRY_BEFORE_US, _ENTRY_AFTER_US = 5_000_000, 30_000_000
#: The writes that may have written a version that recorded care.
_CARE_TAGS = frozenset({Tag.FHIR_CREATE.value, Tag.FHIR_UPDATE.value, Tag.FHIR_IMPORT.value})


def _attested(gate: Gate, pseudonym: str, acts: list[_Act]) -> bool:
    """Whether one of ``acts`` was written by a clinician, billing or the system (anyone
    but an integration client), by its write's entry in the ledger.

    An integration client's record of care attests no one's presence on its own: a
    client of one clinic wrote a newcomer's record under their HKID and birth date and a
    visit of its own, and when the person first came to another clinic, read what that
    clinic recorded of them (adversary round 80). A person who writes care is answerable
    for it; a client secret is not a person. Only the version that recorded the care
    counts, never a later write of the record by someone else: a desk saving its view of
    the client's visit (the reason put back), or billing cancelling the client's claim,
    attested nothing (review of stop 63). Read from the ledger's entries about the
    patient around each act only, not every read since."""
    entries = gate.audit_entries
    if entries is None or not acts:
        return False
    wanted = {(act.resource_type, act.resource_id, act.version) for act in acts}
    for since_us, until_us in _around(sorted(act.at_us for act in acts)):
        after = -1
        while batch := entries.find(
            subject=pseudonym, since_us=since_us, until_us=until_us, after_seq=after, limit=500
        ):
            for seq, data in batch:
                if wanted & _acts_written(AuditEvent.from_canonical(data, seq=seq)):
                    return True
            after = batch[-1][0]
    return False


def _around(moments: list[int]) -> list[tuple[int, int]]:
    """The windows (µs) in which the entries of versions written at ``moments`` (sorted)
    are dated, overlapping ones joined: a bulk load's thousands of versions are one."""
    windows: list[tuple[int, int]] = []
    for at in moments:
        since, until = at - _ENTRY_BEFORE_US, at + _ENTRY_AFTER_US
        if windows and since <= windows[-1][1]:
            windows[-1] = (windows[-1][0], until)
        else:
            windows.append((since, until))
    return windows


def _acts_written(event: AuditEvent) -> set[tuple[str, str, int]]:
    """The versions (type, id, version) a successful write by anyone but an integration
    client wrote, as its entry names them; none for any other entry."""
    if (
        event.outcome is not Outcome.SUCCESS
        or event.tag.value not in _CARE_TAGS
        or (event.principal or "client:").startswith("client:")
        or event.role == Role.INTEGRATION
    ):
        return set()
    if event.tag is Tag.FHIR_IMPORT:
        written = event.detail.get("written")
        found: set[tuple[str, str, int]] = set()
        for resource_type, names in written.items() if isinstance(written, dict) else ():
            for name in names if isinstance(names, list) else ():
                resource_id, _, number = str(name).partition("/_history/")
                if number.isdigit():
                    found.add((str(resource_type), resource_id, int(number)))
        return found
    version = event.detail.get("version")
    if event.resource_type is None or event.resource_id is None or not isinstance(version, int):
        return set()
    return {(event.resource_type, event.resource_id, version)}


def _proof_since(gate: Gate, caller: Caller, head: Head, proof: PresenceProof) -> tuple[int, int]:
    """Since when (µs) the Patient has held the identifier and birth date shown (the
    oldest version of the latest unbroken run of versions holding both), and how many
    numbers of the kind shown its current version holds (``_numbers``)."""
    _, versions = gate.vault.locate_history("Patient", head.resource_id)
    kind = hkid_terms if proof.system == HKID_SYSTEM else mrn_terms
    wanted = set(kind({"identifier": [{"system": proof.system, "value": proof.value}]}))
    since, numbers = head.last_updated_us, 0
    # A deletion ends the run: what was written after it is a record written anew.
    standing = list(takewhile(lambda item: item.sealed is not None, versions))
    for at, opened in enumerate(_looked_at(gate, caller, standing)):
        resource = jsonio.load(opened.body or b"{}")
        if at == 0:
            numbers = _numbers(resource, proof.system)
        if not wanted & set(kind(resource)) or resource.get("birthDate") != proof.birth_date:
            break
        since = opened.head.last_updated_us
    return since, numbers


def _numbers(resource: dict[str, Any], system: str) -> int:
    """How many distinct numbers of ``system``'s kind a Patient holds that say who they
    are: HKIDs whose check digit holds (a passport number may look like one), under any
    system as the index takes them, or the group's record numbers; never one typed with
    a sensitive code (an HIV clinic's, which a desk is not shown and which no
    registration matches by: counting it would tell the desk it is there)."""
    found: set[str] = set()
    for item in resource.get("identifier") or []:
        if not isinstance(item, dict) or has_sensitive_code(item):
            continue
        value = item.get("value")
        if not isinstance(value, str):
            continue
        if system == HKID_SYSTEM and hkid.is_valid(value):
            found.add(hkid.normalise(value) or value)
        elif system == MRN_SYSTEM and item.get("system") == MRN_SYSTEM:
            found.add(identifier_value(MRN_SYSTEM, value))
    return len(found)


def _looked_at(gate: Gate, caller: Caller, items: list[Sealed]) -> list[Opened]:
    """Versions opened to weigh a registration, never shown: their keys' unwraps are
    logged as the caller's for ``registration``, and they spend none of the caller's
    release budget (a patient with many bookings would drain a desk's)."""
    try:
        return open_sealed(gate.vault, items, principal=caller.principal, purpose="registration")
    except RecordIntegrityError:
        # Fail closed, naming no record: the caller may not know of the one that failed
        # (another clinic's booking; review of stop 62).
        raise RecordIntegrityError(
            "a record this registration weighs failed its integrity check; the patient is"
            " not registered"
        ) from None


def _visits_with_care(gate: Gate, caller: Caller, visits: list[tuple[str, str]]) -> list[_Act]:
    """The versions of these visits and bookings that wrote health data (a reason, a
    diagnosis) into them: each whose health data differs from the version before's. A
    version that only carries the same health data on is no care of its writer's: a
    desk saving its view of a doctor's visit keeps the reason it was not shown, and would
    otherwise date the doctor's care to its own save (review of stop 62)."""
    found: list[_Act] = []
    for resource_type, resource_id in visits:
        _, versions = gate.vault.locate_history(resource_type, resource_id)
        rt = RESOURCE_TYPES[resource_type]
        before: dict[str, object] = {}
        # Oldest first; a deletion (no body) holds no health data.
        for opened in _looked_at(gate, caller, list(reversed(versions))):
            resource = jsonio.load(opened.body or b"{}")
            health = {
                name: value
                for name, value in resource.items()
                if rt.element_categories.get(name, rt.category) in HEALTH_CATEGORIES
            }
            if health and health != before:
                head = opened.head
                found.append(
                    _Act(head.last_updated_us, resource_type, resource_id, head.version_id)
                )
            before = health
    return found


def _was_home(gate: Gate, patient_id: str, clinic: str) -> bool:
    """Whether a version of the Patient was placed at ``clinic`` (their home once)."""
    with read_transaction(gate.vault.engine) as connection:
        found = connection.execute(
            select(resource_version.c.version_id)
            .where(
                resource_version.c.resource_type == "Patient",
                resource_version.c.resource_id == patient_id,
                resource_version.c.clinic_id == clinic,
            )
            .limit(1)
        ).first()
    return found is not None


def _care_versions(source: Engine | Connection, pseudonym: str) -> int:
    """How many versions of the patient's records of care, visits and bookings there
    are: weighed before a first presence is decided, and again inside its write, which
    is refused if any was written in between."""
    counted = (
        select(func.count())
        .select_from(resource_version)
        .where(
            resource_version.c.patient_pseudonym == pseudonym,
            resource_version.c.resource_type.in_((*ATTENDED_TYPES, *VISIT_TYPES)),
        )
    )
    if isinstance(source, Connection):
        return int(source.execute(counted).scalar_one())
    with read_transaction(source) as connection:
        return int(connection.execute(counted).scalar_one())


def _register_first_presence(
    gate: Gate,
    caller: Caller,
    attempt: _Attempt,
    head: Head,
    clinic: str,
    weighed: int,
    *,
    proof: Proof = Proof.PRESENCE,
    reason: str = FIRST_PRESENCE,
) -> None:
    """Register, at ``clinic``, a patient whom no one in the group has ever recorded
    seeing (``_seen``): the first clinic where they stand and prove who they are is
    where they belong. Their home moves here, and every other tie ends (the home clinic
    their record was written at, registrations elsewhere, the care that bookings there
    opened): each rests on what someone typed, which a desk of another clinic may have
    typed before the person ever came (adversary round 79: a patient planted under a
    newcomer's HKID caught what another clinic later recorded of them). A clinic that
    sees them later registers them as any other (``Patient/$register``), which the
    ledger and the detectors weigh. In one transaction with its ledger entries."""
    access = gate.access
    pseudonym = head.patient_pseudonym
    assert access is not None and pseudonym is not None  # noqa: S101 - checked by register
    ended: list[str] = []

    def still_unattended(
        connection: Connection, operation: Operation, written: Head, stored: Head | None
    ) -> None:
        # A visit with a reason, a result, or a booking written while the registration
        # weighed them was not weighed: the doctor who wrote it would lose his own visit
        # to the move (adversary round 80; a booking only asks for another try).
        if stored is None or stored.deleted or _care_versions(connection, pseudonym) != weighed:
            raise ReferenceConflict(
                f"Patient/{head.resource_id} changed while it was being registered; try again"
            )

    def ties_end(connection: Connection) -> None:
        ended.extend(access.registrations.end_all(connection, pseudonym))
        access.care.end_all(connection, pseudonym)
        # The clinic is the patient's home now (the version just written); its
        # registration says they stood there: the person was seen to be who they said,
        # and a later registration elsewhere is an ordinary one (``_seen``), not a move
        # back and forth between two desks (review of stop 62).
        access.registrations.register(
            connection,
            pseudonym,
            clinic,
            by=caller.principal,
            proof=proof,
            now_us=access.now_us(),
            known=frozenset(),
        )
        attempt.detail.update({"home_from": head.clinic_id, "ended": ended})

    _move_home(
        gate,
        caller,
        attempt,
        gate.vault.locate("Patient", head.resource_id),
        clinic,
        purpose="registration",
        reason=reason,
        authorize=still_unattended,
        within=ties_end,
    )


def _move_home(
    gate: Gate,
    caller: Caller,
    attempt: _Attempt,
    located: Sealed,
    destination: str,
    *,
    purpose: str,
    reason: str,
    authorize: Authorize,
    within: Callable[[Connection], None] | None = None,
) -> WriteResult:
    """Write the Patient of ``located`` again with ``destination`` as its home
    (``rewrite_patient``)."""

    def home(resource: dict[str, Any]) -> None:
        resource["managingOrganization"] = {"reference": f"Organization/{destination}"}

    return rewrite_patient(
        gate,
        caller,
        attempt,
        located,
        home,
        purpose=purpose,
        reason=reason,
        authorize=authorize,
        within=within,
    )


def rewrite_patient(
    gate: Gate,
    caller: Caller,
    attempt: _Attempt,
    located: Sealed,
    change: Callable[[dict[str, Any]], None],
    *,
    purpose: str,
    reason: str,
    authorize: Authorize,
    within: Callable[[Connection], None] | None = None,
) -> WriteResult:
    """Write the Patient of ``located`` again as ``change`` leaves its whole stored body
    (nothing cut: what the caller may not read is kept), as ``caller``, through the
    vault's write path (encrypted, its blind indexes computed anew), with the attempt's
    entry and the Patient's update (both for ``reason``) and whatever ``within`` does in
    the same transaction; ``authorize`` judges the stored version inside it, and a
    version written since ``located`` was found refuses the write (412)."""
    [opened] = gate._open(caller, [located])
    resource = jsonio.load(opened.body or b"{}")
    change(resource)
    written_again = Put(
        _PATIENT, located.head.resource_id, resource, if_match=located.head.version_id
    )

    def before_commit(connection: Connection, results: list[WriteResult]) -> None:
        (result,) = results
        if within is not None:
            within(connection)
        written = replace(
            gate._write_event(attempt, written_again, result, None, None), reason=reason
        )
        event = gate._event(attempt, Outcome.SUCCESS, reason=reason)
        gate.audit.record([written, event], connection)

    [result] = apply_writes(
        gate.vault,
        [written_again],
        principal=caller.principal,
        purpose=purpose,
        before_commit=before_commit,
        authorize=authorize,
    )
    return result


def _refuse_what_the_record_showed(gate: Gate, caller: Caller, pseudonym: str, clinic: str) -> None:
    """Refuse a registration at ``clinic`` by a caller to whom the patient's record was
    opened from elsewhere: by breaking the glass, or by care that another clinic's
    clinician vouched for (a referral, a care team). What the record showed them (the
    HKID, the birth date) proves no presence, and registering on it would turn an hour's
    grant, or one care window for one practitioner, into the whole clinic's access for
    good. The clinic's desk registers the patient when they attend."""
    access, actor = gate.access, caller.actor
    assert access is not None and actor is not None and actor.account_id  # noqa: S101
    if clinic in access.registrations.clinics(pseudonym):
        return  # already the clinic's: nothing widens
    # A person's other login (an account naming the same practitioner) is the person:
    # a doctor's front-desk login registered what the doctor's grant or referral showed
    # (adversary round 57).
    if access.break_glass.ever_opened(
        actor.account_id, pseudonym, access.now_us(), actor.practitioner_id
    ):
        raise AccessDenied(
            "you opened this patient's record by breaking the glass: a colleague who sees"
            " the patient present registers them"
        )
    clinical = actor.role in CLINICIANS
    if (clinical or actor.practitioner_id) and access.care.ever(
        pseudonym, actor.clinic_ids if clinical else frozenset(), actor.practitioner_id
    ):
        raise AccessDenied(
            "this patient's record was opened to you by care from another clinic: a"
            " colleague who sees the patient present registers them"
        )


def _matching(gate: Gate, caller: Caller, proof: PresenceProof) -> list[Head]:
    """Live patients whose identifier and birth date both match (blind index, then the
    exact birth date, which needs the candidates opened: logged as registration)."""
    query = parse_query(
        RESOURCE_TYPES["Patient"],
        [("identifier", f"{proof.system}|{proof.value}"), ("birthdate", proof.birth_date)],
        strict=True,
        zone=gate.care.zone,
        default_count=2,
        max_count=2,
    )
    found, _ = find(
        gate.vault,
        query,
        principal=caller.principal,
        purpose="registration",
        restrict=None,
        candidate_limit=gate.candidate_limit,
        # A number the caller's view of the patient cuts (an HIV clinic's, typed so) is
        # no proof: its "already registered" would link the number to the patient.
        keep=identifiers_seen(caller, query, gate.care.zone),
    )
    return [item.head for item in found if not item.head.deleted]


def fixed_reason(kind: type[_R], given: str) -> _R:
    """``given`` as one of the fixed reasons ``kind`` lists; RegistrationInvalid naming
    them otherwise (never echoing what was given: free text could name the patient)."""
    try:
        return kind(given)
    except ValueError:
        raise RegistrationInvalid(
            f"reason must be one of {', '.join(item.value for item in kind)}"
        ) from None


def _officers_patient(
    gate: Gate,
    caller: Caller,
    attempt: _Attempt,
    where: tuple[str, str],
    reason: tuple[type[_R], str],
    refusal: str,
) -> tuple[AccessControl, Sealed, str, _R]:
    """What an officer's change of a patient's registrations checks first: the caller is
    a privacy officer (``refusal`` otherwise), containment allows a change, the reason is
    one of the fixed list, the patient (``where``: their id and the clinic) is one the
    vault holds and has not deleted, and the clinic is the group's; the access control,
    the patient's record, pseudonym and the reason. The attempt names them."""
    patient_id, clinic = where
    actor = caller.actor
    if actor is None or actor.role is not Role.PRIVACY_OFFICER:
        raise AccessDenied(refusal)
    access = gate.access
    if access is None:
        raise AccessDenied("access control is not configured")
    gate._contain_change([_PATIENT])
    why = fixed_reason(*reason)
    located = gate.vault.locate("Patient", patient_id)
    if located.head.deleted:
        raise Gone(f"Patient/{patient_id} was deleted")
    pseudonym = located.head.patient_pseudonym
    assert pseudonym is not None  # noqa: S101 - every Patient has one
    attempt.patient_pseudonym = pseudonym
    attempt.detail["why"] = why.value
    if clinic not in access.known_clinics():
        # Not recorded: whatever was typed for it (an HKID in the wrong field) would be
        # in the ledger for good (review of stop 63).
        raise RegistrationInvalid("the clinic must be one of the group's")
    attempt.detail["clinic"] = clinic
    return access, located, pseudonym, why


def _first_presence(gate: Gate, caller: Caller, pseudonym: str, why: ConfirmReason) -> bool:
    """Whether an officer's registration is the patient's first presence: no one has
    recorded seeing them; or only integration clients have and the officer, having asked
    the person, says they were not seen before (``not-seen-before``). An app's record of
    care may be a lab's genuine result of the record's clinic, which an ordinary
    registration keeps (review of stop 63), or a stolen client's plant (round 80): the
    officer tells them apart, never a clinic that a person recorded seeing them at."""
    acts, visits = _attended_acts(gate, caller, pseudonym)
    acts += _visits_with_care(gate, caller, visits)
    if not acts:
        return True
    if why is not ConfirmReason.NOT_SEEN_BEFORE:
        return False
    if _attested(gate, pseudonym, acts):
        raise RegistrationInvalid(
            "a clinician, billing or the system recorded seeing this patient: their home"
            " moves only by a transfer"
        )
    return True


def register_confirmed(
    gate: Gate, caller: Caller, patient_id: str, clinic: str, reason: str
) -> bool:
    """A privacy officer registers a patient at ``clinic`` after confirming who they are,
    where ``$register`` sent the clinic's desk to them (409: the record holds two numbers
    of a kind, or its care predates the number shown). No proof of presence is asked:
    the officer's confirmation is the proof, in the ledger with its reason. False if the
    patient was registered there already."""
    with gate._attempt(caller, Tag.PATIENT_REGISTERED, "Patient", patient_id) as attempt:
        access, located, pseudonym, why = _officers_patient(
            gate,
            caller,
            attempt,
            (patient_id, clinic),
            (ConfirmReason, reason),
            "only a privacy officer registers a patient on their confirmation",
        )
        attempt.detail["proof"] = str(Proof.OFFICER)
        gate._contain_move(located.head, clinic)
        said = f"registered on the privacy officer's confirmation: {why.value}"
        weighed = _care_versions(gate.vault.engine, pseudonym)
        if clinic not in access.registrations.clinics(pseudonym) and _first_presence(
            gate, caller, pseudonym, why
        ):
            # The officer's confirmation is where they belong, as a first presence is,
            # and the clinic that wrote the record keeps no tie (a plant given two
            # numbers, to be sent to the officer rather than moved by a desk: third
            # review of stop 62; one whose only care an app wrote: round 80).
            _register_first_presence(
                gate,
                caller,
                attempt,
                located.head,
                clinic,
                weighed,
                proof=Proof.OFFICER,
                reason=said,
            )
            return True
        with write_transaction(gate.vault.engine) as connection:
            added = access.registrations.register(
                connection,
                pseudonym,
                clinic,
                by=caller.principal,
                proof=Proof.OFFICER,
                now_us=access.now_us(),
            )
            event = gate._event(
                attempt, Outcome.SUCCESS, reason=said if added else ALREADY_REGISTERED
            )
            gate.audit.record([event], connection)
        return added


def transfer(
    gate: Gate, caller: Caller, patient_id: str, destination: str, reason: str
) -> WriteResult:
    """Move a patient's home clinic to ``destination``, as a privacy officer or the
    clinic manager of both clinics, for one of the fixed reasons."""
    patient_type = _PATIENT
    with gate._attempt(caller, Tag.PATIENT_TRANSFERRED, "Patient", patient_id) as attempt:
        gate._scope(caller, patient_type, Interaction.UPDATE)
        gate._contain_change([patient_type])
        why = fixed_reason(TransferReason, reason)
        located = gate.vault.locate("Patient", patient_id)
        if located.head.deleted:
            # Told only to who may read the record, as a read tells it: 410 to anyone
            # said which ids had been patients.
            raise gate._deleted(caller, patient_type, located.head)
        attempt.patient_pseudonym = located.head.patient_pseudonym
        source = located.head.clinic_id
        attempt.detail.update({"from": source, "reason": why.value})
        actor = caller.actor
        allowed = (
            actor is None
            or actor.role is Role.PRIVACY_OFFICER
            or (
                actor.role is Role.CLINIC_MANAGER
                and source is not None
                and {source, destination} <= actor.clinic_ids
            )
        )
        if not allowed:
            raise AccessDenied(
                "a transfer needs a privacy officer, or the clinic manager of both clinics"
            )
        if destination == source:
            raise RegistrationInvalid("the patient's home clinic is already the destination")
        gate._contain_move(located.head, destination)
        if gate.vault.locate("Organization", destination).head.deleted:
            raise Gone(f"Organization/{destination} was deleted")
        # Named once it is a clinic of the directory: what was typed for it is not kept.
        attempt.detail["to"] = destination

        def keep_source(
            connection: Connection, operation: Operation, head: Head, stored: Head | None
        ) -> None:
            if stored is None or stored.clinic_id != source:
                raise NotFound(f"Patient/{patient_id} changed while it was being transferred")

        return _move_home(
            gate,
            caller,
            attempt,
            located,
            destination,
            purpose="transfer",
            reason=f"transfer: {why.value}",
            authorize=keep_source,
        )


def unregister(gate: Gate, caller: Caller, patient_id: str, clinic: str, reason: str) -> bool:
    """A privacy officer ends the patient's registration at ``clinic``, for one of the
    fixed reasons: the clinic no longer reaches their records, and the care its bookings
    opened there ends (the bookings stay). What an incident's scope lists as a stolen
    login's registrations (``registered``) is undone this way. Their home clinic is no
    registration (a transfer moves it). False if they were not registered there."""
    with gate._attempt(caller, Tag.PATIENT_UNREGISTERED, "Patient", patient_id) as attempt:
        access, located, pseudonym, why = _officers_patient(
            gate,
            caller,
            attempt,
            (patient_id, clinic),
            (EndReason, reason),
            "only a privacy officer ends a patient's registration",
        )
        if clinic == located.head.clinic_id:
            raise RegistrationInvalid(
                "that is the patient's home clinic: a transfer moves it (Patient/$transfer)"
            )
        with write_transaction(gate.vault.engine) as connection:
            ended = access.registrations.end(connection, pseudonym, clinic)
            if ended:
                access.care.end_at(connection, pseudonym, clinic)
            event = gate._event(
                attempt,
                Outcome.SUCCESS,
                reason=f"registration ended: {why.value}" if ended else "not registered there",
            )
            gate.audit.record([event], connection)
        return ended
