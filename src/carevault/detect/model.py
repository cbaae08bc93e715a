"""What the detectors read and what they find: plain types, no I/O."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, lru_cache
from typing import Any

import orjson

from carevault.fhir.registry import RESOURCE_TYPES

MINUTE_US = 60 * 1_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {severity: rank for rank, severity in enumerate(Severity)}

#: NAT64's well-known prefix (RFC 6052): an IPv4 peer reached through a translator.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@lru_cache(maxsize=4096)
def network_of(address: str) -> str | None:
    """The network an address is judged by: its /24 (IPv4) or /64 (IPv6), None if it is
    no address. An IPv4 address carried in an IPv6 one (mapped ``::ffff:a.b.c.d``, NAT64,
    6to4, Teredo) is judged by its IPv4 /24: every peer of a dual-stack listener or a
    translator shares one /64, and a thief could pick such a path to be "the same
    network" as anyone (reviews of stop 62)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        carried = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if carried is None and ip in _NAT64:
            carried = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if carried is not None:
            return str(ipaddress.ip_network(f"{carried}/24", strict=False))
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ipaddress.ip_network(f"{ip}/24", strict=False))


#: Tags whose successful entries hand patient data out.
RELEASING = frozenset(
    {
        "fhir:resource:read",
        "fhir:resource:vread",
        "fhir:resource:search",
        "fhir:resource:history",
        "fhir:patient:everything",
        "fhir:resource:export",
        # A patient's access report (an entry naming the patient): who opened their
        # records, which and what categories (adversary round 51).
        "audit:ledger:read",
        # A patient's breach notice printed in full for an officer (``notify preview
        # --patient``): their identity, contact details and what was exposed. Each is
        # chosen, one fresh code a patient: a stolen officer's login printing one every
        # code raised nothing (stop 64). Not ``access:break-glass:shown``: the review
        # queue shows every grant it lists at once, chosen by no one.
        "notify:preview:shown",
    }
)
#: Tags whose successful entries write patient data (one entry per record written, also
#: for each record of a client's ``$import``).
WRITING = frozenset({"fhir:resource:create", "fhir:resource:update", "fhir:resource:delete"})
#: A patient's records written to a bulk export's files (``carevault.export``).
EXPORT_TAG = "fhir:resource:export"
#: One of a bulk export's files fetched by its client (``detail.asked_from``: the address
#: the export was asked for from).
EXPORT_DOWNLOADED = "bulk:export:downloaded"
SIGN_IN_FAILED = "auth:session:sign-in-failed"
SIGN_IN_THROTTLED = "auth:session:sign-in-throttled"
#: Sign-ins refused before anyone was signed in: acts of the sender, not of the account
#: whose username was typed (``signin``).
REFUSED_SIGN_INS = frozenset({SIGN_IN_FAILED, SIGN_IN_THROTTLED})
SIGNED_IN = "auth:session:signed-in"
#: The gate's refusal reason when a release budget is spent (see ``budget``).
BUDGET_REASON = "release budget"
#: Who the automatic responses' ledger entries are by (``respond``).
RESPONDER = "system:detect"


def targeted(resource_type: str | None, params: Iterable[object]) -> bool:
    """Whether a search's criteria (its parameter names, as the gate records them)
    name what it returns one by one: ``_id``, ``identifier``, a telephone number or an
    email address (``phone``, ``email``: a household's number finds its members, each
    looked for), or a parameter that names patients by reference (``patient``,
    ``subject``). A name, a birth date or a clinic is a broad net; these are a list of
    picks."""
    rt = RESOURCE_TYPES.get(resource_type or "")
    for raw in params:
        name = str(raw).partition(":")[0]
        if name in _PICKING:
            return True
        param = rt.param(name) if rt is not None else None
        if param is not None and param.patient:
            return True
    return False


#: Search parameters that name records one by one on every resource type. A contact
#: point too (adversary round 58): ``Patient?phone=`` with one's home number gave one's
#: own record and a spouse's, two patients, so neither was a pick and no kin alert came,
#: where ``phone=a,b`` (a list) or a search that found one picked each.
_PICKING = frozenset({"_id", "identifier", "phone", "email"})
#: A search whose criteria list alternatives (``family=Ho,Yip``) picked each patient it
#: gave when it gave at most this many, or no more than its alternatives could name.
LISTED_FEW = 5
#: The most people a search's alternatives are taken to name (their product, capped).
_LISTED_MOST = 10_000


def listed(alternatives: object, patients: int) -> bool:
    """Whether a search that gave ``patients`` patients named them one by one with a list
    of alternatives: ``alternatives`` is what the gate records (``detail.alternatives``:
    criterion → how many values it listed, for those that listed more than one). A list
    of surnames, names, phone numbers or email addresses that gives a handful of patients, or
    no more than it listed, is a pick of each, as ``_id=a,b`` is: the person looked for
    these people, not for whoever matches. A long list that gives many more patients
    than it named is a broad net."""
    if not isinstance(alternatives, dict):
        return False
    named = 1
    for count in alternatives.values():
        if isinstance(count, int) and not isinstance(count, bool) and count > 1:
            named = min(_LISTED_MOST, named * count)
    return named > 1 and patients <= max(LISTED_FEW, named)


