"""Break-the-glass sweeps: one clinician opening the records of many patients of other
clinics by breaking the glass again and again. Each read under a grant is explained by
it (``explain``), so breadth, VIP and snooping never see such a sweep: only the grants
themselves (``access:break-glass:granted`` entries) show it. Pure: no I/O, no clock.

Distinct patients are counted, not grants: renewing one patient's grant through a long
shift is no sweep. The grants' words are not in the ledger (they may hold patient data),
so stock wording is left to the privacy review of each grant.
"""

from __future__ import annotations

from carevault.detect.model import Access, Finding, Severity
from carevault.detect.windows import DistinctWindow
from carevault.ledger.events import Tag

#: Distinct patients one account may break the glass for in an hour before an alert
#: (``detect_break_glass_per_hour``); twice as many make it high.
BREAK_GLASS_PER_HOUR = 5
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
    access: Access, window: DistinctWindow, limit: int, day: int, logins: tuple[str, ...] = ()
) -> Finding | None:
    """Count a grant (``granted``) in ``window`` and return the alert it makes, if any:
    more than ``limit`` distinct patients under grants within an hour, of the account
    (``Recent.glass``) or, with ``logins``, of every login of its practitioner together
    (``signals.Person``)."""
    count = window.add(access.patient_pseudonym or "", access.at_us, access.position)
    if count <= limit:
        return None
    together = f" with the logins of one practitioner ({named(logins)})" if logins else ""
    return Finding(
        "break-glass-volume",
        Severity.HIGH if count >= 2 * limit else Severity.MEDIUM,
        f"{day} person" if logins else str(day),
        f"broke the glass for {count} distinct patients{together} within an hour (more than "
        f"{limit}); each read under a grant is explained by it, so only the grants show "
        "the sweep",
        access,
        tuple(window.keys),
        window.first_position,
    )


def named(logins: tuple[str, ...]) -> str:
    """A practitioner's logins as a finding names them: their usernames."""
    return ", ".join(login.removeprefix("staff:") for login in logins)
