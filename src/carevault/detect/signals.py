"""The detectors: each ledger entry in, findings out. Pure: no I/O, no clock.

Explanation comes first: breadth counts only the patients no care relationship
explains. What stays is judged against the person's own closed days (robust limits)
and, for a new account, their role's (cold start), with floors per role below which
nothing is raised however quiet the history. See docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from typing import TypeVar, cast

from carevault.access.care import CARE_TYPES
from carevault.access.registrations import ALREADY_REGISTERED, MAX_FAILURES
from carevault.detect.drip import closed_days, person_cusum, today
from carevault.detect.glass import (
    BREAK_GLASS_DAY_FACTOR,
    BREAK_GLASS_PER_HOUR,
    BREAK_GLASS_WEEK_FACTOR,
    GrantWeek,
    glass_sweep,
    granted,
    named,
    under_grant,
)
from carevault.detect.model import (
    BUDGET_REASON,
    DAY_US,
    EXPORT_DOWNLOADED,
    EXPORT_TAG,
    HOUR_US,
    MINUTE_US,
    REFUSED_SIGN_INS,
    RELEASING,
    Access,
    Finding,
    Severity,
    network_of,
)
from carevault.detect.profile import (
    REGISTRATION_WINDOW_US,
    SPANS,
    WRITES_HOUR,
    Profile,
    Recent,
    RoleBaseline,
    breadth_windows,
    close_day,
)
from carevault.detect.snoop import observe_picks, snooping
from carevault.detect.stats import Cusum, cusum_for, quantile, robust_limit
from carevault.detect.windows import CountWindow, DistinctWindow

#: Distinct unexplained patients per (10 minutes, hour, day) never alerted on, per role.
ROLE_FLOORS: dict[str, tuple[int, int, int]] = {
    "physician": (20, 40, 120),
    "nurse": (20, 40, 120),
    "pharmacist": (25, 60, 200),
    "front_desk": (25, 60, 250),
    "clinic_manager": (25, 60, 200),
    "privacy_officer": (25, 60, 200),
    "billing": (80, 400, 2000),
    "integration": (300, 1500, 8000),
}
DEFAULT_FLOORS = (25, 60, 200)
#: Records an integration client may write in an hour, whatever its history, before an
#: alert (``detect_client_writes_per_hour``): above it, its own usual peak (or its
#: role's) decides. A compromised client's secret writes as fast as it reads.
CLIENT_WRITES_PER_HOUR = 2000
#: Distinct patients whose stored records a member of staff may change (update, patch,
#: delete) in ten minutes before an alert (``detect_staff_changes_per_10_minutes``): one
#: every fifteen seconds, for ten minutes, is no one's work at a desk or a bedside; it is
#: a script rewriting where the notices and codes go (every patient's phone number).
STAFF_CHANGES_PER_10_MINUTES = 40
#: Distinct patients a client app may create care for (a booking, a visit, a care team,
#: a referral) in ten minutes before ``client-care`` (``detect_client_care_per_10_minutes``).
#: A booking opens the patient's record to the clinic and the practitioners it names,
#: and a client's secret booked 60 patients in a minute for one doctor, who then read
#: them with every read explained (adversary round 82). Patients book online a few at
#: a time, not one every fifteen seconds for ten minutes: the staff floor. A feed that
#: books in batches (a schedule synchronised from another system) needs it raised.
CLIENT_CARE_PER_10_MINUTES = STAFF_CHANGES_PER_10_MINUTES
#: What a member of staff changes, of what is stored: new records (a registration, a
#: note) are not counted, but for care (``_books``).
CHANGING = frozenset({"fhir:resource:update", "fhir:resource:delete"})
EVERYTHING_PER_HOUR = 10
#: How a slow drip's reason reads its CUSUM: the excess over the usual, day by day since
#: it last fell back to it, which may be one day's (an integrator's client minutes old was
#: told it had run high "for days").
_SUMMED = "each day's excess over the usual, added up since it was last back to it"
#: Distinct patients no care relationship explains that an account may open after a
#: step-up response before ``after-step-up`` (``detect_after_step_up``). Whoever holds a
#: stolen password and TOTP seed passes the step-up (or signs in again) and reads on;
#: the person whose alert was false goes back to their own patients, whom care explains.
AFTER_STEP_UP = 20
#: How long the watch lasts after an account's latest step-up.
WATCH_US = DAY_US
#: Registrations that registered no one an account may make in the throttle's window
#: before ``registration-fishing``: the throttle's own allowance, so the alert comes with
#: the first attempt the throttle refuses (recorded as a failure too).
REGISTRATION_MISSES = MAX_FAILURES
REGISTERED = "fhir:patient:registered"
CREATED = "fhir:resource:create"
#: What makes care by a member of staff (their other changes are counted as changes).
CREATES = frozenset({CREATED})
#: What makes care by a client: a new record of care, or a version naming whom it names
#: now. Counted for a client as staff's updates are: one patient, once, in ten minutes.
CARE_WRITES = frozenset({CREATED, "fhir:resource:update"})
#: Changes of who reaches a patient's records, or of who the record says they are, made
#: by hand (``officer-changes``): more than this many in an hour by one account.
OFFICER_CHANGES_PER_HOUR = 10
#: Those changes' tags, besides an officer's registration (``_changed_by_hand``).
BY_HAND = frozenset(
    {"fhir:patient:transferred", "fhir:patient:unregistered", "fhir:patient:identifier-removed"}
)
DENIALS_PER_10_MINUTES = 20
NAME_SEARCHES_PER_HOUR = 30
VAGUE_SEARCHES_PER_HOUR = 10
#: Entries of one response are appended within this of each other; two searches are not.
SAME_RESPONSE_US = 500_000
DORMANT_US = 21 * DAY_US
TWO_PLACES_US = 5 * MINUTE_US
UNUSUAL_HOUR_SHARE = 0.01
SPAN_INDEX = {span: index for index, span in enumerate(SPANS)}
NAME_PARAMS = frozenset({"name", "family", "given"})
T = TypeVar("T")


@dataclass
class Context:
    """What the detectors know besides the entries: flags a privacy officer set, since
    when the ledger has been watched, and when each account was created."""

    decoys: Set[str] = frozenset()
    vips: Set[str] = frozenset()
    observed_since_us: int = 0
    created_us: dict[str, int] = field(default_factory=dict)
    offset_us: int = 8 * HOUR_US
    #: (account, "surname" | "building") → the share of all patients who carry the
    #: person's surname or live in their building (``detect.kin``).
    kin_shares: Mapping[tuple[str, str], float] = field(default_factory=dict)


#: The counting detectors, and their windows' spans (``Recent``'s windows of each).
BURSTS = {
    "denials": 10 * MINUTE_US,
    "name-searches": HOUR_US,
    "registration-fishing": REGISTRATION_WINDOW_US,
    "name-fishing": HOUR_US,
    "officer-changes": HOUR_US,
}


@dataclass
class Person:
    """Every login of one practitioner together (as ``detect/budget.holder`` counts
    them): the distinct patients no care relationship explains that any of the logins
    opened, per window of breadth. Kept only for a practitioner with more than one login
    (``engine``); rebuilt from the ledger on restart, as every window is."""

    #: The logins (``staff:<username>``), sorted.
    logins: tuple[str, ...]
    breadth: dict[str, DistinctWindow] = field(default_factory=breadth_windows)
    #: As ``Recent.changed`` and ``Recent.glass``, of every login together.
    changed: DistinctWindow = field(default_factory=lambda: DistinctWindow(10 * MINUTE_US))
    glass: DistinctWindow = field(default_factory=lambda: DistinctWindow(HOUR_US))
    glass_day: DistinctWindow = field(default_factory=lambda: DistinctWindow(DAY_US))
    #: As ``Recent.everything``, of every login together.
    everything: DistinctWindow = field(default_factory=lambda: DistinctWindow(HOUR_US))
    #: The counts ``_burst`` judges (``BURSTS``), of every login
    #: together (adversary round 58: five searches by initials with each of two logins
    #: fished unseen, ten refusals with each went past no one's twenty).
    counts: dict[str, CountWindow] = field(
        default_factory=lambda: {name: CountWindow(span) for name, span in BURSTS.items()}
    )
    #: Only its picks (``Recent.picks``, ``kin_picks``) of every login together: three
    #: namesakes opened with each of two logins are six of one person's (round 58).
    picks: Recent = field(default_factory=Recent)
    #: The latest step-up of any of the logins, and the patients no care explains that
    #: the logins opened since, together (``Recent.watch``, ``watched``): two logins
    #: held to the watch's allowance each read twice as many (round 58).
    watch_last: int | None = None
    watched: set[str] = field(default_factory=set)
    #: Each login's state in memory, for the person's ``slow-drip`` (``detect.drip``),
    #: which needs their days, not windows of its own.
    states: dict[str, AccountState] = field(default_factory=dict)
    #: The person's CUSUM before today and the one to judge today by, with what they
    #: were worked out from (each login's closed days, the role's pool): they change
    #: only when a day closes.
    drip: tuple[tuple[object, ...], Cusum, float] | None = None

    def observe_picks(self, access: Access, day: int) -> None:
        """Count a pick of one of the logins (``snoop.observe_picks``) on ``day``."""
        if day > self.picks.day:
            self.picks.start_day(day)
        observe_picks(access, self.picks)

    def link(self, logins: tuple[str, ...], states: Mapping[str, AccountState]) -> None:
        """The person's logins now, and the states of those in memory (``states``: by
        login), each linked to this person."""
        self.logins = logins
        self.states = {login: states[login] for login in logins if login in states}
        for state in self.states.values():
            state.person = self

    def cusum(self, day: int, role: RoleBaseline | None) -> tuple[Cusum, float]:
        """The person's CUSUM to judge ``day`` by and its total before ``day``."""
        logins = [(state.profile, state.recent) for state in self.states.values()]
        key = (
            day,
            tuple((p.day, len(p.days), r.day, bool(r.today_unexplained)) for p, r in logins),
            id(role),
            role.version if role is not None else 0,
        )
        if self.drip is None or self.drip[0] != key:
            pooled = role.samples.get("unexplained", []) if role is not None else []
            cusum, total = person_cusum(closed_days(logins, day), pooled)
            self.drip = (key, cusum, total)
        return self.drip[1], self.drip[2]


