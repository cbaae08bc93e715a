"""Primary-care history: acute illness, chronic disease follow-up, vaccination, allergies.

Rates and prevalences are rounded figures in the spirit of Hong Kong's Population
Health Survey, scaled down to what one private clinic group would see and record.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

from carevault.sim.care import care_plan
from carevault.sim.chart import Chart, Visit
from carevault.sim.codes import CONDITIONS, DOCUMENT_TYPES, REPORTS

YEAR = 365.25


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def day_between(rng: random.Random, start: date, end: date) -> date:
    """A day in ``[start, end)``; ``start`` when the range is empty."""
    span = (end - start).days
    return start + timedelta(days=rng.randrange(span)) if span > 0 else start


def years_in_window(chart: Chart) -> float:
    return (chart.today - chart.person.first_day).days / YEAR


def first_care(chart: Chart, speciality_for_child: str) -> str:
    """Children see the paediatrician if their clinic has one, else the GP."""
    child = chart.person.age_on(chart.today) < 18
    home = chart.person.home
    return (
        speciality_for_child if child and home.offers(speciality_for_child) else "general_practice"
    )


# --- acute illness ------------------------------------------------------------------

#: (condition, weight, medicines) for a sick visit, by age group.
ACUTE_CHILD = (
    ("uri", 6, ("paracetamol_syrup", "chlorphenamine")), ("otitis_media", 2, ("amoxicillin",)),
    ("gastroenteritis", 2, ()), ("pharyngitis", 2, ("paracetamol_syrup",)),
    ("influenza", 1, ("oseltamivir",)), ("conjunctivitis", 1, ("chloramphenicol_drops",)),
)  # fmt: skip
ACUTE_ADULT = (
    ("uri", 6, ("paracetamol", "dextromethorphan")), ("pharyngitis", 2, ("paracetamol",)),
    ("sinusitis", 1, ("amoxicillin",)), ("bronchitis", 1, ("dextromethorphan",)),
    ("influenza", 1, ("oseltamivir", "paracetamol")), ("gastroenteritis", 2, ()),
    ("gerd", 1, ("omeprazole",)), ("allergic_rhinitis", 1, ("loratadine",)),
    ("conjunctivitis", 1, ("chloramphenicol_drops",)), ("uti", 1, ("nitrofurantoin",)),
)  # fmt: skip
_FEVERISH = frozenset({"uri", "pharyngitis", "influenza", "otitis_media", "bronchitis"})


def acute_illness(chart: Chart, allergies: frozenset[str]) -> None:
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    rate = 0.7 if age < 6 else 0.3 if age < 18 else 0.17 if age < 65 else 0.25
    for _ in range(poisson(rng, rate * years_in_window(chart))):
        day = day_between(rng, person.first_day, chart.today)
        child = person.age_on(day) < 18
        table = ACUTE_CHILD if child else ACUTE_ADULT
        key, _, medicines = rng.choices(table, weights=[w for _, w, _ in table])[0]
        if key == "uti" and not person.female:
            key, medicines = "uri", ("paracetamol",)
        speciality = "paediatrics" if child and person.home.offers("paediatrics") else (
            "general_practice")  # fmt: skip
        visit = chart.visit(speciality, day, "symptom", (CONDITIONS[key],))
        resolved = visit.start.date() + timedelta(days=rng.randint(5, 14))
        condition = chart.condition(
            visit, key, resolved=resolved if resolved < chart.today else None
        )
        if key in _FEVERISH and rng.random() < 0.6:
            chart.measurement(visit, "temperature", "vital-signs",
                              round(rng.uniform(37.6, 39.2), 1), "Cel")  # fmt: skip
        for medicine in medicines:
            if "penicillin" in allergies and medicine.startswith("amoxicillin"):
                continue  # the allergy is on record: no penicillins
            chart.medication(visit, medicine, condition)
            visit.fees.append("medication")


# --- chronic disease ----------------------------------------------------------------

#: Share of patients with each condition by age band (lower bound of the band).
PREVALENCE: dict[str, tuple[tuple[int, float], ...]] = {
    "hypertension": ((40, 0.04), (50, 0.09), (60, 0.16), (70, 0.22)),
    "diabetes": ((40, 0.015), (50, 0.035), (60, 0.06), (70, 0.08)),
    "hyperlipidaemia": ((40, 0.035), (50, 0.07), (60, 0.11)),
}
_DRUGS = {
    "hypertension": (("amlodipine", 0.7), ("losartan", 0.3)),
    "diabetes": (("metformin", 1.0),),
    "hyperlipidaemia": (("atorvastatin", 0.7), ("simvastatin", 0.3)),
}


def _prevalence(key: str, age: int) -> float:
    share = 0.0
    for lower, value in PREVALENCE[key]:
        if age >= lower:
            share = value
    return share


def _chronic_conditions(chart: Chart) -> list[str]:
    rng, age = chart.rng, chart.person.age_on(chart.today)
    found = [key for key in PREVALENCE if rng.random() < _prevalence(key, age)]
    # Diabetes and raised lipids travel with hypertension.
    if "hypertension" in found and "diabetes" not in found and rng.random() < 0.08:
        found.append("diabetes")
    if "diabetes" in found and "hyperlipidaemia" not in found and rng.random() < 0.4:
        found.append("hyperlipidaemia")
    return found


def _medicines(rng: random.Random, conditions: list[str]) -> list[tuple[str, str]]:
    chosen = []
    for key in conditions:
        options = _DRUGS[key]
        chosen.append((key, rng.choices([d for d, _ in options], [w for _, w in options])[0]))
        if key == "diabetes" and rng.random() < 0.3:
            chosen.append((key, "gliclazide"))
    return chosen


def chronic_care(chart: Chart) -> None:
    """Diagnosis, then follow-up every 3 (diabetes with more), 4 (either) or 6 months."""
    rng, person = chart.rng, chart.person
    conditions = _chronic_conditions(chart)
    if not conditions:
        return
    earliest = max(
        person.birth_date + timedelta(days=int(35 * YEAR)), chart.today - timedelta(days=4000)
    )
    onset = day_between(rng, earliest, chart.today - timedelta(days=30))
    first = max(onset, person.first_day)
    reasons = tuple(CONDITIONS[key] for key in conditions)
    visit = chart.visit("general_practice", first, "check_up", reasons)
    condition_ids = {
        key: chart.condition(visit, key, onset=onset, chronic=True) for key in conditions
    }
    for key, condition_id in condition_ids.items():
        if rng.random() < 0.35:
            care_plan(chart, visit, key, condition_id)
    if rng.random() < 0.3:
        chart.note(visit, DOCUMENT_TYPES["progress"], _chronic_note(conditions))
    medicines = _medicines(rng, conditions)
    several = len(conditions) > 1
    diabetic = "diabetes" in conditions
    interval = 91 if diabetic and several else 120 if diabetic or several else 182
    state = _Readings(rng, interval)
    day, last = first, first
    while day < chart.today:
        if day == first or rng.random() < 0.75:
            if day != first:
                visit = chart.visit("general_practice", day, "follow_up", reasons)
            _review(chart, visit, conditions, condition_ids, medicines, state)
            last = visit.start.date()
        day = last + timedelta(days=interval + rng.randint(-10, 10))
    chart.due.append((day, "general_practice"))


class _Readings:
    """Blood pressure, HbA1c and LDL that improve with treatment, with noise."""

    def __init__(self, rng: random.Random, interval: int) -> None:
        self.rng = rng
        self.reviews = 0
        # HbA1c every six months, lipids once a year, whatever the visit interval.
        self.hba1c_every = max(1, round(182 / interval))
        self.lipids_every = max(1, round(365 / interval))
        self.systolic = rng.gauss(152, 10)
        self.diastolic = rng.gauss(92, 6)
        self.hba1c = rng.gauss(8.0, 0.8)
        self.ldl = rng.gauss(3.9, 0.5)

    def step(self) -> None:
        self.reviews += 1
        self.systolic = max(118.0, self.systolic - self.rng.uniform(0, 5))
        self.diastolic = max(72.0, self.diastolic - self.rng.uniform(0, 3))
        self.hba1c = max(5.9, self.hba1c - self.rng.uniform(-0.1, 0.35))
        self.ldl = max(1.8, self.ldl - self.rng.uniform(-0.1, 0.4))


def _review(
    chart: Chart, visit: Visit, conditions: list[str], condition_ids: dict[str, str],
    medicines: list[tuple[str, str]], state: _Readings,
) -> None:  # fmt: skip
    rng = chart.rng
    due = state.reviews  # 0 at diagnosis: everything is measured then
    state.step()
    if "hypertension" in conditions or "diabetes" in conditions:
        systolic = int(state.systolic + rng.gauss(0, 6))
        chart.blood_pressure(
            visit, systolic, int(min(state.diastolic + rng.gauss(0, 4), systolic - 25))
        )
    if "diabetes" in conditions and due % state.hba1c_every == 0:
        hba1c = round(state.hba1c + rng.gauss(0, 0.2), 1)
        results = [
            chart.measurement(visit, "hba1c", "laboratory", hba1c, "%"),
            chart.measurement(
                visit, "glucose", "laboratory", round(rng.gauss(7.2, 1.1), 1), "mmol/L"
            ),
            chart.measurement(
                visit, "creatinine", "laboratory", round(rng.gauss(85, 15)), "umol/L"
            ),
        ]
        chart.lab_report(visit, REPORTS["diabetes_review"], results, "Diabetes review panel")
    if (
        "hyperlipidaemia" in conditions or "diabetes" in conditions
    ) and due % state.lipids_every == 0:
        ldl = round(state.ldl + rng.gauss(0, 0.15), 1)
        hdl = round(rng.gauss(1.3, 0.2), 2)
        triglyceride = round(abs(rng.gauss(1.7, 0.4)), 2)
        total = round(ldl + hdl + triglyceride / 2.2, 1)  # the Friedewald relation, in mmol/L
        results = [
            chart.measurement(visit, "cholesterol", "laboratory", total, "mmol/L"),
            chart.measurement(visit, "ldl", "laboratory", ldl, "mmol/L"),
            chart.measurement(visit, "hdl", "laboratory", hdl, "mmol/L"),
            chart.measurement(visit, "triglyceride", "laboratory", triglyceride, "mmol/L"),
        ]  # fmt: skip
        chart.lab_report(visit, REPORTS["lipid_panel"], results, f"LDL cholesterol {ldl} mmol/L")
    last_visit = visit.start.date() + timedelta(days=100) > chart.today
    for key, medicine in medicines:
        chart.medication(visit, medicine, condition_ids[key], active=last_visit)
    visit.fees.append("medication")


def _chronic_note(conditions: list[str]) -> str:
    names = ", ".join(CONDITIONS[key].display.lower() for key in conditions)
    return (
        f"Assessment: {names}.\n"
        "Plan: start medication as prescribed; low-salt diet and regular exercise advised; "
        "home blood pressure and glucose monitoring explained.\n"
        "Review in 3 months with blood tests."
    )


# --- asthma, vaccination and allergies ----------------------------------------------------


def asthma(chart: Chart) -> None:
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    if age < 3 or rng.random() >= (0.07 if age < 18 else 0.035):
        return
    speciality = first_care(chart, "paediatrics")
    first = day_between(rng, person.first_day, chart.today - timedelta(days=14))
    if speciality == "paediatrics" and person.age_on(first) >= 18:
        speciality = "general_practice"
    visit = chart.visit(speciality, first, "problem", (CONDITIONS["asthma"],))
    condition = chart.condition(visit, "asthma", chronic=True)
    controller = rng.random() < 0.5
    day = visit.start.date()
    while True:
        chart.medication(visit, "salbutamol", condition, active=True)
        if controller:
            chart.medication(visit, "budesonide", condition, active=True)
        visit.fees.append("medication")
        day += timedelta(days=rng.randint(300, 420))
        if day >= chart.today:
            break
        if speciality == "paediatrics" and person.age_on(day) >= 18:
            speciality = "general_practice"
        visit = chart.visit(speciality, day, "follow_up", (CONDITIONS["asthma"],))


def vaccination(chart: Chart) -> None:
    """Seasonal influenza vaccine each autumn for some, pneumococcal for some elderly."""
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    uptake = 0.5 if age >= 65 else 0.3 if age < 12 else 0.07
    if rng.random() >= uptake:
        return
    for year in range(person.first_day.year, chart.today.year + 1):
        day = date(year, 10, 15) + timedelta(days=rng.randint(0, 60))
        if not person.first_day <= day < chart.today or person.age_on(day) < 1:
            continue
        if rng.random() < 0.3:
            continue  # skipped that season
        speciality = (
            first_care(chart, "paediatrics") if person.age_on(day) < 18 else "general_practice"
        )
        visit = chart.visit(speciality, day, "vaccination", charge=False)
        nurse = rng.choice(chart.group.members(visit.clinic.id, "nurse"))
        chart.immunization(visit, "influenza", 1, "Seasonal influenza vaccination", nurse)
        if age >= 65 and year == chart.today.year - 1 and rng.random() < 0.3:
            chart.immunization(visit, "ppsv23", 1, "Pneumococcal vaccination", nurse)


#: Share of patients with each allergy on record.
ALLERGY_SHARE = {"penicillin": 0.045, "shellfish": 0.03, "peanut": 0.012}


def pick_allergies(rng: random.Random, age: int) -> frozenset[str]:
    found = {key for key, share in ALLERGY_SHARE.items() if rng.random() < share}
    if age < 18 and rng.random() < 0.015:
        found.add("peanut")  # peanut allergy is commoner in children
    return frozenset(found)


def record_allergies(chart: Chart, allergies: frozenset[str]) -> None:
    """Allergies are taken down at the patient's first visit."""
    if not chart.visits or not allergies:
        return
    first = min(chart.visits, key=lambda v: v.start)
    for key in sorted(allergies):
        chart.allergy(first, key)