@dataclass(frozen=True)
class Access:
    """One audit-ledger entry as the detectors see it, with whether care explains it."""

    position: int
    at_us: int
    tag: str
    outcome: str
    principal: str | None
    role: str | None = None
    clinic_ids: tuple[str, ...] = ()
    client_id: str | None = None
    session_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None
    resource_type: str | None = None
    patient_pseudonym: str | None = None
    purpose: str | None = None
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    #: The request that wrote the entry (the same for every entry of one response);
    #: None for entries written before the ledger kept it.
    request_id: str | None = None
    #: A care relationship (appointment, visit, order, care team, referral) covers it.
    explained: bool = False
    #: Care covers it closely: care that names the person, or care at their clinic
    #: within a day of its visit or appointment (``explain``). What a VIP's record asks.
    near_care: bool = False
    #: Explained by a break-the-glass grant alone (purpose ETREAT while the account holds
    #: an active grant for the patient, ``explain``): the grant's review judges it, and
    #: a VIP, co-worker or household member opened so is told to an officer at once
    #: (a low alert, raised only: adversary round 60).
    under_grant: bool = False
    #: What the patient shares with the account's person (``detect.kin``): surname,
    #: household, building, co-worker, own-record.
    kin: tuple[str, ...] = ()
    #: The records of care that explain it (their vault rows) when every relationship
    #: that does was made by one other principal alone (``granted_by``): a booking no
    #: one else has written since. Empty when care the system stated, or two people
    #: wrote, explains it, or when nothing does (``explain``).
    made_alone: tuple[int, ...] = ()
    #: Explained only by care no person but the account's own vouched for: a client
    #: app's writes alone, or a client's and the account's person's (``domain.makers``).
    #: It explains the access, but not a read of a VIP (adversary round 82).
    client_care: bool = False
    #: When the first of ``made_alone`` was first written (µs); set only for an
    #: account watched after a step-up (``engine``), None otherwise.
    care_made_us: int | None = None

    @classmethod
    def parse(cls, position: int, data: bytes) -> Access:
        try:
            # Every entry is parsed once by the detectors: orjson takes a third of the time.
            document = orjson.loads(data)
        except orjson.JSONDecodeError:  # e.g. an integer past 64 bits
            document = json.loads(data)
        return cls(
            position=position,
            at_us=int(document.get("at_us", 0)),
            tag=str(document.get("tag", "")),
            outcome=str(document.get("outcome", "")),
            principal=document.get("principal"),
            role=document.get("role"),
            clinic_ids=tuple(document.get("clinic_ids", ())),
            client_id=document.get("client_id"),
            session_id=document.get("session_id"),
            source_address=document.get("source_address"),
            user_agent=document.get("user_agent"),
            resource_type=document.get("resource_type"),
            patient_pseudonym=document.get("patient_pseudonym"),
            purpose=document.get("purpose"),
            reason=str(document.get("reason", "")),
            detail=dict(document.get("detail") or {}),
            request_id=document.get("request_id"),
        )

    @cached_property
    def account(self) -> str | None:
        """The person or program the detectors follow: a staff principal or a client.
        (Asked a dozen times per entry by the detectors: worked out once.)"""
        if self.principal and not self.principal.startswith("system:"):
            return self.principal
        return None

    @property
    def released(self) -> bool:
        """Patient data left the gate in this entry."""
        return (
            self.outcome == "success"
            and self.tag in RELEASING
            and self.patient_pseudonym is not None
            and self.account is not None
        )

    @property
    def wrote(self) -> bool:
        """An account wrote a record in this entry."""
        return self.outcome == "success" and self.tag in WRITING and self.account is not None

    @property
    def attempted(self) -> bool:
        """Patient data released, or refused, to an account: what a person tried to open."""
        return (
            self.outcome in ("success", "denied")
            and self.tag in RELEASING
            and self.patient_pseudonym is not None
            and self.account is not None
        )

    @property
    def picked(self) -> bool:
        """The person chose this patient: a read, history or ``$everything``, a search
        that gave this one patient only (a broad search's other matches were not
        chosen), or a search that names its records or patients one by one (``_id=a,b``,
        ``identifier=x,y``, ``patient=a,b``, or a list of alternatives that gave few
        patients, ``family=Ho,Yip``: each is a pick, as a read of each would be)."""
        patients = int(self.detail.get("patients", 1) or 1)
        if patients == 1:
            return True
        return targeted(self.resource_type, self.detail.get("params") or ()) or listed(
            self.detail.get("alternatives"), patients
        )

    @property
    def denied(self) -> bool:
        return self.outcome == "denied"


@dataclass(frozen=True)
class Finding:
    """What a detector concluded from the entries up to ``last_position``."""

    detector: str
    severity: Severity
    #: Dedup: the same detector, subject and period make one alert, updated.
    period: str
    explanation: str
    access: Access
    patients: tuple[str, ...] = ()
    first_position: int | None = None
    #: The ledger position of the first entry that gave this finding in its batch (None:
    #: ``access``'s): the entry an alert it raises was raised on.
    trigger: int | None = None
    #: The alert becomes critical once it names this many patients in all, however many
    #: findings brought them (None: the findings' own severity stands).
    critical_at: int | None = None

    def severity_for(self, severity: Severity, patients: int) -> Severity:
        """``severity``, raised to critical when ``patients`` reach ``critical_at``."""
        if self.critical_at is not None and patients >= self.critical_at:
            return Severity.CRITICAL
        return severity

    @property
    def subject(self) -> str:
        return self.access.account or self.access.principal or "system"

    @property
    def dedup_key(self) -> str:
        return f"{self.detector}|{self.subject}|{self.period}"
