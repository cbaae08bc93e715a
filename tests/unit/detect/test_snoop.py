"""Snooping on hand-made sequences: a co-worker's, a household member's or one's own
record opened without care is an alert at once; a shared surname or building only past
chance; nothing fires on explained access or on the unchosen matches of a name search."""

from __future__ import annotations

import pytest

from carevault.detect.model import Access, Finding, Severity
from carevault.detect.stats import binomial_tail
from tests.unit.detect.test_signals import MORNING, Feed

MINUTE = 60_000_000


class KinFeed(Feed):
    """As the engine does: each entry observed, then (its grace for a booking over, and
    still unexplained) a pick of kin judged."""

    def entry(self, at_us: int, patient: str | None = "p0", **fields: object) -> list[Finding]:
        found = super().entry(at_us, patient, **fields)
        if fields.get("kin"):
            access = Access(
                position=self.position - 1, at_us=at_us,
                tag=str(fields.get("tag", "fhir:resource:read")),
                outcome=str(fields.get("outcome", "success")),
                principal="staff:ann", role=self.role_name,
                resource_type="Patient", patient_pseudonym=patient,
                explained=bool(fields.get("explained", False)),
                kin=tuple(fields["kin"]),  # type: ignore[arg-type]
                detail=dict(fields.get("detail", {})),  # type: ignore[call-overload]
            )  # fmt: skip
            judged = self.detectors.judge_kin(access, self.state, self.context)
            self.found.extend(judged)
            found += judged
        return found


def _feed(surname_share: float = 0.07, building_share: float = 0.004) -> KinFeed:
    feed = KinFeed(role="front_desk")
    feed.context.kin_shares = {
        ("staff:ann", "surname"): surname_share,
        ("staff:ann", "building"): building_share,
    }
    return feed


def test_a_co_workers_record_opened_without_care_is_an_alert_at_once() -> None:
    feed = _feed()
    (finding,) = feed.entry(MORNING, "colleague", kin=("co-worker",))
    assert (finding.detector, finding.severity) == ("co-worker", Severity.MEDIUM)
    assert finding.patients == ("colleague",)
    assert "co-worker" in finding.explanation
    for n in range(2):
        feed.entry(MORNING + (n + 1) * MINUTE, f"colleague{n}", kin=("co-worker",))
    last = [f for f in feed.found if f.detector == "co-worker"][-1]
    assert last.severity is Severity.HIGH and len(last.patients) == 3
    assert len({f.dedup_key for f in feed.found if f.detector == "co-worker"}) == 1


def test_own_record_and_household_fire_at_once() -> None:
    feed = _feed()
    assert [f.detector for f in feed.entry(MORNING, "me", kin=("own-record",))] == ["own-record"]
    found = feed.entry(MORNING + MINUTE, "spouse", kin=("household", "surname"))
    assert [f.detector for f in found] == ["same-address"]
    assert "home address" in found[0].explanation


def test_explained_access_to_kin_never_fires() -> None:
    feed = _feed()
    for n, kind in enumerate(("co-worker", "household", "own-record", "surname", "building")):
        for m in range(5):
            feed.entry(MORNING + (5 * n + m) * MINUTE, f"p{n}-{m}", kin=(kind,), explained=True)
    assert feed.found == []


def test_unchosen_matches_of_a_name_search_do_not_count() -> None:
    feed = _feed()
    for n in range(8):
        feed.entry(
            MORNING, f"namesake{n}", tag="fhir:resource:search", kin=("co-worker", "surname"),
            detail={"params": ["name"], "patients": 8},
        )  # fmt: skip
    assert feed.found == []
    # A search that gives one patient is a pick.
    found = feed.entry(
        MORNING + MINUTE, "one", tag="fhir:resource:search", kin=("co-worker",),
        detail={"params": ["identifier"]},
    )  # fmt: skip
    assert [f.detector for f in found] == ["co-worker"]


def test_a_common_surname_at_its_usual_rate_never_fires() -> None:
    # A Chan at the front desk: 7 % of patients are Chans, and 7 % of those she opens are.
    feed = _feed(surname_share=0.07)
    for n in range(300):
        feed.entry(MORNING + n * 10_000_000, f"p{n}", kin=("surname",) if n % 14 == 0 else ())
    assert "same-surname" not in feed.detectors_fired()


