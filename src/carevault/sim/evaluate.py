"""The scorecard: how well the detectors did against a run's ground truth. Pure functions.

Inputs are the run's ``ground-truth.json`` and ``run.json`` (as dicts) and the alerts as
``carevault alerts list --json`` gives them (``ALERT_KEYS``). An alert belongs to a
scenario when it names the scenario's account (or client app) and either its ledger
range covers one of the scenario's accesses or it was raised between the scenario's
first access and a day after its last (another person's alert never does, whatever its
range spans); a gate-bypass alert (detector name mentioning a bypass or an unwrap)
belongs to a key-unwrap scenario of the same window. Every other alert is a false alert.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from carevault.sim.workload.calendar import is_working_day

#: What an alert said before integrator round 67 added ``ACTIVITY_KEYS``: a run's alerts
#: saved by an older build lack those, and are scored as ever.
REQUIRED_ALERT_KEYS = frozenset(
    {
        "id", "case", "detector", "severity", "account", "role", "client", "source_address",
        "patient_count", "first_position", "last_position", "raised_at", "action", "status",
        "explanation",
    }
)  # fmt: skip
ACTIVITY_KEYS = frozenset({"updated_at", "first_activity_at", "last_activity_at", "clinics"})
ALERT_KEYS = REQUIRED_ALERT_KEYS | ACTIVITY_KEYS
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
CONTAINING = frozenset({"suspend", "phi-offline", "step-up"})
HKT = timezone(timedelta(hours=8))
#: What counts as bulk (for the "≤ 50 released" target) and as a slow drip.
BULK_PER_DAY = 200
DRIP_DAYS = 5
#: How long before an attack's first access an alert may be raised and still be that
#: access's own (``noticed``).
STAMP_SLACK = timedelta(minutes=1)
TOP = 10


class AlertFormatError(ValueError):
    """An alert dict without exactly the agreed keys."""


@dataclass(frozen=True)
class Alert:
    id: str
    detector: str
    severity: str
    account: str | None
    client: str | None
    patient_count: int
    first_position: int | None
    last_position: int | None
    raised: datetime
    action: str | None


def parse_alert(raw: dict[str, Any]) -> Alert:
    missing, extra = REQUIRED_ALERT_KEYS - raw.keys(), raw.keys() - ALERT_KEYS
    if missing or extra:
        raise AlertFormatError(
            f"alert {raw.get('id')!r}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        )
    if raw["severity"] not in SEVERITY_RANK:
        raise AlertFormatError(f"alert {raw['id']!r}: severity {raw['severity']!r}")
    return Alert(
        id=str(raw["id"]),
        detector=str(raw["detector"]),
        severity=str(raw["severity"]),
        account=raw["account"],
        client=raw["client"],
        patient_count=int(raw["patient_count"] or 0),
        first_position=raw["first_position"],
        last_position=raw["last_position"],
        raised=instant(str(raw["raised_at"])),
        action=raw["action"],
    )


def instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Attack:
    """A scenario's ground truth, indexed for matching."""

    name: str
    kind: str
    account: str | None
    client: str | None
    per_day: int
    positions: list[int]
    first: datetime | None
    last: datetime | None
    #: Every access (and unwrap): moment, wall seconds into the run, ledger positions.
    releases: list[tuple[datetime, float, list[int]]]
    active_days: set[date]
    #: The days the scenario was to run (a drip contained on its third day is still a
    #: drip); the days it was active, for older ground truth without the figure.
    planned_days: int

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Attack:
        accesses = entry.get("accesses", [])
        unwraps = entry.get("unwraps", [])
        releases = [
            (instant(a["at"]), float(a["wall_seconds"]), list(a["ledger_positions"]))
            for a in accesses
        ] + [(instant(u["at"]), float(u["wall_seconds"]), []) for u in unwraps]
        releases.sort(key=lambda item: item[0])
        times = [moment for moment, _, _ in releases]
        active = {moment.astimezone(HKT).date() for moment in times}
        return cls(
            name=entry["name"],
            kind=entry.get("kind", "gate"),
            account=entry.get("account"),
            client=entry.get("client") if entry.get("role") == "integration" else None,
            per_day=int(entry.get("per_day", 0)),
            positions=sorted(p for a in accesses for p in a["ledger_positions"]),
            first=times[0] if times else None,
            last=times[-1] if times else None,
            releases=releases,
            active_days=active,
            planned_days=int(entry.get("planned_days") or len(active)),
        )


def _given_times(entry: dict[str, Any]) -> list[datetime]:
    """When each patient was first given (gate) or first had their key unwrapped."""
    moments = [instant(p["first_given_at"]) for p in entry.get("patients", [])]
    seen: set[str] = set()
    for unwrap in entry.get("unwraps", []):
        if unwrap["pseudonym"] not in seen:
            seen.add(unwrap["pseudonym"])
            moments.append(instant(unwrap["at"]))
    return sorted(moments)