@dataclass
class AccountState:
    profile: Profile
    recent: Recent = field(default_factory=Recent)
    #: The account's person, when its practitioner has other logins.
    person: Person | None = None


def _network(address: str | None) -> str | None:
    """The network an address is judged by (``model.network_of``), or the address itself
    if it is none; None without one."""
    if not address:
        return None
    return network_of(address) or address


def _missed(access: Access) -> bool:
    """A ``$register`` that registered no one: no single patient matched, or the one that
    matched was the clinic's already (as the registration throttle counts them)."""
    return access.outcome == "failed" or (
        access.outcome == "success" and access.reason == ALREADY_REGISTERED
    )


def _probed(access: Access) -> bool:
    """A write refused as it would give a second record to a patient the account may not
    see (``If-None-Exist`` on an identifier, an HKID written onto a patient of its own),
    or held back by the registration throttle that counts these with ``$register``'s
    misses: each told whether an identifier is a patient's of the group (adversary
    round 59)."""
    return access.tag != REGISTERED and access.detail.get("registration_miss") is True


def _books(access: Access, recent: Recent, tags: frozenset[str] = CREATES) -> bool:
    """A new record of care (a booking, a visit, a care team, a referral) for a patient
    the account did not itself register today or yesterday: it explains the patient's
    reads to everyone else at the clinic, so a desk that books the whole clinic for today
    opens it to a second account (which ``after-step-up`` counts if that account is
    watched). ``staff-changes`` counts it with the changes: a desk books a walk-in it
    registers, or the day's patients one at a time, never one every fifteen seconds.

    ``tags``: what counts as making care; a client's version of a record of care
    (``CARE_WRITES``) opens it anew too, to whom it names now (adversary round 83: a
    client's secret naming a doctor on sixty old bookings in a minute)."""
    return (
        access.tag in tags
        and access.resource_type in CARE_TYPES
        and access.patient_pseudonym not in recent.presented
        and access.patient_pseudonym not in recent.presented_before
    )


def _presented(access: Access) -> bool:
    """A patient record the account created (a new patient at the desk): what it holds,
    the account wrote. Not a ``$register`` of a patient the group holds already: an
    identifier and birth date known from elsewhere would open the record unwatched. Nor
    a deleted patient written again at its id (a create to R4, a later version here):
    a watched desk deleted another desk's patients, wrote each back with a name of its
    own, and read their visits uncounted."""
    return (
        access.outcome == "success"
        and access.tag == CREATED
        and access.resource_type == "Patient"
        and bool(access.patient_pseudonym)
        and access.detail.get("version") == 1
    )


def _changed_by_hand(access: Access) -> bool:
    """A change of who reaches a patient's records or of who their record says they are,
    made by one person's hand rather than by care: a registration on a privacy officer's
    confirmation (a first presence among them: it moves the home), a registration an
    officer ended, an identifier they removed, a home transferred (by an officer or a
    clinic manager). Each is rare; a stolen officer's or manager's login making many moves
    patients to a clinic of its choosing (left open at stop 62: no detector weighed them).
    What changed nothing (a registration already there, one not there to end) is not one."""
    if access.outcome != "success":
        return False
    if access.tag == REGISTERED:
        return access.detail.get("proof") == "officer" and access.reason != ALREADY_REGISTERED
    if access.tag == "fhir:patient:unregistered":
        return access.reason.startswith("registration ended")
    return access.tag in BY_HAND