def test_many_patients_sharing_the_surname_fire_past_chance() -> None:
    feed = _feed(surname_share=0.07)
    for n in range(10):
        feed.entry(MORNING + n * MINUTE, f"usual{n}")
    for n in range(12):
        feed.entry(MORNING + (20 + n) * MINUTE, f"chan{n}", kin=("surname",))
    alerts = [f for f in feed.found if f.detector == "same-surname"]
    assert alerts, "twelve Chans out of 22 is far past 7 %"
    first = alerts[0]
    assert "share their surname" in first.explanation
    assert "7.0% of all patients" in first.explanation
    # It fired only once chance fell below the threshold: not at the second Chan.
    assert len(first.patients) > 2
    assert alerts[-1].patients == tuple(sorted(f"chan{n}" for n in range(12)))


def test_two_rare_namesakes_in_a_quiet_day_fire() -> None:
    feed = _feed(surname_share=0.0005)
    for n in range(5):
        feed.entry(MORNING + n * MINUTE, f"usual{n}")
    feed.entry(MORNING + 10 * MINUTE, "au1", kin=("surname",))
    assert "same-surname" not in feed.detectors_fired()
    feed.entry(MORNING + 11 * MINUTE, "au2", kin=("surname",))
    assert "same-surname" in feed.detectors_fired()


def test_neighbours_fire_past_chance() -> None:
    feed = _feed(building_share=0.004)
    for n in range(40):
        feed.entry(MORNING + n * MINUTE, f"usual{n}")
    feed.entry(MORNING + 50 * MINUTE, "n1", kin=("building",))
    assert "same-address" not in feed.detectors_fired()
    feed.entry(MORNING + 51 * MINUTE, "n2", kin=("building",))
    feed.entry(MORNING + 52 * MINUTE, "n3", kin=("building",))
    # Three of 43 where 0.4 % live: about 1 in 1,300 by chance; not yet.
    assert "same-address" not in feed.detectors_fired()
    feed.entry(MORNING + 53 * MINUTE, "n4", kin=("building",))
    (last, *_) = reversed([f for f in feed.found if f.detector == "same-address"])
    assert "live in their building" in last.explanation
    assert last.patients == ("n1", "n2", "n3", "n4")


def test_a_restart_replays_the_days_picks_without_raising_them_again() -> None:
    feed = _feed(surname_share=0.0005)
    replayed = Access(
        position=0, at_us=MORNING, tag="fhir:resource:read", outcome="success",
        principal="staff:ann", role="front_desk", resource_type="Patient",
        patient_pseudonym="au1", kin=("surname",),
    )  # fmt: skip
    assert feed.detectors.observe(replayed, feed.state, feed.role, feed.context, live=False) == []
    # The engine puts the replayed pick back to be judged: counted, the same alert.
    feed.detectors.judge_kin(replayed, feed.state, feed.context)
    feed.position = 1
    found = feed.entry(MORNING + MINUTE, "au2", kin=("surname",))
    (finding,) = [f for f in found if f.detector == "same-surname"]
    assert finding.patients == ("au1", "au2")


def test_the_count_starts_again_each_day() -> None:
    feed = _feed(surname_share=0.0005)
    feed.entry(MORNING, "au1", kin=("surname",))
    feed.entry(MORNING + 86_400_000_000, "au2", kin=("surname",))
    assert feed.found == []


def test_binomial_tail_matches_the_exact_sum() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(11, 10, 0.3) == 0.0
    assert abs(binomial_tail(1, 10, 0.1) - (1 - 0.9**10)) < 1e-12
    assert abs(binomial_tail(10, 10, 0.5) - 0.5**10) < 1e-15
    assert binomial_tail(3, 3000, 0.0) == 0.0
    assert 0 < binomial_tail(400, 1000, 0.1) < 1e-60


def _search(feed: Feed, at_us: int, shape: str | None, patients: int = 1) -> list[Finding]:
    found: list[Finding] = []
    detail: dict[str, object] = {"params": ["given"]}
    if shape:
        detail["name_shape"] = shape
    if patients > 1:
        detail["patients"] = patients
    for n in range(patients):
        found += feed.entry(
            at_us, f"p{at_us}-{n}", tag="fhir:resource:search", session_id="s1", detail=detail
        )
    return found


