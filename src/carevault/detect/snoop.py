"""Snooping: a member of staff opening, without a care relationship, the records of
people close to them: their own, a co-worker's (staff who are patients), their
household's (the same home address), or, beyond what chance explains, of patients who
share their surname or live in their building. Pure: the accesses arrive marked with
what the patient shares with the person (``detect.kin``) and whether care explains it.

Only patients the person picked count (a read, a search that gave one patient or named
its patients one by one, ``Access.picked``; refused attempts too: trying a namesake's
record at another clinic shows the same intent): the other matches of a name search were
not chosen. A pick is judged against its own day's counts, also once the account has
moved on to the next day (its grace ended after midnight). A co-worker's, a household
member's or one's own record is an alert at once; a shared surname or building only
when the count passes chance (a binomial tail under 1e-4 given the share of all
patients who carry that surname or live there, and at least two patients), so a Chan
at the front desk who opens Chans as often as anyone else does is never flagged.
"""

from __future__ import annotations

from collections.abc import Mapping

from carevault.detect.glass import named
from carevault.detect.kin import CO_WORKER, OWN_RECORD
from carevault.detect.model import Access, Finding, Severity
from carevault.detect.profile import Recent
from carevault.detect.stats import binomial_tail
from carevault.fhir.kinship import BUILDING, HOUSEHOLD, SURNAME

#: Chance must be below this before a shared surname or building is an alert.
CHANCE = 1e-4
AT_LEAST = 2
#: Distinct close records (co-workers, household) in a day that make an alert high.
HIGH_FROM = 3

_AT_ONCE = {
    OWN_RECORD: (
        "own-record",
        "opened (or tried to) their own patient record without a care relationship",
    ),
    CO_WORKER: (
        "co-worker",
        "opened (or tried to) the records of {k} co-worker(s) (staff who are also "
        "patients) without a care relationship today",
    ),
    HOUSEHOLD: (
        "same-address",
        "opened (or tried to) the records of {k} patient(s) living at their own home "
        "address without a care relationship today",
    ),
}
_BY_CHANCE = {
    SURNAME: ("same-surname", "share their surname"),
    BUILDING: ("same-address", "live in their building"),
}


def observe_picks(access: Access, recent: Recent) -> None:
    """Count an unexplained pick (also while the windows are rebuilt after a restart)."""
    if not access.attempted or access.explained or not access.picked:
        return
    recent.picks.add(access.patient_pseudonym or "")


def snooping(
    access: Access,
    recent: Recent,
    shares: Mapping[tuple[str, str], float],
    day: int,
    logins: tuple[str, ...] = (),
) -> list[Finding]:
    """Count a kin pick that is still unexplained (the engine asks once its grace for a
    care relationship is over) and return what it makes. With ``logins``, ``recent``
    holds the picks of every login of one practitioner together (``signals.Person``),
    and only what passes chance is judged there (what is an alert at once is raised on
    the login): three namesakes opened with each of two logins are six of one person's
    (adversary round 58)."""
    if not access.kin or not access.attempted or access.explained or not access.picked:
        return []
    picks, kin_picks = _counts(recent, day)
    pseudonym = access.patient_pseudonym or ""
    picks.add(pseudonym)
    for kind in access.kin:
        kin_picks.setdefault(kind, set()).add(pseudonym)
    found: list[Finding] = []
    for kind in access.kin:
        patients = kin_picks.get(kind, set())
        if kind in _AT_ONCE and not logins:
            detector, text = _AT_ONCE[kind]
            severity = Severity.HIGH if len(patients) >= HIGH_FROM else Severity.MEDIUM
            found.append(
                Finding(
                    detector,
                    severity,
                    f"{day} {kind}",
                    text.format(k=len(patients)),
                    access,
                    tuple(sorted(patients)),
                )
            )
        elif kind in _BY_CHANCE:
            finding = _beyond_chance(access, kind, picks, kin_picks, shares, day, logins)
            if finding is not None:
                found.append(finding)
    return found


def _counts(recent: Recent, day: int) -> tuple[set[str], dict[str, set[str]]]:
    """The picks (and picks of kin) of ``day``, the day of the pick being judged: today's,
    or an earlier day's when the account has moved on since (a co-worker opened at 23:55
    is judged after midnight, with the 23:55 day's counts). A day no longer kept (or not
    yet begun, as on a replay) starts empty: the at-once kinds still fire."""
    if day == recent.day:
        return recent.picks, recent.kin_picks
    if day not in recent.earlier:
        recent.earlier[day] = (set(), {})
    return recent.earlier[day]


def _beyond_chance(
    access: Access,
    kind: str,
    picks: set[str],
    kin_picks: dict[str, set[str]],
    shares: Mapping[tuple[str, str], float],
    day: int,
    logins: tuple[str, ...] = (),
) -> Finding | None:
    patients = kin_picks.get(kind, set())
    share = shares.get((access.account or "", kind))
    if share is None or len(patients) < AT_LEAST:
        return None
    picked = len(picks)
    chance = binomial_tail(len(patients), picked, share)
    if chance >= CHANCE:
        return None
    detector, what = _BY_CHANCE[kind]
    together = f" with the logins of one practitioner ({named(logins)})" if logins else ""
    return Finding(
        detector,
        Severity.HIGH if chance < CHANCE**2 else Severity.MEDIUM,
        f"{day} {kind} person" if logins else f"{day} {kind}",
        f"opened (or tried to) {len(patients)} patients who {what} without a care relationship "
        f"today{together}, of {picked} patients picked without one; {share:.1%} of all "
        f"patients {what}, so "
        f"chance would give about {picked * share:.1f} (probability of {len(patients)} or "
        f"more: {chance:.0e})",
        access,
        tuple(sorted(patients)),
    )