def _registered_again(access: Access, day: int) -> Finding:
    """A ``$register`` at a clinic that was the patient's home until their record moved
    away (``re-registration``): by a first registration elsewhere of a person no one had
    recorded seeing, which ends the ties of the clinic that wrote the record, or by a
    transfer. Honest when the person comes back; an insider who wrote the record before
    the person ever came learns from its reads turning 403 that they came elsewhere, and
    registers them again by what it typed (review of stop 62). For a person to judge."""
    pseudonym = access.patient_pseudonym or ""
    return Finding(
        "re-registration",
        Severity.LOW,
        f"{day} {pseudonym}",
        "registered a patient whose home this clinic was until their record moved away",
        access,
        (pseudonym,) if pseudonym else (),
    )


def _downloaded_elsewhere(access: Access, day: int) -> Finding | None:
    """A bulk export's file fetched from another network (/24, /64) than the one the
    export was asked for from (``export-download``): the files wait, written, until the
    client fetches them, and whoever holds its secret by then fetches them from wherever
    they are (adversary round 78: a secret stolen after the files were written). One
    alert a job and day, naming no patient (the file's ``bulk:export:file-released``
    entries name them)."""
    if access.outcome != "success":
        return None
    asked = access.detail.get("asked_from")
    fetched, origin = (
        _network(access.source_address),
        _network(asked if isinstance(asked, str) else None),
    )
    if fetched is None or origin is None or fetched == origin:
        return None
    job = str(access.detail.get("job", ""))[:64]
    # Another address family is judged as another network: a thief holding the secret
    # picks the family it fetches over, and a low alert for it was an evasion (third
    # review of stop 62). A dual-stack client asking over one family and fetching over
    # the other is revoked too, and told why; an officer lifts it.
    same_family = (":" in fetched) == (":" in origin)
    return Finding(
        "export-download",
        Severity.HIGH,
        f"{day} {job}",
        f"fetched a file of bulk export {job} from {fetched}, not from {origin}, where the "
        "export was asked for: the client's secret in other hands?"
        + ("" if same_family else " (another address family: perhaps the same host)"),
        access,
        (),
    )


def _honeytoken(access: Access, pseudonym: str, why: str) -> Finding:
    return Finding("honeytoken", Severity.CRITICAL, pseudonym, why, access, (pseudonym,))


def _tried_decoy(access: Access, context: Context) -> Finding | None:
    """A refused attempt to open a decoy patient (a read, search, history or
    ``$everything`` the gate refused, e.g. a record of another clinic): its id or details
    came from taken data as surely as an opened decoy's did, as a search for a decoy
    contact detail does. The picks count refused attempts for the same reason; the
    honeytoken did not (adversary round 59, detection evasion: ids from a stolen dump
    tried with a stolen account of another clinic, 19 refusals in ten minutes, raised
    nothing). So is a write refused for matching a decoy the caller may not see (an
    ``If-None-Exist`` on the decoy's HKID, the HKID written onto a patient of one's own:
    ``_probed``), which names the decoy: its number came from taken data."""
    pseudonym = access.patient_pseudonym
    if pseudonym is None or pseudonym not in context.decoys:
        return None
    if access.tag not in RELEASING and not _probed(access):
        return None
    return _honeytoken(
        access, pseudonym, "tried to open a decoy patient that no legitimate work ever opens"
    )


def _vip_finding(access: Access, context: Context, pseudonym: str) -> Finding | None:
    """A patient marked VIP opened without care (high; medium for a front desk, which
    looks up whoever calls to book before the booking exists and is shown no clinical
    data: seed 41's month suspended an honest desk for one), or by staff whom only their
    clinic's care explains, more than a day from any visit (medium: a relationship opens a
    record to all the clinic's staff for months around a visit; care that names the
    person, or a visit within a day, explains a look; client apps are judged by care
    alone). Medium is paused for a fresh code, then watched.

    Care no person but the reader vouched for (a client app's writes alone, or a client's
    and the reader's own: ``Access.client_care``) explains no member of staff's look
    either (medium: adversary round 82, one insider holding a doctor's login and a
    kiosk's secret booked VIPs for themself with it). Medium, not high: an honest doctor
    or desk opening a VIP the online portal booked is paused for a fresh code, not
    suspended, and an officer sees the case; the insider meets the same step-up and the
    same case, and a person's word on the care (the desk checking the VIP in) ends it."""
    if pseudonym not in context.vips:
        return None
    staff = (access.account or "").startswith("staff:")
    if not access.explained:
        severity = Severity.MEDIUM if access.role == "front_desk" else Severity.HIGH
        why = "opened a patient marked VIP without a care relationship"
    elif access.client_care and staff:
        severity = Severity.MEDIUM
        why = (
            "opened a patient marked VIP whose only care is a client app's writing (with, "
            "at most, this person's own): no other person vouched for it"
        )
    elif not access.near_care and staff:
        severity = Severity.MEDIUM
        why = (
            "opened a patient marked VIP whose care at the clinic is more than a day from "
            "any visit or appointment, and does not name this person"
        )
    else:
        return None
    return Finding("vip", severity, pseudonym, why, access, (pseudonym,))


#: At most this many responses of one account are followed while their entries come.
OPEN_SEARCHES = 8


def _new_search(access: Access, recent: Recent) -> bool:
    """False for the second and later entries of one search's response (one entry per
    patient, ``patients`` of them): a search counts once, however many patients it
    found, and each search of a batch or transaction Bundle once (its entries share the
    request's id: ten searches by initials in one batch are ten). Entries written before
    the ledger kept request ids are told apart by shape (consecutive, same session and
    patient count, within the instant); by request id, another entry landing between
    two of a response's (under load) does not make it two."""
    patients = max(1, int(access.detail.get("patients", 1) or 1))
    if access.request_id:
        opened = recent.open_searches
        response = (access.request_id, patients)
        left = opened.pop(response, 0)
        if left > 1:
            opened[response] = left - 1
        if left:
            return False
        if patients > 1:
            opened[response] = patients - 1
            while len(opened) > OPEN_SEARCHES:
                del opened[next(iter(opened))]
        return True
    key = (access.session_id, access.principal, patients)
    last = recent.last_search
    same = (
        last is not None
        and last[3] > 0
        and last[0] == key
        and last[1] == access.position - 1
        and access.at_us - last[2] < SAME_RESPONSE_US
    )
    left = last[3] - 1 if same and last is not None else patients - 1
    recent.last_search = (key, access.position, access.at_us, left)
    return not same