def test_repeated_first_name_or_initial_searches_are_fishing() -> None:
    feed = _feed()
    for n in range(9):
        _search(feed, MORNING + n * MINUTE, "first-name" if n % 2 else "initials", patients=6)
    assert "name-fishing" not in feed.detectors_fired()
    found = _search(feed, MORNING + 10 * MINUTE, "initials", patients=6)
    (fishing,) = [f for f in found if f.detector == "name-fishing"]
    assert fishing.explanation.startswith("10 searches by first name only or by initials")
    assert fishing.first_position == 0


def test_a_search_counts_once_by_its_request_id_whatever_lands_between_its_entries() -> None:
    """Under load another request's entry can fall between two entries of one response,
    and they can be more than an instant apart: the request id still makes them one
    search (adversary of the CI: an eleventh search counted of ten)."""
    feed = _feed()
    detail = {"params": ["given"], "name_shape": "initials", "patients": 3}
    for n in range(10):
        at = MORNING + n * MINUTE
        for k in range(3):
            feed.entry(
                at + k * 2_000_000,
                f"p{n}-{k}",
                tag="fhir:resource:search",
                session_id="s1",
                detail=detail,
                request_id=f"r{n}",
            )
            feed.entry(at + k * 2_000_000 + 1, "other", tag="fhir:resource:read")
        if n < 9:
            assert "name-fishing" not in feed.detectors_fired()
    (fishing,) = [f for f in feed.found if f.detector == "name-fishing"]
    assert fishing.explanation.startswith("10 searches by first name only or by initials")


def test_two_searches_alike_back_to_back_are_two_by_their_request_ids() -> None:
    feed = _feed()
    detail = {"params": ["given"], "name_shape": "initials", "patients": 2}
    for n in range(10):
        for k in range(2):
            feed.entry(
                MORNING,
                f"p{n}-{k}",
                tag="fhir:resource:search",
                session_id="s1",
                detail=detail,
                request_id=f"r{n}",
            )
    (fishing,) = [f for f in feed.found if f.detector == "name-fishing"]
    assert fishing.explanation.startswith("10 searches by first name only or by initials")


@pytest.mark.parametrize("patients", [1, 3])
def test_searches_sent_together_in_one_bundle_count_one_by_one(patients: int) -> None:
    """A batch or transaction Bundle's entries share its request id: ten searches by
    initials in one batch are ten searches, not one (review of round 54)."""
    feed = _feed()
    detail: dict[str, object] = {"params": ["given"], "name_shape": "initials"}
    if patients > 1:
        detail["patients"] = patients
    for n in range(10):
        for k in range(patients):
            feed.entry(
                MORNING,
                f"p{n}-{k}",
                tag="fhir:resource:search",
                session_id="s1",
                detail=detail,
                request_id="one-batch",
            )
    (fishing,) = [f for f in feed.found if f.detector == "name-fishing"]
    assert fishing.explanation.startswith("10 searches by first name only or by initials")


def test_full_name_searches_are_not_fishing() -> None:
    feed = _feed()
    for n in range(40):
        _search(feed, MORNING + n * MINUTE, None, patients=3)
    assert "name-fishing" not in feed.detectors_fired()


def test_refused_attempts_at_namesakes_count_like_opened_ones() -> None:
    feed = _feed(surname_share=0.05)
    for n in range(6):
        feed.entry(MORNING + n * MINUTE, f"usual{n}")
    for n in range(8):
        feed.entry(MORNING + (10 + n) * MINUTE, f"leung{n}", kin=("surname",), outcome="denied")
    alerts = [f for f in feed.found if f.detector == "same-surname"]
    assert alerts and "or tried to" in alerts[-1].explanation
    assert len(alerts[-1].patients) == 8


