"""Scoring detectors: hand-made ground truth and alert lists, with answers worked out by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from carevault.sim.evaluate import AlertFormatError, parse_alert, score_run, score_scenario
from carevault.sim.workload.calendar import HK_GENERAL_HOLIDAYS, day_kind, month_end

RUN = {"start": "2026-03-02", "days": 21, "clinics": 8}


def access(at: str, positions: list[int], given: int, wall: float = 0.0) -> dict[str, Any]:
    return {
        "at": at,
        "wall_seconds": wall,
        "request": "GET Patient/x",
        "status": 200 if given else 403,
        "ledger_positions": positions,
        "given": [f"Patient/p{n}" for n in range(given)],
    }


def patient(number: int, at: str) -> dict[str, Any]:
    return {"pseudonym": f"ps{number}", "patient_id": f"p{number}", "first_given_at": at}


#: A bulk read on Tuesday 10 March (HKT evening = UTC 11:00-11:04): five patients, one a
#: minute, ledger positions 100-104.
BULK = {
    "name": "bulk",
    "kind": "gate",
    "account": "dr.bad",
    "role": "physician",
    "client": "clinic-desk",
    "per_day": 2000,
    "accesses": [access(f"2026-03-10T11:0{n}:00Z", [100 + n], 1, wall=float(n)) for n in range(5)],
    "patients": [patient(n, f"2026-03-10T11:0{n}:00Z") for n in range(5)],
    "unwraps": [],
}
#: Keys unwrapped outside the gate on Wednesday 18 March (UTC 18:00-18:02).
BYPASS = {
    "name": "bypass",
    "kind": "key-unwrap",
    "account": None,
    "role": None,
    "client": None,
    "per_day": 800,
    "accesses": [],
    "patients": [],
    "unwraps": [
        {"at": f"2026-03-18T18:0{n}:00Z", "wall_seconds": 1.0, "pseudonym": f"k{n}"}
        for n in range(3)
    ],
}
#: A drip: one patient a day on six days (Mon 9 to Mon 16 March, skipping the weekend).
DRIP_DAYS = ["09", "10", "11", "12", "13", "16"]
DRIP = {
    "name": "drip",
    "kind": "gate",
    "account": "mgr.quiet",
    "role": "clinic_manager",
    "client": "clinic-desk",
    "per_day": 25,
    "accesses": [access(f"2026-03-{d}T02:00:00Z", [500 + i], 1) for i, d in enumerate(DRIP_DAYS)],
    "patients": [patient(50 + i, f"2026-03-{d}T02:00:00Z") for i, d in enumerate(DRIP_DAYS)],
    "unwraps": [],
}
TRUTH = {"run": RUN, "scenarios": [BULK, BYPASS, DRIP]}


def alert(ident: str, raised: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": ident,
        "case": f"case-{ident}",
        "detector": "volume",
        "severity": "medium",
        "account": None,
        "role": None,
        "client": None,
        "source_address": None,
        "patient_count": 1,
        "first_position": None,
        "last_position": None,
        "raised_at": raised,
        "action": "none",
        "status": "open",
        "explanation": "hand-made",
    }
    base.update(fields)
    return base


def test_an_alert_whose_ledger_range_covers_an_access_detects_the_scenario() -> None:
    found = alert("a", "2026-03-10T11:02:30Z", first_position=90, last_position=102,
                  action="suspend", account="dr.bad", severity="high")  # fmt: skip
    score = score_scenario(BULK, [parse_alert(found)])
    assert score.detected and score.alerts == 1
    assert score.seconds_to_first_alert == 150.0
    assert score.wall_seconds_to_first_alert == 2.0  # the access at position 102
    # Patients p0, p1, p2 were given by 11:02:00, before the 11:02:30 alert.
    assert score.released_before_detection == 3
    assert score.contained and score.released_before_containment == 3
    # p3 and p4 were given after the account was suspended: containment that leaks.
    assert score.released_after_containment == 2
    assert score.bulk and not score.drip


def test_an_alert_that_does_not_contain_still_detects_but_everything_counts_as_released() -> None:
    found = alert("a", "2026-03-10T11:00:30Z", account="dr.bad", action="throttle")
    score = score_scenario(BULK, [parse_alert(found)])
    assert score.detected and score.released_before_detection == 1
    assert not score.contained and score.released_before_containment == 5
    assert score.released_after_containment == 0


def test_an_alert_on_another_account_or_outside_the_window_does_not_count() -> None:
    elsewhere = alert("b", "2026-03-10T11:02:00Z", account="rn.good", first_position=1,
                      last_position=99)  # fmt: skip
    too_late = alert("c", "2026-03-12T11:00:00Z", account="dr.bad")
    score = score_scenario(BULK, [parse_alert(elsewhere), parse_alert(too_late)])
    assert not score.detected and score.released_before_detection == 5


def test_another_accounts_alert_spanning_the_attackers_entries_does_not_detect_it() -> None:
    # A long-running alert on someone else is widened past the attacker's entries (its
    # range 90-200 covers positions 100-104) and was raised before the attack began:
    # crediting it would call the attack detected at once and contained from the start.
    spanning = alert("e", "2026-03-10T09:00:00Z", account="mgr.quiet", first_position=90,
                     last_position=200, action="step-up")  # fmt: skip
    score = score_scenario(BULK, [parse_alert(spanning)])
    assert not score.detected and not score.contained
    assert score.released_before_detection == 5 and score.released_after_containment == 0
    own = alert("f", "2026-03-10T11:03:30Z", account="dr.bad", first_position=103,
                last_position=103, action="suspend")  # fmt: skip
    score = score_scenario(BULK, [parse_alert(spanning), parse_alert(own)])
    assert score.detected and score.alerts == 1 and score.released_before_containment == 4


def test_a_gate_bypass_is_matched_by_its_detector_in_the_window() -> None:
    bypass = alert("d", "2026-03-18T18:01:30Z", detector="gate-bypass", severity="critical",
                   action="phi-offline")  # fmt: skip
    score = score_scenario(BYPASS, [parse_alert(bypass)])
    assert score.detected and score.released_before_detection == 2
    assert score.contained and score.patients_released == 3


def test_the_drip_is_judged_in_working_days() -> None:
    # Monday 9th to Friday 13th is five working days: the fifth day still meets the target.
    on_time = alert("e", "2026-03-13T09:00:00Z", account="mgr.quiet")
    score = score_scenario(DRIP, [parse_alert(on_time)])
    assert score.drip and score.working_days_to_detection == 5
    late = alert("f", "2026-03-16T09:00:00Z", account="mgr.quiet")
    assert score_scenario(DRIP, [parse_alert(late)]).working_days_to_detection == 6


def test_the_run_counts_false_alerts_on_attack_free_weeks_per_clinic() -> None:
    alerts = [
        # Week of 2 March has no attack: two false alerts there.
        alert("q1", "2026-03-03T03:00:00Z", account="rn.good"),
        alert("q2", "2026-03-05T03:00:00Z", account="fd.good", action="suspend"),
        # Week of 9 March is attacked: its false alert does not count towards the rate.
        alert("w1", "2026-03-11T03:00:00Z", account="rn.other"),
        alert(
            "hit",
            "2026-03-10T11:03:00Z",
            account="dr.bad",
            action="suspend",
            severity="high",
            patient_count=4,
        ),  # fmt: skip
    ]
    score = score_run(TRUTH, RUN, alerts)
    assert score.attack_free_weeks == ["2026-03-02"]
    assert score.false_alerts == 3
    assert score.false_alerts_per_clinic_week == pytest.approx(2 / 8)
    assert score.false_alerts_by_week == {"2026-03-02": 2, "2026-03-09": 1, "2026-03-16": 0}
    assert score.wrongful_blocks == ["fd.good"]
    # A run of 23 days ends on Tuesday 24 March: that week is attack-free and counts for
    # its two days, so its one false alert weighs as 3.5 in a whole week.
    late = alert("q3", "2026-03-24T03:00:00Z", account="rn.good")
    longer = score_run(TRUTH, {**RUN, "days": 23}, [*alerts, late])
    assert longer.attack_free_weeks == ["2026-03-02", "2026-03-23"]
    assert longer.false_alerts_per_clinic_week == pytest.approx(3 / (8 * (1 + 2 / 7)))
    assert score.targets["no wrongful suspension"] is False
    assert score.targets["<= 1 false alert per clinic-week (attack-free weeks)"] is True
    assert score.targets["every scenario detected"] is False  # bypass and drip were missed


def test_daily_precision_ranks_by_severity_then_patient_count() -> None:
    day = "2026-03-10T0{}:00:00Z"
    noise = [alert(f"n{n}", day.format(1), account="x", severity="low") for n in range(12)]
    real = alert("r", "2026-03-10T11:30:00Z", account="dr.bad", severity="critical",
                 patient_count=9)  # fmt: skip
    loud = alert("l", day.format(3), account="y", severity="high", patient_count=99)
    score = score_run(TRUTH, RUN, [*noise, real, loud])
    [today] = score.daily_top_precision
    assert today == {"day": "2026-03-10", "alerts": 14, "top": 10, "precision": 0.1}


def test_alerts_must_have_exactly_the_agreed_keys() -> None:
    short = alert("z", "2026-03-10T11:00:00Z")
    del short["case"]
    with pytest.raises(AlertFormatError, match="missing \\['case'\\]"):
        parse_alert(short)
    with pytest.raises(AlertFormatError, match="unexpected \\['score'\\]"):
        parse_alert({**alert("z", "2026-03-10T11:00:00Z"), "score": 3})
    with pytest.raises(AlertFormatError, match="severity 'urgent'"):
        parse_alert(alert("z", "2026-03-10T11:00:00Z", severity="urgent"))


def test_the_holiday_table_has_seventeen_days_a_year_with_sunday_substitution() -> None:
    for year in (2026, 2027):
        assert sum(1 for day in HK_GENERAL_HOLIDAYS if day.year == year) == 17
    assert not any(day.weekday() == 6 for day in HK_GENERAL_HOLIDAYS)
    # Ching Ming 2026 fell on Sunday 5 April, Easter Monday took the 6th: the 7th is the holiday.
    assert day_kind(date(2026, 4, 7)).value == "rota"
    assert day_kind(date(2026, 4, 8)).value == "weekday"
    assert month_end(date(2026, 3, 31)) and not month_end(date(2026, 3, 30))
    # April 2027 ends on a Friday; January 2027 ends on a Sunday, so the Friday bills.
    assert month_end(date(2027, 4, 30)) and month_end(date(2027, 1, 29))
    with pytest.raises(ValueError, match="2025-12-31 is outside it"):
        day_kind(date(2025, 12, 31))


def test_a_drip_contained_on_its_second_day_is_still_judged_as_a_drip() -> None:
    # Planned for fifteen days, stopped after two: whether the drip target is met must
    # not depend on the drip having been allowed to run for five.
    stopped = {**DRIP, "accesses": DRIP["accesses"][:2], "patients": DRIP["patients"][:2]}
    assert not score_scenario(stopped, []).drip
    assert score_scenario({**stopped, "planned_days": 15}, []).drip


def test_an_own_alert_raised_before_the_attack_detects_it_only_once_widened_across_it() -> None:
    # The account owner's own alert of the morning (09:00), widened through the day: its
    # range (90-103) reaches the thief's entries up to 103 (11:03), the last it is known
    # to have taken in. Raising it was no detection of the evening's reads.
    earlier = alert("g", "2026-03-10T09:00:00Z", account="dr.bad", first_position=90,
                    last_position=103, action="step-up")  # fmt: skip
    score = score_scenario(BULK, [parse_alert(earlier)])
    assert score.detected and score.seconds_to_first_alert == 180.0
    assert score.released_before_detection == 4 and score.released_before_containment == 4
    # Raised within a minute before the first access (stamped once answered): its own.
    own = alert("h", "2026-03-10T10:59:30Z", account="dr.bad", first_position=100,
                last_position=104, action="suspend")  # fmt: skip
    score = score_scenario(BULK, [parse_alert(own)])
    assert score.seconds_to_first_alert == 0.0 and score.released_before_containment == 0