def limit_for(span: str, profile: Profile, role: RoleBaseline | None) -> tuple[int, str]:
    """The most distinct unexplained patients in ``span`` before an alert, and why."""
    floors = ROLE_FLOORS.get(profile.role or "", DEFAULT_FLOORS)
    pooled = role.samples.get(span, []) if role is not None else []
    return baseline_limit(floors[SPAN_INDEX[span]], profile.history(span), pooled, profile)


#: Roles whose work is not care: their clinic's care does not explain what they open
#: (``care_explains_none``).
NOT_CARE_ROLES = frozenset({"billing", "integration"})


def care_explains_none(access: Access, role: str | None) -> bool:
    """Whether care explains none of what ``access``'s account opens, so that every
    patient it is given is judged as unexplained (``breadth``, the day's unexplained
    patients of ``slow-drip``, the watch after a step-up): a billing clerk or a program
    (a client's secret), whose work is no patient's care. A clinic's bookings explain
    every other account's reads of the patients booked, so a stolen billing login or
    client secret paged every patient the clinic saw today, 400 in a second, and no
    detector counted one; only the release budget (thousands an hour for these roles)
    bounded it (adversary round 81). Counted, they are judged against these roles' own
    floors, which are sized for work that opens many patients."""
    return role in NOT_CARE_ROLES or (access.account or "").startswith("client:")


def baseline_limit(
    floor: int, own_days: list[float], pooled: list[int], profile: Profile
) -> tuple[int, str]:
    """The most of a count before an alert, and why: the account's own usual peak
    (robust, over its closed days), or for a new account 1.5 times its role's 99th
    percentile, and never below ``floor``."""
    own = robust_limit(own_days)
    role_p99 = quantile(pooled, 0.99) if len(pooled) >= 20 else None
    parts = [f"the floor for {profile.role or 'this role'} is {floor}"]
    if own is not None:
        parts.insert(0, f"this account's usual peak is at most {own:.0f}")
        chosen = max(floor, own)
    elif role_p99 is not None:
        chosen = max(floor, 1.5 * role_p99)
    else:
        chosen = floor
    if role_p99 is not None:
        parts.append(f"the role's 99th percentile is {role_p99:.0f}")
    return int(chosen), "; ".join(parts)


def _cusum(_name: str, profile: Profile, role: RoleBaseline | None) -> Cusum:
    pooled = role.samples.get("unexplained", []) if role is not None else []
    return cusum_for(profile.history("unexplained"), pooled)


def _baseline(
    name: str,
    profile: Profile,
    recent: Recent,
    role: RoleBaseline | None,
    work_out: Callable[[str, Profile, RoleBaseline | None], T],
) -> T:
    """``work_out(name, profile, role)``, again only once a day has closed (the
    person's or another of the role's) since it was last worked out."""
    key = (profile.role, profile.day, len(profile.days), id(role), role.version if role else 0)
    cached = recent.baselines.get(name)
    if cached is not None and cached[0] == key:
        return cast(T, cached[1])
    value = work_out(name, profile, role)
    recent.baselines[name] = (key, value)
    return value


