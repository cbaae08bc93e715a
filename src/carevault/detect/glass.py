"""Break-the-glass sweeps: one clinician opening the records of many patients of other
clinics by breaking the glass again and again. Each read under a grant is explained by
it (``explain``), so breadth, VIP and snooping never see such a sweep: only the grants
themselves (``access:break-glass:granted`` entries) show it. Pure: no I/O, no clock.

Distinct patients are counted, not grants: renewing one patient's grant through a long
shift is no sweep. The grants' words are not in the ledger (they may hold patient data),
so stock wording is left to the privacy review of each grant.

Counted over an hour and over a day (adversary round 59, detection evasion): five grants
an hour, every hour, stayed within the hour's limit for ever, and every read under them
(a celebrity's, a co-worker's) was explained, so a doctor read 120 patients of other
clinics a day, and 840 a week, with no alert but each grant's place in the review queue.
A day allows ``BREAK_GLASS_DAY_FACTOR`` hours' worth: a doctor covering a colleague's
clinic for a morning breaks the glass for a handful an hour, not for twenty a day.

And over a week (adversary round 60, grants): nineteen a day, every day, stayed within
the day's twenty, and ``slow-drip`` counts unexplained patients only, so 133 patients of
other clinics a week were read with no alert. A week allows ``BREAK_GLASS_WEEK_FACTOR``
days' worth (40): a doctor covering a colleague's clinic one or two days a week stays
within it. The week is longer than the replay that rebuilds the other windows after a
restart (25 hours), so its grants are kept with the account's stored profile
(``GrantWeek``), written with the cursor in one transaction.

What a grant explains it still tells (round 60): a patient marked VIP, a co-worker, one's
own record or someone at one's own home opened under a grant is a low alert, raised only
(``under_grant``): the officer is told at once, the doctor treating them is not paused.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Set

from carevault.detect.kin import CO_WORKER, OWN_RECORD
from carevault.detect.model import DAY_US, Access, Finding, Severity
from carevault.detect.windows import DistinctWindow
from carevault.fhir.kinship import HOUSEHOLD
from carevault.ledger.events import Tag

#: Distinct patients one account may break the glass for in an hour before an alert
#: (``detect_break_glass_per_hour``); twice as many make it high.
BREAK_GLASS_PER_HOUR = 5
#: Distinct patients under grants in a day (the last 24 hours) before an alert: this many
#: times the hour's limit (20 by default, the hour's cap on grants at the gate).
BREAK_GLASS_DAY_FACTOR = 4
#: Distinct patients under grants in a week (the last seven days) before an alert: this
#: many days' worth (40 by default; high at 80). Covering a colleague's clinic two full
#: days a week (twenty a day, the day's limit) stays within it; nineteen a day, every
#: day, passes it on the third day.
BREAK_GLASS_WEEK_FACTOR = 2
WEEK_US = 7 * DAY_US
#: The most grants a profile keeps for its week: more than the gate lets one account take
#: in a week (20 an hour), so never reached by grants it allowed.
KEPT_GRANTS = 5000
GRANTED = Tag.ACCESS_BREAK_GLASS.value
#: What a low alert of a read under a grant says, for each kind of kin told at once
#: (``snoop``'s at-once kinds; a shared surname or building is judged past chance over
#: many picks, which a few grants a day do not make).
_KIN_UNDER_GRANT = {
    OWN_RECORD: ("own-record", "their own patient record"),
    CO_WORKER: ("co-worker", "the record of a co-worker (staff who are also patients)"),
    HOUSEHOLD: ("same-address", "the record of a patient living at their own home address"),
}
#: Detectors whose low alerts are reads under a grant (``under_grant``): raised only,
#: whatever the response policy says of low alerts (``respond.Policy``).
UNDER_GRANT = frozenset({"vip", *(detector for detector, _ in _KIN_UNDER_GRANT.values())})


def granted(access: Access) -> bool:
    """A break-the-glass grant an account took."""
    return (
        access.tag == GRANTED
        and access.outcome == "success"
        and access.account is not None
        and access.patient_pseudonym is not None
    )


class GrantWeek:
    """The distinct patients an account broke the glass for in the last ``span_us``, kept
    in ``held`` (pseudonym → [time of the latest grant, its ledger position]): a dict of
    the account's stored profile, so the week outlives a restart. Adding what is held
    already (the replay after a restart adds the last day again) changes nothing. Read as
    a ``DistinctWindow`` is (``glass_sweep``)."""

    def __init__(self, held: MutableMapping[str, list[int]], span_us: int = WEEK_US) -> None:
        self.held = held
        self.span_us = span_us

    def add(self, key: str, at_us: int, position: int) -> int:
        latest = self.held.get(key)
        if latest is None or latest[0] < at_us:
            self.held[key] = [at_us, position]
        self.expire(at_us)
        while len(self.held) > KEPT_GRANTS:
            del self.held[min(self.held, key=lambda k: self.held[k][0])]
        return len(self.held)

    def expire(self, now_us: int) -> None:
        edge = now_us - self.span_us
        for key in [k for k, (at_us, _) in self.held.items() if at_us <= edge]:
            del self.held[key]

    def __len__(self) -> int:
        return len(self.held)

    @property
    def keys(self) -> list[str]:
        return sorted(self.held, key=lambda k: self.held[k][0])

    @property
    def first_position(self) -> int | None:
        return min((position for _, position in self.held.values()), default=None)

    @classmethod
    def together(cls, weeks: list[Mapping[str, list[int]]], now_us: int) -> GrantWeek:
        """The week of every login of one practitioner: each patient at their latest
        grant by any of the logins (worked out when asked, never stored)."""
        merged: dict[str, list[int]] = {}
        for held in weeks:
            for key, (at_us, position) in held.items():
                known = merged.get(key)
                if known is None or known[0] < at_us:
                    merged[key] = [at_us, position]
        week = cls(merged)
        week.expire(now_us)
        return week


def under_grant(access: Access, vips: Set[str], day: int) -> list[Finding]:
    """A read a grant explains (``Access.under_grant``) of a patient marked VIP, or a
    pick of kin told at once (one's own record, a co-worker's, a household member's):
    a low alert each, raised only (``UNDER_GRANT``), one per account, patient kind and
    day. The grant's review judges it later; the officer is told now."""
    pseudonym = access.patient_pseudonym or ""
    if not access.under_grant or not pseudonym:
        return []
    found = []
    told = "under a break-the-glass grant (told at once; an emergency is not paused)"
    if pseudonym in vips:
        why = f"opened a patient marked VIP {told}"
        found.append(
            Finding("vip", Severity.LOW, f"{pseudonym} grant {day}", why, access, (pseudonym,))
        )
    if (access.account or "").startswith("staff:") and access.picked:
        for kind in access.kin:
            if kind in _KIN_UNDER_GRANT:
                detector, what = _KIN_UNDER_GRANT[kind]
                found.append(
                    Finding(
                        detector,
                        Severity.LOW,
                        f"{day} {kind} grant",
                        f"opened {what} {told}",
                        access,
                        (pseudonym,),
                    )
                )
    return found


def glass_sweep(
    access: Access,
    window: DistinctWindow | GrantWeek,
    limit: int,
    day: int,
    logins: tuple[str, ...] = (),
    span: str = "an hour",
) -> Finding | None:
    """Count a grant (``granted``) in ``window`` and return the alert it makes, if any:
    more than ``limit`` distinct patients under grants within ``span`` (the window's: an
    hour, a day or a week), of the account (``Recent.glass``, ``Recent.glass_day``,
    ``Profile.glass_week``) or, with ``logins``, of every login of its practitioner
    together (``signals.Person``). The findings of every span share a period: one alert
    per account and day."""
    count = window.add(access.patient_pseudonym or "", access.at_us, access.position)
    if count <= limit:
        return None
    together = f" with the logins of one practitioner ({named(logins)})" if logins else ""
    return Finding(
        "break-glass-volume",
        Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
        f"{day} person" if logins else str(day),
        f"broke the glass for {count} distinct patients{together} within {span} (more than "
        f"{limit}); each read under a grant is explained by it, so only the grants show "
        "the sweep",
        access,
        tuple(window.keys),
        window.first_position,
    )


def named(logins: tuple[str, ...]) -> str:
    """A practitioner's logins as a finding names them: their usernames."""
    return ", ".join(login.removeprefix("staff:") for login in logins)
