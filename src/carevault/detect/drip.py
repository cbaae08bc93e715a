"""A slow drip across the logins of one practitioner.

``slow-drip`` is a one-sided CUSUM over an account's closed days of distinct patients no
care relationship explains (``stats.Cusum``, kept in the account's stored profile). A
person holding two logins drips half through each: neither login's days rise above its
usual, the person's do. The person's CUSUM needs no state of its own: it is worked out
again from the logins' stored days (each day's patients, summed over the logins) each
time one of them closes a day, step by step as an account's is (each day against the
days before it), and today's count is the logins' counts of today together. So it
survives a restart as their profiles do, and a login added later brings its history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from carevault.detect.profile import HISTORY_DAYS, Profile, Recent
from carevault.detect.stats import Cusum, cusum_for

#: (a login's stored profile, its last day in memory)
Login = tuple[Profile, Recent]


def closed_days(logins: Iterable[Login], day: int) -> list[float]:
    """The person's closed days before ``day``, oldest first: each day's distinct
    unexplained patients summed over the logins (a patient two logins opened the same
    day counts twice, in the history as today, so the two are alike). A login's last
    active day, still in memory (it has not acted since), counts too."""
    totals: dict[int, float] = {}
    for profile, recent in logins:
        for key, counts in profile.days.items():
            totals[int(key)] = totals.get(int(key), 0.0) + counts.get("unexplained", 0)
        if 0 <= recent.day < day and str(recent.day) not in profile.days:
            totals[recent.day] = totals.get(recent.day, 0.0) + len(recent.today_unexplained)
    return [totals[d] for d in sorted(totals) if d < day]


def person_cusum(days: Sequence[float], pooled: Sequence[float]) -> tuple[Cusum, float]:
    """The CUSUM to judge today by and its total before today, for the person's closed
    ``days``: each day stepped in against the days before it (at most ``HISTORY_DAYS``,
    as an account keeps), the role's pooled days (``pooled``) while there are few."""
    total = 0.0
    for index, count in enumerate(days):
        total = cusum_for(days[max(0, index - HISTORY_DAYS) : index], pooled).step(total, count)
    return cusum_for(days[-HISTORY_DAYS:], pooled), total


def today(logins: Iterable[Login], day: int) -> tuple[int, set[str]]:
    """The person's count of today (summed over the logins) and the patients in it."""
    count, patients = 0, set[str]()
    for _, recent in logins:
        if recent.day == day:
            count += len(recent.today_unexplained)
            patients |= recent.today_unexplained
    return count, patients