def belongs(alert: Alert, attack: Attack) -> bool:
    if attack.first is None or attack.last is None:
        return False
    if attack.kind == "key-unwrap":
        name = alert.detector.casefold()
        in_window = attack.first <= alert.raised <= attack.last + timedelta(days=1)
        return in_window and ("bypass" in name or "unwrap" in name)
    # Only an alert on the attacker's own account (or client app) is the attacker's: an
    # alert's ledger range on someone else spans every entry written meanwhile, the
    # attacker's included, and would credit their detection to another person's alert.
    if not _same_principal(alert, attack):
        return False
    if alert.first_position is not None and alert.last_position is not None and attack.positions:
        index = bisect.bisect_left(attack.positions, alert.first_position)
        if index < len(attack.positions) and attack.positions[index] <= alert.last_position:
            return True
    return attack.first <= alert.raised <= attack.last + timedelta(days=1)


def _same_principal(alert: Alert, attack: Attack) -> bool:
    if attack.client is not None:
        return alert.client == attack.client and alert.account is None
    return attack.account is not None and alert.account == attack.account


@dataclass
class ScenarioScore:
    name: str
    kind: str
    detected: bool
    alerts: int
    first_alert_at: str | None
    seconds_to_first_alert: float | None
    wall_seconds_to_first_alert: float | None
    working_days_to_detection: int | None
    patients_released: int
    released_before_detection: int
    contained: bool
    released_before_containment: int
    #: Patients given after containment began: containment that did not hold (0 when
    #: nothing contained the scenario).
    released_after_containment: int
    bulk: bool
    drip: bool


def noticed(alert: Alert, attack: Attack) -> datetime:
    """When ``alert`` is known to have taken ``attack`` in: when it was raised; or, for an
    alert on the account raised before the attack began and widened across it (its
    ledger range covers the attack's entries), the last of those entries, since a range
    spans whatever was written meanwhile and only its end is known to be the alert's own.
    Its raising is no detection of what had not yet happened (the owner's alert of the
    morning is not the detection of the thief's evening). An alert raised at most
    ``STAMP_SLACK`` before the first access is that access's own: the ground truth stamps
    an access once its answer is in (``truth``), after the entry that raised it."""
    if attack.first is None or alert.raised >= attack.first - STAMP_SLACK:
        return alert.raised
    low, high = alert.first_position, alert.last_position
    covered = [
        moment
        for moment, _, positions in attack.releases
        if low is not None
        and high is not None
        and any(low <= position <= high for position in positions)
    ]
    return max([alert.raised, *covered])


def score_scenario(entry: dict[str, Any], alerts: list[Alert]) -> ScenarioScore:
    attack = Attack.of(entry)
    mine = sorted(
        ((noticed(a, attack), a) for a in alerts if belongs(a, attack)), key=lambda pair: pair[0]
    )
    given = _given_times(entry)
    first_at, first_alert = mine[0] if mine else (None, None)
    containing = [moment for moment, a in mine if a.action in CONTAINING]
    contained_at = containing[0] if containing else None
    seconds = wall = None
    working_days = None
    if first_alert is not None and first_at is not None and attack.first is not None:
        seconds = max((first_at - attack.first).total_seconds(), 0.0)
        wall = _wall_to(attack, first_alert)
        working_days = _working_days(attack.first, first_at)
    return ScenarioScore(
        name=attack.name,
        kind=attack.kind,
        detected=first_alert is not None,
        alerts=len(mine),
        first_alert_at=first_at.isoformat() if first_at else None,
        seconds_to_first_alert=seconds,
        wall_seconds_to_first_alert=wall,
        working_days_to_detection=working_days,
        patients_released=len(given),
        released_before_detection=_before(given, first_at),
        contained=contained_at is not None,
        released_before_containment=_before(given, contained_at),
        released_after_containment=0
        if contained_at is None
        else len(given) - _before(given, contained_at),
        bulk=attack.kind == "gate" and attack.per_day >= BULK_PER_DAY,
        drip=attack.planned_days >= DRIP_DAYS and attack.per_day < BULK_PER_DAY,
    )


def _before(given: list[datetime], moment: datetime | None) -> int:
    return len(given) if moment is None else bisect.bisect_right(given, moment)


def _wall_to(attack: Attack, alert: Alert) -> float | None:
    """Wall-clock seconds of the run from the first malicious access to the access whose
    ledger entry the alert ends on (or the last access before it was raised)."""
    if not attack.releases:
        return None
    start = attack.releases[0][1]
    for _, wall, positions in attack.releases:
        if alert.last_position is not None and alert.last_position in positions:
            return max(wall - start, 0.0)
    before = [wall for moment, wall, _ in attack.releases if moment <= alert.raised]
    return max((before[-1] if before else start) - start, 0.0)