@pytest.mark.parametrize(
    ("resource_type", "params", "picked"),
    [
        ("Patient", ["_id"], True),
        ("Patient", ["_count", "identifier:of-type"], True),
        ("Observation", ["code", "patient"], True),
        ("Encounter", ["subject"], True),
        ("Patient", ["name"], False),
        ("Patient", ["birthdate", "family"], False),
        ("Patient", ["organization"], False),
        ("Observation", ["code"], False),
    ],
)
def test_a_search_naming_records_one_by_one_picks_each(
    resource_type: str, params: list[str], picked: bool
) -> None:
    entry = Access(
        position=1, at_us=1, tag="fhir:resource:search", outcome="success",
        principal="staff:ann", resource_type=resource_type, patient_pseudonym="p1",
        detail={"patients": 3, "params": params},
    )  # fmt: skip
    assert entry.picked is picked


def _pick(at_us: int, patient: str, kind: str) -> Access:
    """A pick of kin as the engine judges it once its grace is over."""
    return Access(
        position=0, at_us=at_us, tag="fhir:resource:read", outcome="success",
        principal="staff:ann", role="front_desk", resource_type="Patient",
        patient_pseudonym=patient, kin=(kind,),
    )  # fmt: skip


#: 23:55 in Hong Kong, the evening of ``MORNING``'s day.
LATE = MORNING + 14 * 60 * MINUTE - 5 * MINUTE


def test_a_pick_of_kin_judged_after_midnight_is_judged_in_its_own_day() -> None:
    feed = _feed()
    Feed.entry(feed, LATE, "colleague")  # observed; its grace is not over
    Feed.entry(feed, LATE + 10 * MINUTE, "other")  # 00:05: the account moves on a day
    (finding,) = feed.detectors.judge_kin(_pick(LATE, "colleague", "co-worker"), feed.state,
                                          feed.context)  # fmt: skip
    assert (finding.detector, finding.patients) == ("co-worker", ("colleague",))
    # The alert is the 23:55 day's, and today's counts do not hold the 23:55 pick.
    assert finding.period.startswith(str((LATE + feed.context.offset_us) // 86_400_000_000))
    assert feed.state.recent.kin_picks == {}


def test_namesakes_either_side_of_a_late_judgement_count_in_their_own_day() -> None:
    feed = _feed(surname_share=0.0005)
    for n in range(5):
        feed.entry(LATE - 60 * MINUTE + n * MINUTE, f"usual{n}")
    feed.entry(LATE - 5 * MINUTE, "au1", kin=("surname",))
    Feed.entry(feed, LATE, "au2")
    Feed.entry(feed, LATE + 10 * MINUTE, "other")
    found = feed.detectors.judge_kin(_pick(LATE, "au2", "surname"), feed.state, feed.context)
    (finding,) = [f for f in found if f.detector == "same-surname"]
    assert finding.patients == ("au1", "au2")
    # The next day starts its own count: a namesake after midnight is one of one.
    assert feed.entry(LATE + 11 * MINUTE, "au3", kin=("surname",)) == []


def test_a_late_pick_of_a_day_no_longer_kept_still_raises_the_at_once_kinds() -> None:
    feed = _feed()
    Feed.entry(feed, LATE, "colleague")
    for day in range(1, 5):
        Feed.entry(feed, LATE + day * 86_400_000_000, f"other{day}")
    assert len(feed.state.recent.earlier) <= 2
    found = feed.detectors.judge_kin(_pick(LATE, "colleague", "co-worker"), feed.state,
                                     feed.context)  # fmt: skip
    assert [f.detector for f in found] == ["co-worker"]


@pytest.mark.parametrize(
    ("alternatives", "patients", "picked"),
    [
        ({"family": 2}, 2, True),
        ({"name": 2}, 5, True),  # a handful shown: each was seen
        ({"family": 2, "given": 2}, 4, True),
        ({"family": 20}, 20, True),  # no more than the list named
        ({"family": 2}, 6, False),  # more than it named, past a handful: a broad net
        ({"family": 20}, 21, False),
        ({}, 2, False),
        ({"family": 1}, 2, False),
        ("family", 2, False),  # not what the gate records: ignored
    ],
)
def test_a_search_listing_alternatives_that_gives_few_patients_picks_each(
    alternatives: object, patients: int, picked: bool
) -> None:
    entry = Access(
        position=1, at_us=1, tag="fhir:resource:search", outcome="success",
        principal="staff:ann", resource_type="Patient", patient_pseudonym="p1",
        detail={"patients": patients, "params": ["family", "given", "name"],
                "alternatives": alternatives},
    )  # fmt: skip
    assert entry.picked is picked
