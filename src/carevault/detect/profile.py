"""What the detectors remember of each account and each role.

``Profile`` is stored (compact JSON per account): closed days' counts, the hours, places
and devices seen, the CUSUM total, an integration's usual requests. ``Recent`` is the
last day in memory (sliding windows), rebuilt from the ledger after a restart, so a
burst that straddles a restart is counted once and whole. ``RoleBaseline`` pools the
closed days of a role's accounts: the cold start of a new account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from carevault.access.registrations import FAILURE_WINDOW_SECONDS
from carevault.detect.model import DAY_US, HOUR_US, MINUTE_US
from carevault.detect.windows import CountWindow, DistinctWindow

HISTORY_DAYS = 35
ROLE_SAMPLES = 400
PLACES = 40
#: The windows of breadth: distinct patients per 10 minutes, hour and day.
#: The window of ``Recent.registration_misses``: the registration throttle's.
REGISTRATION_WINDOW_US = FAILURE_WINDOW_SECONDS * 1_000_000
SPANS = {"10 minutes": 10 * MINUTE_US, "hour": HOUR_US, "day": DAY_US}
#: A role's samples of the most records one of its clients wrote in an hour, per day.
WRITES_HOUR = "writes hour"
#: Days before the current one whose picks are kept in memory: a pick's grace
#: (``detect_kin_grace_seconds``, at most a day) ends at the latest the day after it.
KEPT_DAYS = 2


@dataclass
class Profile:
    role: str | None = None
    first_us: int = 0
    last_us: int = 0
    day: int = -1
    #: day number → {"all": distinct patients, "unexplained": ..., "10 minutes": peak, ...}
    days: dict[str, dict[str, int]] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    addresses: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)
    cusum: float = 0.0
    #: "tag resource-type" → count (what an integration usually does).
    patterns: dict[str, int] = field(default_factory=dict)
    #: day number → the most records an integration client wrote in one hour that day.
    writes: dict[str, int] = field(default_factory=dict)
    #: The patients the account broke the glass for in the last week: pseudonym →
    #: [time of the latest grant, its ledger position] (``glass.GrantWeek``). Stored, not
    #: rebuilt: the replay after a restart covers a day and an hour.
    glass_week: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "first_us": self.first_us,
            "last_us": self.last_us,
            "day": self.day,
            "days": self.days,
            "hours": self.hours,
            "addresses": self.addresses,
            "agents": self.agents,
            "cusum": self.cusum,
            "patterns": self.patterns,
            "writes": self.writes,
            "glass_week": self.glass_week,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        profile = cls()
        for name, value in data.items():
            if hasattr(profile, name):
                setattr(profile, name, value)
        return profile

    def history(self, key: str) -> list[float]:
        return [float(day.get(key, 0)) for day in self.days.values()]

    @property
    def active_days(self) -> int:
        return len(self.days)

    def remember(self, places: dict[str, int], value: str | None, at_us: int) -> bool:
        """Note ``value`` (an address, a device); True if it was never seen before."""
        if not value:
            return False
        new = value not in places
        places[value] = at_us
        if len(places) > PLACES:
            oldest = min(places, key=places.__getitem__)
            del places[oldest]
        return new


def breadth_windows() -> dict[str, DistinctWindow]:
    """A window of distinct patients for each span of ``SPANS``."""
    return {name: DistinctWindow(span) for name, span in SPANS.items()}


@dataclass
class Recent:
    """The last day of an account, in memory."""

    day: int = -1
    today_all: set[str] = field(default_factory=set)
    today_unexplained: set[str] = field(default_factory=set)
    peaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPANS, 0))
    breadth: dict[str, DistinctWindow] = field(default_factory=breadth_windows)
    #: Patients whose ``$everything`` the account asked for in the last hour (each of
    #: its pages is an entry; one patient's pages and repeats count once).
    everything: DistinctWindow = field(default_factory=lambda: DistinctWindow(HOUR_US))
    denials: CountWindow = field(default_factory=lambda: CountWindow(10 * MINUTE_US))
    name_searches: CountWindow = field(default_factory=lambda: CountWindow(HOUR_US))
    #: Records an integration client wrote in the last hour, and today's peak of it.
    writes: CountWindow = field(default_factory=lambda: CountWindow(HOUR_US))
    writes_peak: int = 0
    #: Distinct patients whose stored records a member of staff changed (updated,
    #: patched, deleted) in the last ten minutes (``staff-changes``).
    changed: DistinctWindow = field(default_factory=lambda: DistinctWindow(10 * MINUTE_US))
    #: Registrations (``$register``) that registered no one, in the last fifteen minutes
    #: (``registration-fishing``), from every server process.
    registration_misses: CountWindow = field(
        default_factory=lambda: CountWindow(REGISTRATION_WINDOW_US)
    )
    #: Searches by first name only or by initials (``fhir.name_shape``).
    vague_searches: CountWindow = field(default_factory=lambda: CountWindow(HOUR_US))
    #: Who reaches a patient, or who the record says they are, changed by hand in the
    #: last hour (``officer-changes``): an officer's registrations, registrations ended
    #: and identifiers removed, and anyone's transfers of a home.
    officer_changes: CountWindow = field(default_factory=lambda: CountWindow(HOUR_US))
    #: Patients the account broke the glass for in the last hour (``detect.glass``).
    glass: DistinctWindow = field(default_factory=lambda: DistinctWindow(HOUR_US))
    #: And in the last 24 hours: five an hour, every hour, is a sweep too.
    glass_day: DistinctWindow = field(default_factory=lambda: DistinctWindow(DAY_US))
    #: The last place the account acted from: (address, at_us).
    place: tuple[str, int] | None = None
    #: Distinct patients picked (``Access.picked``) without a care relationship today,
    #: and those of them kin to the person, by kind (``detect.kin``).
    picks: set[str] = field(default_factory=set)
    kin_picks: dict[str, set[str]] = field(default_factory=dict)
    #: The same of the days before (day → (picks, kin_picks)), kept for
    #: ``KEPT_DAYS`` days: a pick of kin is judged once its grace is over, against its
    #: own day, after the account may have moved on to the next (``snoop.snooping``).
    earlier: dict[int, tuple[set[str], dict[str, set[str]]]] = field(default_factory=dict)
    #: The last search entry written before the ledger kept request ids: ((session,
    #: principal, patients named), position, at_us, entries of its response to come).
    last_search: tuple[tuple[object, ...], int, int, int] | None = None
    #: The search responses whose entries are still coming, by (request id, patients
    #: named): how many are to come. A few at most (one request's, or two at once).
    open_searches: dict[tuple[str, int], int] = field(default_factory=dict)
    #: What a finding last named in full, per breadth window (and "slow-drip"): (day,
    #: the window's ``changes`` or the day's count). While it stays the same, the
    #: patients are those already named: the finding repeats none of them.
    named: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Limits and CUSUMs worked out from the closed days (the person's and the role's),
    #: by what they were worked out from: they change only when a day closes, and were
    #: otherwise recomputed (medians, quantiles) at every entry past a floor.
    baselines: dict[str, tuple[tuple[object, ...], object]] = field(default_factory=dict)
    #: The watch after a step-up response (``after-step-up``): (the first step-up of the
    #: watch, the latest, the first's ledger position); the watch lasts a day past the
    #: latest. And the distinct unexplained patients released to the account since the
    #: first: a fresh TOTP code proves who holds the account, not why they read.
    watch: tuple[int, int, int] | None = None
    watched: set[str] = field(default_factory=set)
    #: The other login of the account's practitioner whose step-up began or last
    #: extended the watch (None: the account's own): a person stepped up is watched
    #: through every login (``signals.Person``).
    watch_by: str | None = None
    #: And those released since the first that only care another account made alone
    #: after it explains (``Access.care_made_us``): a second, phished or colluding,
    #: account's bookings explain the watched account's reads to no one but the watch.
    #: Counted per local day (``fresh_day``), as the usual day of patients it is judged
    #: against: a watch a second step-up extends spans two days of bookings.
    fresh: set[str] = field(default_factory=set)
    fresh_day: int | None = None
    #: Patients whose records the account itself created today and yesterday (new
    #: patients at the desk): opening them tells it nothing it did not write, and the
    #: watch after a step-up does not count them.
    presented: set[str] = field(default_factory=set)
    presented_before: set[str] = field(default_factory=set)

    def unnamed(
        self, what: str, day: int, version: int, patients: Iterable[str]
    ) -> tuple[str, ...]:
        """``patients``, or none if a finding named exactly these for ``what`` today.

        A sustained read keeps a breadth or drip finding open at every entry, each with
        the whole window (hundreds of patients): the alert takes the union of them, so
        the same set named again adds nothing and is not copied again."""
        if self.named.get(what) == (day, version):
            return ()
        self.named[what] = (day, version)
        return tuple(patients)

    def closed_day(self) -> dict[str, int]:
        return {
            "all": len(self.today_all),
            "unexplained": len(self.today_unexplained),
            **self.peaks,
        }

    def start_day(self, day: int) -> None:
        if self.day >= 0 and (self.picks or self.kin_picks):
            self.earlier[self.day] = (self.picks, self.kin_picks)
        picks, kin_picks = self.earlier.pop(day, (set(), {}))
        for gone in [d for d in self.earlier if d < day - KEPT_DAYS]:
            del self.earlier[gone]
        self.presented_before = self.presented if day == self.day + 1 else set()
        self.presented = set()
        self.day = day
        self.today_all = set()
        self.today_unexplained = set()
        self.peaks = dict.fromkeys(SPANS, 0)
        self.picks = picks
        self.kin_picks = kin_picks
        self.writes_peak = 0


@dataclass
class RoleBaseline:
    #: key ("all", "unexplained", "10 minutes", ...) → recent closed-day samples.
    samples: dict[str, list[int]] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    #: Bumped whenever ``samples`` change (not stored): what ``Recent.baselines`` keys on.
    version: int = field(default=0, compare=False)

    def add_day(self, counts: dict[str, int]) -> None:
        self.version += 1
        for key, value in counts.items():
            pool = self.samples.setdefault(key, [])
            pool.append(int(value))
            del pool[:-ROLE_SAMPLES]

    def to_json(self) -> dict[str, Any]:
        return {"samples": self.samples, "hours": self.hours}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoleBaseline:
        return cls(dict(data.get("samples", {})), list(data.get("hours", [0] * 24)))


def close_day(profile: Profile, recent: Recent, role: RoleBaseline | None, day: int) -> None:
    """Move to ``day``: yesterday's counts go into the history (the person's and their
    role's), and the CUSUM takes the closed day in."""
    if recent.day >= 0 and recent.day != day and (recent.today_all or recent.today_unexplained):
        counts = recent.closed_day()
        if profile.day == recent.day:
            profile.days[str(recent.day)] = counts
            while len(profile.days) > HISTORY_DAYS:
                del profile.days[min(profile.days, key=int)]
            if role is not None:
                role.add_day(counts)
    if recent.day >= 0 and recent.day != day and recent.writes_peak and profile.day == recent.day:
        # Kept apart from the reading days: a feed that only writes has no reading
        # history, and its writing days must not lower the limits of its reads.
        profile.writes[str(recent.day)] = recent.writes_peak
        while len(profile.writes) > HISTORY_DAYS:
            del profile.writes[min(profile.writes, key=int)]
        if role is not None:
            role.add_day({WRITES_HOUR: recent.writes_peak})
    recent.start_day(day)
    profile.day = day