class Detectors:
    """Feed entries in ledger order with ``observe``; ``live`` False only rebuilds the
    in-memory windows (after a restart) and never finds or learns anything."""

    def __init__(
        self,
        client_writes_per_hour: int = CLIENT_WRITES_PER_HOUR,
        break_glass_per_hour: int = BREAK_GLASS_PER_HOUR,
        staff_changes_per_10_minutes: int = STAFF_CHANGES_PER_10_MINUTES,
        after_step_up: int = AFTER_STEP_UP,
        client_care_per_10_minutes: int = CLIENT_CARE_PER_10_MINUTES,
    ) -> None:
        self.client_writes_per_hour = client_writes_per_hour
        self.client_care_per_10_minutes = client_care_per_10_minutes
        self.break_glass_per_hour = break_glass_per_hour
        self.staff_changes_per_10_minutes = staff_changes_per_10_minutes
        self.after_step_up = after_step_up

    @staticmethod
    def stepped_up(state: AccountState, at_us: int, position: int, by: str | None = None) -> None:
        """The account's sessions were paused for a step-up (``detect:session:step-up``),
        or those of ``by``, another login of its practitioner: watch it for a day. A
        step-up within a watch extends it; the count goes on."""
        recent = state.recent
        if recent.watch is None or at_us - recent.watch[1] > WATCH_US:
            recent.watch = (at_us, at_us, position)
            recent.watched = set()
            recent.fresh, recent.fresh_day = set(), None
        else:
            recent.watch = (recent.watch[0], at_us, recent.watch[2])
        recent.watch_by = by
        person = state.person
        if person is not None:
            if person.watch_last is None or at_us - person.watch_last > WATCH_US:
                person.watched = set()
            person.watch_last = max(at_us, person.watch_last or at_us)

    def observe(
        self,
        access: Access,
        state: AccountState,
        role: RoleBaseline | None,
        context: Context,
        *,
        live: bool = True,
    ) -> list[Finding]:
        profile, recent = state.profile, state.recent
        if live and access.role and access.role != "system":
            profile.role = access.role
        local = access.at_us + context.offset_us
        day, hour = local // DAY_US, (local % DAY_US) // HOUR_US
        if day != recent.day:
            if live:
                self._close(profile, recent, role, day)
            else:
                recent.start_day(day)
        found: list[Finding] = []
        if access.tag in REFUSED_SIGN_INS:
            return []  # the sender's, not this account's: ``signin`` counts them per source
        if _presented(access):
            recent.presented.add(access.patient_pseudonym or "")
        if _changed_by_hand(access):
            burst = self._counted(access, state, "officer-changes", OFFICER_CHANGES_PER_HOUR, day)
            found.extend(burst if live else [])
        if (access.tag == REGISTERED and _missed(access)) or _probed(access):
            burst = self._counted(access, state, "registration-fishing", REGISTRATION_MISSES, day)
            found.extend(burst if live else [])
            tried = _tried_decoy(access, context)
            if tried is not None:
                found.append(tried)
            return found if live else []
        if access.denied:
            observe_picks(access, recent)
            if state.person is not None:
                state.person.observe_picks(access, day)
            count = recent.denials.add(access.at_us, access.position)
            together = _together(state, "denials", access, count)
            if BUDGET_REASON in access.reason:
                found.append(
                    Finding(
                        "release-budget",
                        Severity.HIGH,
                        str(day),
                        f"refused at the gate: {access.reason}",
                        access,
                        (access.patient_pseudonym,) if access.patient_pseudonym else (),
                    )
                )
            elif count >= DENIALS_PER_10_MINUTES:
                found.append(self._burst(access, "denials", recent, day))
            elif together >= DENIALS_PER_10_MINUTES:
                found.append(self._burst(access, "denials", recent, day, state.person))
            tried = _tried_decoy(access, context)
            if tried is not None:
                found.append(tried)
            return found if live else []
        if access.wrote:
            if profile.role == "integration" or (access.account or "").startswith("client:"):
                count = recent.writes.add(access.at_us, access.position)
                recent.writes_peak = max(recent.writes_peak, count)
                if live:
                    found.extend(self._writes(access, state, role, day))
                if access.patient_pseudonym and _books(access, recent, CARE_WRITES):
                    booked = recent.changed.add(
                        access.patient_pseudonym, access.at_us, access.position
                    )
                    if live and booked > self.client_care_per_10_minutes:
                        found.append(self._client_care(access, recent, day))
            elif access.patient_pseudonym and (access.tag in CHANGING or _books(access, recent)):
                count = recent.changed.add(access.patient_pseudonym, access.at_us, access.position)
                limit = self.staff_changes_per_10_minutes
                if live and count > limit:
                    found.append(self._changes(access, recent, recent.changed, day))
                person = state.person
                if person is not None:
                    together = person.changed.add(
                        access.patient_pseudonym, access.at_us, access.position
                    )
                    if live and count <= limit < together:
                        found.append(self._changes(access, recent, person.changed, day, person))
            return found if live else []
        if access.tag == "fhir:resource:search" and _new_search(access, recent):
            if NAME_PARAMS & set(access.detail.get("params", ())):
                count = recent.name_searches.add(access.at_us, access.position)
                _together(state, "name-searches", access, count)
            fishing = self._fishing(access, state, day)
            if fishing is not None and live:
                found.append(fishing)
        if granted(access):
            # A grant explains the reads under it, so the watch counts the grant: whoever
            # passed a step-up with a phished seed could otherwise break the glass for as
            # many patients an hour as ``break-glass-volume`` allows, unwatched.
            pseudonym = access.patient_pseudonym or ""
            watching = self._watching(access, state, role, pseudonym, live)
            sweep = self._sweep(access, state, day)
            return [f for f in (watching, sweep) if f is not None] if live else []
        if (
            live
            and access.tag == REGISTERED
            and access.outcome == "success"
            and access.detail.get("home_before") is True
        ):
            found.append(_registered_again(access, day))
        if live and access.tag == EXPORT_DOWNLOADED:
            elsewhere = _downloaded_elsewhere(access, day)
            if elsewhere is not None:
                found.append(elsewhere)
        if not access.released:
            # A search that found no one may still be the one that made a burst of
            # fishing (adversary round 59: the tenth search by initials, finding no one,
            # lost its alert, and an hour of fishing ending so raised nothing).
            return found
        if access.tag == EXPORT_TAG and access.explained:
            # An officer-approved export (see ``explain``): its own ``bulk-export`` alert
            # keeps it in view; it is neither reading to judge nor a habit to learn.
            return []
        pseudonym = access.patient_pseudonym or ""
        recent.today_all.add(pseudonym)
        observe_picks(access, recent)
        if state.person is not None:
            state.person.observe_picks(access, day)
        # Judged as unexplained: what no care explains, and whatever a billing clerk or a
        # client opens (breadth, the drip, the watch after a step-up alike; the review of
        # stop 64: a billing thief past a step-up read 300 booked patients unwatched).
        if not access.explained or care_explains_none(access, profile.role):
            recent.today_unexplained.add(pseudonym)
            for name, window in recent.breadth.items():
                count = window.add(pseudonym, access.at_us, access.position)
                recent.peaks[name] = max(recent.peaks[name], count)
                if live:
                    found.extend(self._breadth(access, name, state, role, day))
            if state.person is not None:
                found.extend(self._person_breadth(access, state, role, pseudonym, day, live))
            watching = self._watching(access, state, role, pseudonym, live)
            if watching is not None:
                found.append(watching)
        elif access.care_made_us is not None:
            # Explained only by care another account made alone: the watch counts it if
            # that care was made after the watch began.
            watching = self._watching(access, state, role, pseudonym, live, fresh=day)
            if watching is not None:
                found.append(watching)
        if access.tag == "fhir:patient:everything":
            # Patients, not calls: the pages of one patient's $everything (each a ledger
            # entry of its own) and a chart opened again are one (the integrators' round
            # of stop 65: a client paging one chart two records a page was revoked).
            calls = recent.everything.add(pseudonym, access.at_us, access.position)
            together = (
                calls
                if state.person is None
                else state.person.everything.add(pseudonym, access.at_us, access.position)
            )
            person = state.person if calls <= EVERYTHING_PER_HOUR else None
            calls_of = recent.everything if person is None else person.everything
            if live and max(calls, together) > EVERYTHING_PER_HOUR:
                found.append(
                    Finding(
                        "everything-calls",
                        Severity.HIGH,
                        f"{day} person" if person else str(day),
                        f"$everything of {len(calls_of)} patients{_with(person)} in an hour "
                        f"(more than {EVERYTHING_PER_HOUR})",
                        access,
                        (pseudonym,),
                        calls_of.first_position,
                    )
                )
        if not live:
            recent.place = (access.source_address or "", access.at_us)
            return []
        found.extend(self._flags(access, context, pseudonym))
        found.extend(under_grant(access, context.vips, day))
        found.extend(self._context(access, state, role, context, day, hour))
        found.extend(self._drip(access, state, role, day))
        if profile.role not in ("front_desk", "integration") and (access.account or "").startswith(
            "staff:"
        ):
            if len(recent.name_searches) > NAME_SEARCHES_PER_HOUR:
                found.append(self._burst(access, "name-searches", recent, day))
            elif (
                state.person is not None
                and len(state.person.counts["name-searches"]) > NAME_SEARCHES_PER_HOUR
            ):
                found.append(self._burst(access, "name-searches", recent, day, state.person))
        self._learn(access, profile, role, hour)
        return found

    # --- each signal -----------------------------------------------------------------------

    def judge_kin(self, access: Access, state: AccountState, context: Context) -> list[Finding]:
        """A pick of kin still unexplained once the grace for a booking is over
        (``DetectionEngine``): counted and judged now."""
        day = (access.at_us + context.offset_us) // DAY_US
        found = snooping(access, state.recent, context.kin_shares, day)
        person = state.person
        if person is None:
            return found
        # Counted with every login's picks too, and raised as the person's only where the
        # login's own count did not raise it.
        raised = {finding.detector for finding in found}
        together = snooping(access, person.picks, context.kin_shares, day, person.logins)
        return found + [finding for finding in together if finding.detector not in raised]

    def _close(self, profile: Profile, recent: Recent, role: RoleBaseline | None, day: int) -> None:
        if recent.day >= 0:
            pooled = role.samples.get("unexplained", []) if role is not None else []
            cusum = cusum_for(profile.history("unexplained"), pooled)
            profile.cusum = cusum.step(profile.cusum, len(recent.today_unexplained))
        close_day(profile, recent, role, day)

    def _sweep(self, access: Access, state: AccountState, day: int) -> Finding | None:
        """Count a grant in the account's windows of grants (the last hour, day and
        week) and its person's, and return the first sweep it makes: every window is
        counted, so each stays whole for the next grant. A day allows
        ``BREAK_GLASS_DAY_FACTOR`` hours' worth: five grants an hour, every hour, went
        past no hour's limit (adversary round 59, detection evasion); a week
        ``BREAK_GLASS_WEEK_FACTOR`` days' worth: nineteen a day, every day, went past no
        day's (round 60). The week is kept in the stored profile (``GrantWeek``)."""
        hourly = self.break_glass_per_hour
        daily = hourly * BREAK_GLASS_DAY_FACTOR
        weekly = daily * BREAK_GLASS_WEEK_FACTOR
        recent, person = state.recent, state.person
        week = GrantWeek(state.profile.glass_week)
        found = [
            glass_sweep(access, recent.glass, hourly, day),
            glass_sweep(access, recent.glass_day, daily, day, span="a day"),
            glass_sweep(access, week, weekly, day, span="a week"),
        ]
        if person is not None:
            together = GrantWeek.together(
                [login.profile.glass_week for login in person.states.values()], access.at_us
            )
            found += [
                glass_sweep(access, person.glass, hourly, day, person.logins),
                glass_sweep(access, person.glass_day, daily, day, person.logins, "a day"),
                glass_sweep(access, together, weekly, day, person.logins, "a week"),
            ]
        return next((finding for finding in found if finding is not None), None)

    def _breadth(
        self,
        access: Access,
        span: str,
        state: AccountState,
        role: RoleBaseline | None,
        day: int,
    ) -> list[Finding]:
        profile, recent = state.profile, state.recent
        window = recent.breadth[span]
        count = len(window)
        floors = ROLE_FLOORS.get(profile.role or "", DEFAULT_FLOORS)
        if count <= floors[SPAN_INDEX[span]]:
            return []  # never above a limit: a limit is at least the role's floor
        limit, why = _baseline(span, profile, recent, role, limit_for)
        if count <= limit:
            return []
        severity = Severity.HIGH if count >= 2 * limit else Severity.MEDIUM
        which = (
            "with a care relationship or not (care explains no billing clerk's or client's reads)"
            if care_explains_none(access, profile.role)
            else "without a care relationship"
        )
        return [
            Finding(
                "breadth",
                severity,
                f"{span} {day}",
                f"read {count} distinct patients {which} in one {span}; {why}",
                access,
                recent.unnamed(span, day, window.changes, window.members),
                window.first_position,
            )
        ]

    def _person_breadth(
        self,
        access: Access,
        state: AccountState,
        role: RoleBaseline | None,
        pseudonym: str,
        day: int,
        live: bool,
    ) -> list[Finding]:
        """The logins of one practitioner together, against the limits of the login that
        opened the latest patient: a second login is no second allowance, as it is no
        second release budget (a doctor reading 15 patients in ten minutes with each of
        two logins read 30). Raised only while that login alone stays within its own
        limit: past it, its own ``breadth`` finding says as much."""
        person = state.person
        assert person is not None  # noqa: S101 - the caller checks
        found: list[Finding] = []
        floors = ROLE_FLOORS.get(state.profile.role or "", DEFAULT_FLOORS)
        for span, window in person.breadth.items():
            count = window.add(pseudonym, access.at_us, access.position)
            alone = len(state.recent.breadth[span])
            if not live or count <= alone or count <= floors[SPAN_INDEX[span]]:
                continue
            limit, why = _baseline(span, state.profile, state.recent, role, limit_for)
            if count <= limit or alone > limit:
                continue
            logins = named(person.logins)
            found.append(
                Finding(
                    "breadth",
                    Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
                    f"{span} {day} person",
                    f"read {count} distinct patients without a care relationship in one "
                    f"{span} with the logins of one practitioner ({logins}), {alone} of "
                    f"them with this one; {why}",
                    access,
                    state.recent.unnamed(f"{span} person", day, window.changes, window.members),
                    window.first_position,
                )
            )
        return found

    def _watching(
        self,
        access: Access,
        state: AccountState,
        role: RoleBaseline | None,
        pseudonym: str,
        live: bool,
        *,
        fresh: int | None = None,
    ) -> Finding | None:
        """Count ``pseudonym`` if the account is watched after a step-up; the finding
        once it has opened more than its allowance.

        ``fresh`` (the entry's local day): care another account made alone explains the
        access. Counted only if that care was first written after the watch began (a
        phished or colluding desk booking every patient for today), and then, day by
        day, against the account's usual day of patients altogether (explained or not),
        not its usual day of unexplained ones: the real nurse after a false alert sees
        the walk-ins the desk books for her, as many as on any day (and as many again
        the next, if a second step-up extends the watch); whoever holds her account and
        a desk's does not read on through the whole clinic."""
        recent, person = state.recent, state.person
        watch = recent.watch
        if watch is None or access.at_us - watch[1] > WATCH_US:
            return None
        if pseudonym in recent.presented or pseudonym in recent.presented_before:
            return None  # a record the account itself created (today or yesterday)
        if fresh is not None:
            if access.care_made_us is None or access.care_made_us < watch[0]:
                return None  # care made before the watch: it was there for anyone
            if recent.fresh_day != fresh:
                recent.fresh, recent.fresh_day = set(), fresh
            recent.fresh.add(pseudonym)
        else:
            recent.watched.add(pseudonym)
            if person is not None:
                person.watched.add(pseudonym)
        count = len(recent.watched)
        together = len(person.watched) if person is not None else count
        total = len(recent.watched | recent.fresh) if recent.fresh else count
        if not live or max(total, together) <= self.after_step_up:
            return None
        limit, why = _baseline("after-step-up", state.profile, recent, role, self._watch_limit)
        if count > limit:
            return self._after_step_up(access, recent, watch, limit, why)
        if together > limit:
            return self._after_step_up(access, recent, watch, limit, why, person=person)
        if not recent.fresh:
            return None
        usual, usual_why = _baseline(
            "after-step-up fresh", state.profile, recent, role, self._fresh_limit
        )
        usual = max(usual, limit)
        if total <= usual:
            return None
        return self._after_step_up(access, recent, watch, usual, usual_why, fresh=True)

    def _watch_limit(
        self, _name: str, profile: Profile, role: RoleBaseline | None
    ) -> tuple[int, str]:
        """The watch's allowance: the account's own usual day of patients no care
        explains (robust, over its closed days; for a new account 1.5 times its role's
        99th percentile), never below ``after_step_up``. A front desk that lists a
        hundred patients a day by name at the counter goes on doing so after a false
        alert; a doctor's stolen account, whose owner opens a few, does not."""
        pooled = role.samples.get("unexplained", []) if role is not None else []
        return baseline_limit(self.after_step_up, profile.history("unexplained"), pooled, profile)

    def _fresh_limit(
        self, _name: str, profile: Profile, role: RoleBaseline | None
    ) -> tuple[int, str]:
        """The watch's allowance once care made after it began explains some of what the
        account opened: its own usual day of patients altogether (robust, over its
        closed days; for a new account 1.5 times its role's 99th percentile), never
        below ``after_step_up``."""
        pooled = role.samples.get("all", []) if role is not None else []
        return baseline_limit(self.after_step_up, profile.history("all"), pooled, profile)

    def _after_step_up(
        self,
        access: Access,
        recent: Recent,
        watch: tuple[int, int, int],
        limit: int,
        why: str,
        *,
        fresh: bool = False,
        person: Person | None = None,
    ) -> Finding:
        """More unexplained patients after a step-up than the account opens on a usual
        day (or, with care another account made alone since, more patients than it opens
        on a usual day altogether; or, with ``person``, than every login of its
        practitioner opened together): whoever presented the code (or signed in again) is
        reading on."""
        opened = recent.watched | recent.fresh if person is None else person.watched
        count = len(opened)
        paused = (
            "its sessions were paused"
            if recent.watch_by is None
            else f"the sessions of {recent.watch_by.removeprefix('staff:')}, another login "
            "of its practitioner, were paused"
        )
        if fresh:
            what = (
                f"opened {count} distinct patients after {paused} for a "
                f"step-up, {len(recent.fresh - recent.watched)} of them explained only by "
                "care another account made alone after the step-up (more than "
                f"{limit}, its usual day of patients; {why}): a second account's "
                "bookings are no explanation for a watched account"
            )
        else:
            what = (
                f"opened {count} distinct patients without a care "
                f"relationship{_with(person)} after {paused} for a step-up (more than "
                f"{limit}; {why}): the fresh code proved who holds the account, not why "
                "it reads"
            )
        together = " person" if person is not None else ""
        return Finding(
            "after-step-up",
            Severity.HIGH,
            f"{watch[0]}{together}",
            what,
            access,
            recent.unnamed(f"after-step-up{together}", watch[0], count, opened),
            watch[2],
        )

    def _writes(
        self, access: Access, state: AccountState, role: RoleBaseline | None, day: int
    ) -> list[Finding]:
        """An integration client writing more records in an hour than it usually does
        (a bulk ``$import``, or writes one by one), as ``breadth`` judges reading."""
        profile, recent = state.profile, state.recent
        count = len(recent.writes)
        if count <= self.client_writes_per_hour:
            return []
        limit, why = _baseline(WRITES_HOUR, profile, recent, role, self._write_limit)
        if count <= limit:
            return []
        return [
            Finding(
                "client-writes",
                Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
                str(day),
                f"wrote {count} records in one hour; {why}",
                access,
                (),
                recent.writes.first_position,
            )
        ]

    def _changes(
        self,
        access: Access,
        recent: Recent,
        window: DistinctWindow,
        day: int,
        person: Person | None = None,
    ) -> Finding:
        """A member of staff changing the stored records of (or booking care for) more
        patients in ten minutes than anyone does by hand: a blind rewrite reads nothing,
        so neither the release budget nor ``breadth`` sees it, and a booking opens the
        patient's record to the rest of the clinic. ``window``: the account's, or with
        ``person`` every login of its practitioner's together."""
        limit = self.staff_changes_per_10_minutes
        count = len(window)
        together = (
            f" with the logins of one practitioner ({named(person.logins)})" if person else ""
        )
        what = "staff-changes person" if person else "staff-changes"
        return Finding(
            "staff-changes",
            Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
            f"{day} person" if person else str(day),
            f"changed the stored records of (or booked care for) {count} distinct patients"
            f"{together} in ten minutes (more than {limit})",
            access,
            recent.unnamed(what, day, window.changes, window.members),
            window.first_position,
        )

    def _client_care(self, access: Access, recent: Recent, day: int) -> Finding:
        """A client app creating or rewriting care for more patients in ten minutes than
        a booking portal does: each booking explains the patient's reads to the clinic
        and to the practitioners it names, as a desk's would (``staff-changes``)."""
        limit = self.client_care_per_10_minutes
        window = recent.changed
        count = len(window)
        return Finding(
            "client-care",
            Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
            str(day),
            f"created or rewrote care (a booking, visit, care team, referral) for {count} "
            f"distinct patients in ten minutes (more than {limit})",
            access,
            recent.unnamed("client-care", day, window.changes, window.members),
            window.first_position,
        )

    def _write_limit(
        self, _name: str, profile: Profile, role: RoleBaseline | None
    ) -> tuple[int, str]:
        pooled = role.samples.get(WRITES_HOUR, []) if role is not None else []
        own = [float(peak) for peak in profile.writes.values()]
        return baseline_limit(self.client_writes_per_hour, own, pooled, profile)

    def _flags(self, access: Access, context: Context, pseudonym: str) -> list[Finding]:
        found = []
        if pseudonym in context.decoys:
            found.append(
                _honeytoken(
                    access, pseudonym, "opened a decoy patient that no legitimate work ever opens"
                )
            )
        vip = _vip_finding(access, context, pseudonym)
        if vip is not None:
            found.append(vip)
        return found

    def _context(
        self,
        access: Access,
        state: AccountState,
        role: RoleBaseline | None,
        context: Context,
        day: int,
        hour: int,
    ) -> list[Finding]:
        profile, recent = state.profile, state.recent
        found: list[Finding] = []
        network = _network(access.source_address)
        if recent.place is not None and network and recent.place[0]:
            before, at = recent.place
            if before != network and access.at_us - at < TWO_PLACES_US:
                found.append(
                    Finding(
                        "two-places",
                        Severity.MEDIUM,
                        str(day),
                        f"used from {before} and {network} within "
                        f"{(access.at_us - at) // MINUTE_US + 1} minutes",
                        access,
                        (access.patient_pseudonym or "",),
                    )
                )
        if network:
            recent.place = (network, access.at_us)
        new_place = profile.remember(profile.addresses, network, access.at_us)
        new_device = profile.remember(profile.agents, access.user_agent, access.at_us)
        known = profile.active_days >= 3
        if self._unusual(profile, role, hour) and (new_place or new_device or not known):
            found.append(
                Finding(
                    "unusual-hour-new-place",
                    Severity.MEDIUM,
                    str(day),
                    f"patient data read at {hour:02d}:00, an hour this account (or its role) "
                    "rarely works, from " + ("a new address" if new_place else "a new device"),
                    access,
                    (access.patient_pseudonym or "",),
                )
            )
        account = access.account or ""
        if profile.last_us and access.at_us - profile.last_us > DORMANT_US:
            idle = (access.at_us - profile.last_us) // DAY_US
            found.append(self._dormant(access, day, f"back after {idle} days unused"))
        if profile.role == "integration" or account.startswith("client:"):
            pattern = f"{access.tag} {access.resource_type}"
            if known and pattern not in profile.patterns:
                found.append(
                    Finding(
                        "integration-pattern",
                        Severity.MEDIUM,
                        f"{day} {pattern}",
                        f"an integration did what it never did before: {pattern}",
                        access,
                        (access.patient_pseudonym or "",),
                    )
                )
            profile.patterns[pattern] = profile.patterns.get(pattern, 0) + 1
        return found

    def _dormant(self, access: Access, day: int, why: str) -> Finding:
        return Finding(
            "dormant-account", Severity.MEDIUM, str(day), why, access,
            (access.patient_pseudonym or "",),
        )  # fmt: skip

    def _unusual(self, profile: Profile, role: RoleBaseline | None, hour: int) -> bool:
        own_total = sum(profile.hours)
        if profile.active_days >= 3 and own_total >= 50:
            return profile.hours[hour] / own_total < UNUSUAL_HOUR_SHARE
        if role is not None and sum(role.hours) >= 200:
            return role.hours[hour] / sum(role.hours) < UNUSUAL_HOUR_SHARE
        return False

    def _drip(
        self, access: Access, state: AccountState, role: RoleBaseline | None, day: int
    ) -> list[Finding]:
        profile, recent = state.profile, state.recent
        if not recent.today_unexplained:
            return []
        cusum = _baseline("slow-drip", profile, recent, role, _cusum)
        total = cusum.step(profile.cusum, len(recent.today_unexplained))
        if cusum.alarms(total):
            return [
                Finding(
                    "slow-drip",
                    Severity.MEDIUM,
                    str(day),
                    f"patients read without a care relationship have run above this "
                    f"account's usual {cusum.target:.0f} a day (CUSUM {total:.0f} > "
                    f"{cusum.threshold:.0f}: {_SUMMED}); {len(recent.today_unexplained)} today",
                    access,
                    recent.unnamed(
                        "slow-drip", day, len(recent.today_unexplained), recent.today_unexplained
                    ),
                )
            ]
        if state.person is None:
            return []
        return self._person_drip(access, state, state.person, role, day)

    @staticmethod
    def _person_drip(
        access: Access,
        state: AccountState,
        person: Person,
        role: RoleBaseline | None,
        day: int,
    ) -> list[Finding]:
        """The logins of one practitioner together: half a drip through each of two
        logins is no less a drip (``detect.drip``). Raised on the login of the entry
        only while that login alone does not alarm: then its own finding says as much."""
        cusum, before = person.cusum(day, role)
        count, patients = today(((s.profile, s.recent) for s in person.states.values()), day)
        total = cusum.step(before, count)
        if not cusum.alarms(total):
            return []
        return [
            Finding(
                "slow-drip",
                Severity.MEDIUM,
                f"{day} person",
                f"patients read without a care relationship with the logins of one "
                f"practitioner ({named(person.logins)}) have run above their usual "
                f"{cusum.target:.0f} a day together (CUSUM {total:.0f} > "
                f"{cusum.threshold:.0f}: {_SUMMED}); {count} today, "
                f"{len(state.recent.today_unexplained)} of them with this one",
                access,
                state.recent.unnamed("slow-drip person", day, count, patients),
            )
        ]

    def _fishing(self, access: Access, state: AccountState, day: int) -> Finding | None:
        """Repeated searches by first name only or by initials: of the account, or of
        every login of its practitioner together (``Person``)."""
        if not access.detail.get("name_shape"):
            return None
        recent = state.recent
        count = recent.vague_searches.add(access.at_us, access.position)
        together = _together(state, "name-fishing", access, count)
        staff = (access.account or "").startswith("staff:")
        if not staff or state.profile.role == "integration":
            return None
        if count >= VAGUE_SEARCHES_PER_HOUR:
            return self._burst(access, "name-fishing", recent, day)
        if together >= VAGUE_SEARCHES_PER_HOUR:
            return self._burst(access, "name-fishing", recent, day, state.person)
        return None

    def _counted(
        self, access: Access, state: AccountState, name: str, limit: int, day: int
    ) -> list[Finding]:
        """Count ``access`` in the account's window of ``name`` (``_windows``) and in its
        person's; the burst past ``limit``, the account's own first, if either is."""
        count = self._windows(state.recent)[name][0].add(access.at_us, access.position)
        together = _together(state, name, access, count)
        if count > limit:
            return [self._burst(access, name, state.recent, day)]
        if together > limit:
            return [self._burst(access, name, state.recent, day, state.person)]
        return []

    @staticmethod
    def _windows(recent: Recent) -> dict[str, tuple[CountWindow, str]]:
        """The account's count of each burst detector, and what its alert says it counts."""
        return {
            "denials": (recent.denials, "refused requests in 10 minutes"),
            "name-searches": (recent.name_searches, "searches by name in an hour"),
            "registration-fishing": (
                recent.registration_misses,
                "registrations in 15 minutes that registered no one (an identifier tried "
                "with birth date after birth date is how a desk fishes for another "
                "clinic's patient)",
            ),
            "name-fishing": (
                recent.vague_searches,
                "searches by first name only or by initials in an hour (how one looks for "
                "people one knows, not for the patient at the desk)",
            ),
            "officer-changes": (
                recent.officer_changes,
                "registrations on confirmation, registrations ended, identifiers removed "
                "and homes transferred in an hour (each changes who reaches a patient's "
                "records, or who the record says they are)",
            ),
        }

    def _burst(
        self, access: Access, name: str, recent: Recent, day: int, person: Person | None = None
    ) -> Finding:
        """An alert on a count of ``recent`` (the account's), or with ``person`` of
        ``name``'s count of every login of its practitioner together."""
        window, what = self._windows(recent)[name]
        if person is not None:
            window = person.counts[name]
        return Finding(
            name,
            Severity.MEDIUM,
            f"{day} person" if person else str(day),
            f"{len(window)} {what}{_with(person)}",
            access,
            (),
            window.first_position,
        )

    def _learn(
        self, access: Access, profile: Profile, role: RoleBaseline | None, hour: int
    ) -> None:
        if not profile.first_us:
            profile.first_us = access.at_us
        profile.last_us = access.at_us
        if access.role and access.role != "system":
            profile.role = access.role
        profile.hours[hour] += 1
        if role is not None:
            role.hours[hour] += 1


def _together(state: AccountState, name: str, access: Access, count: int) -> int:
    """Count ``access`` in the person's window of ``name`` (``Person.counts``) and return
    that count; without a person, ``count``, the account's own."""
    if state.person is None:
        return count
    return state.person.counts[name].add(access.at_us, access.position)


def _with(person: Person | None) -> str:
    """What an alert counted of every login of ``person`` says of it."""
    return f" with the logins of one practitioner ({named(person.logins)})" if person else ""