def _working_days(first: datetime, raised: datetime) -> int:
    """Working days from the first access to the alert, the first day counting as one."""
    day, end = first.astimezone(HKT).date(), raised.astimezone(HKT).date()
    count = 1
    while day < end:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


# --- the whole run -------------------------------------------------------------------------------


def week_of(moment: datetime) -> date:
    return week_of_day(moment.astimezone(HKT).date())


def week_of_day(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass
class RunScore:
    scenarios: list[ScenarioScore]
    alerts: int
    false_alerts: int
    attack_free_weeks: list[str]
    false_alerts_per_clinic_week: float | None
    false_alerts_by_week: dict[str, int]
    wrongful_blocks: list[str]
    daily_top_precision: list[dict[str, Any]]
    mean_top_precision: float | None
    targets: dict[str, bool | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def score_run(
    truth: dict[str, Any], run: dict[str, Any], raw_alerts: list[dict[str, Any]]
) -> RunScore:
    alerts = [parse_alert(raw) for raw in raw_alerts]
    entries = truth.get("scenarios", [])
    attacks = [Attack.of(entry) for entry in entries]
    scores = [score_scenario(entry, alerts) for entry in entries]
    genuine = {a.id for a in alerts if any(belongs(a, attack) for attack in attacks)}
    false = [a for a in alerts if a.id not in genuine]
    start = date.fromisoformat(run["start"])
    days = [start + timedelta(days=n) for n in range(int(run["days"]))]
    weeks = sorted({day - timedelta(days=day.weekday()) for day in days})
    attacked = {day - timedelta(days=day.weekday()) for a in attacks for day in a.active_days}
    quiet = [week for week in weeks if week not in attacked]
    by_week = {str(week): sum(1 for a in false if week_of(a.raised) == week) for week in weeks}
    clinics = int(run.get("clinics", 1)) or 1
    quiet_false = sum(by_week[str(week)] for week in quiet)
    # A week the run covers only in part (its first or last) counts for the days it has:
    # five false alerts in a run's last two days are not five in a week.
    quiet_weeks = sum(sum(1 for day in days if week_of_day(day) == week) / 7 for week in quiet)
    per_clinic_week = quiet_false / (clinics * quiet_weeks) if quiet else None
    attackers = {a.account for a in attacks if a.account} | {a.client for a in attacks if a.client}
    # A client app revoked is a wrongful block as much as a person suspended.
    wrongful = sorted(
        {
            name
            for a in alerts
            if a.action == "suspend"
            and (name := a.account or a.client) is not None
            and name not in attackers
        }
    )
    daily = _daily_precision(alerts, genuine)
    mean = statistics.fmean(d["precision"] for d in daily) if daily else None
    result = RunScore(
        scenarios=scores,
        alerts=len(alerts),
        false_alerts=len(false),
        attack_free_weeks=[str(week) for week in quiet],
        false_alerts_per_clinic_week=per_clinic_week,
        false_alerts_by_week=by_week,
        wrongful_blocks=[str(name) for name in wrongful],
        daily_top_precision=daily,
        mean_top_precision=mean,
    )
    result.targets = targets(result)
    return result


def _daily_precision(alerts: list[Alert], genuine: set[str]) -> list[dict[str, Any]]:
    by_day: dict[date, list[Alert]] = {}
    for alert in alerts:
        by_day.setdefault(alert.raised.astimezone(HKT).date(), []).append(alert)
    found = []
    for day in sorted(by_day):
        ranked = sorted(
            by_day[day],
            key=lambda a: (-SEVERITY_RANK[a.severity], -a.patient_count, a.raised),
        )[:TOP]
        hits = sum(1 for a in ranked if a.id in genuine)
        found.append(
            {
                "day": str(day),
                "alerts": len(by_day[day]),
                "top": len(ranked),
                "precision": hits / len(ranked),
            }  # fmt: skip
        )
    return found


def targets(score: RunScore) -> dict[str, bool | None]:
    """The issue's bar for the default month, each true, false, or None (nothing to judge)."""
    bulk = [s.released_before_containment for s in score.scenarios if s.bulk]
    drips = [s for s in score.scenarios if s.drip]
    return {
        "every scenario detected": all(s.detected for s in score.scenarios)
        if score.scenarios
        else None,
        "median released before containment <= 50 (bulk)": statistics.median(bulk) <= 50
        if bulk
        else None,
        "slow drip detected within 5 working days": all(
            s.working_days_to_detection is not None and s.working_days_to_detection <= 5
            for s in drips
        )
        if drips
        else None,
        "<= 1 false alert per clinic-week (attack-free weeks)": (
            score.false_alerts_per_clinic_week <= 1.0
            if score.false_alerts_per_clinic_week is not None
            else None
        ),
        "no wrongful suspension": not score.wrongful_blocks,
    }
