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
"""

from __future__ import annotations

from carevault.detect.model import Access, Finding, Severity
from carevault.detect.windows import DistinctWindow
from carevault.ledger.events import Tag

#: Distinct patients one account may break the glass for in an hour before an alert
#: (``detect_break_glass_per_hour``); twice as many make it high.
BREAK_GLASS_PER_HOUR = 5
#: Distinct patients under grants in a day (the last 24 hours) before an alert: this many
#: times the hour's limit (20 by default, the hour's cap on grants at the gate).
BREAK_GLASS_DAY_FACTOR = 4
GRANTED = Tag.ACCESS_BREAK_GLASS.value


def granted(access: Access) -> bool:
    """A break-the-glass grant an account took."""
    return (
        access.tag == GRANTED
        and access.outcome == "success"
        and access.account is not None
        and access.patient_pseudonym is not None
    )


def glass_sweep(
    access: Access,
    window: DistinctWindow,
    limit: int,
    day: int,
    logins: tuple[str, ...] = (),
    span: str = "an hour",
) -> Finding | None:
    """Count a grant (``granted``) in ``window`` and return the alert it makes, if any:
    more than ``limit`` distinct patients under grants within ``span`` (the window's: an
    hour or a day), of the account (``Recent.glass``, ``Recent.glass_day``) or, with
    ``logins``, of every login of its practitioner together (``signals.Person``). The
    hour's and the day's findings share a period: one alert per account and day."""
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
