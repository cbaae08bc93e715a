"""Speciality care: child health, women's health, mental health, physiotherapy, dental,
dermatology and eye care, each at the clinic that offers the speciality.

Age and sex gate every programme: growth and the childhood immunisation programme
only while a child, pregnancy only at 18-45, cervical screening at 25-64.
"""

from __future__ import annotations

from datetime import timedelta

from carevault.sim.care import imaging_study
from carevault.sim.chart import Chart, Visit
from carevault.sim.codes import (
    CONDITIONS,
    DOCUMENT_TYPES,
    HK_CHILDHOOD_PROGRAMME,
    POSITIVE,
    REPORTS,
)
from carevault.sim.history import day_between, poisson, years_in_window

CHILDHOOD_SERIES = "Hong Kong Childhood Immunisation Programme"
#: Check-ups with growth measurements, by age in days, besides the vaccination visits.
_CHECK_UPS = (730, 1095, 1461, 1826)
#: (age in days, weight kg, length/height cm) for boys; girls are a little smaller.
_GROWTH = ((0, 3.3, 50), (61, 5.6, 58), (122, 7.0, 64), (183, 7.9, 68), (365, 9.6, 75),
           (548, 11.0, 81), (730, 12.2, 87), (1095, 14.3, 95), (1461, 16.3, 102),
           (1826, 18.4, 109), (2191, 20.6, 115), (4015, 34.0, 140), (4380, 38.0, 146))  # fmt: skip


def _growth(age_days: int, female: bool) -> tuple[float, float]:
    for (a0, w0, h0), (a1, w1, h1) in zip(_GROWTH, _GROWTH[1:], strict=False):
        if a0 <= age_days <= a1:
            share = (age_days - a0) / (a1 - a0)
            weight, height = w0 + share * (w1 - w0), h0 + share * (h1 - h0)
            break
    else:
        weight, height = _GROWTH[-1][1], _GROWTH[-1][2]
    scale = 0.96 if female else 1.0
    return weight * scale, height * (0.985 if female else 1.0)


def child_health(chart: Chart) -> None:
    """Well-child visits with growth and the Hong Kong Childhood Immunisation Programme."""
    rng, person = chart.rng, chart.person
    if person.age_on(person.first_day) >= 12 or rng.random() >= 0.7:
        return  # most children get their vaccines at government Maternal and Child Health Centres
    visits: dict[int, list[tuple[str, int]]] = {age: [] for age in _CHECK_UPS}
    for age_days, vaccine, dose, girls_only in HK_CHILDHOOD_PROGRAMME:
        if not girls_only or person.female:
            visits.setdefault(age_days, []).append((vaccine, dose))
    for age_days in sorted(visits):
        day = person.birth_date + timedelta(days=age_days + rng.randint(0, 10))
        if not person.first_day <= day < chart.today or person.age_on(day) >= 18:
            continue
        kind = "well_child" if age_days < 2191 else "vaccination"
        visit = chart.visit("paediatrics", day, kind)
        if visits[age_days]:
            nurse = rng.choice(chart.group.members(visit.clinic.id, "nurse"))
            for vaccine, dose in visits[age_days]:
                chart.immunization(visit, vaccine, dose, CHILDHOOD_SERIES, nurse)
        if age_days < 2191:
            _measure_growth(chart, visit, (day - person.birth_date).days)


def _measure_growth(chart: Chart, visit: Visit, age_days: int) -> None:
    rng = chart.rng
    weight, height = _growth(age_days, chart.person.female)
    weight *= rng.uniform(0.92, 1.08)
    height *= rng.uniform(0.97, 1.03)
    chart.measurement(visit, "weight", "vital-signs", round(weight, 1), "kg")
    chart.measurement(visit, "height", "vital-signs", round(height, 1), "cm")
    if age_days < 730:
        head = 35 + 12 * min(age_days, 730) / 730
        chart.measurement(
            visit,
            "head_circumference",
            "vital-signs",
            round(head * rng.uniform(0.97, 1.03), 1),
            "cm",
        )
    else:
        chart.measurement(
            visit, "bmi", "vital-signs", round(weight / (height / 100) ** 2, 1), "kg/m2"
        )


def womens_health(chart: Chart) -> None:
    rng, person = chart.rng, chart.person
    if not person.female:
        return
    age = person.age_on(chart.today)
    if 25 <= age <= 67 and rng.random() < 0.35:
        _cervical_screening(chart)
    if 18 <= age <= 47 and rng.random() < 0.12:
        _contraception(chart)
    if 20 <= age <= 46 and rng.random() < 0.06:
        _pregnancy(chart)


def _cervical_screening(chart: Chart) -> None:
    rng, person = chart.rng, chart.person
    day = day_between(rng, person.first_day, person.first_day + timedelta(days=1095))
    while day < chart.today:
        if 25 <= person.age_on(day) <= 64:
            visit = chart.visit("womens_health", day, "check_up")
            chart.procedure(visit, "cervical_screening")
            chart.lab_report(visit, REPORTS["cervical_cytology"], [],
                             "Negative for intraepithelial lesion or malignancy.")  # fmt: skip
        day += timedelta(days=1095 + rng.randint(-30, 60))
    chart.due.append((day, "womens_health"))


def _contraception(chart: Chart) -> None:
    rng, person = chart.rng, chart.person
    day = day_between(rng, person.first_day, chart.today)
    condition: str | None = None
    while day < chart.today and 18 <= person.age_on(day) <= 45:
        visit = chart.visit("womens_health", day, "check_up" if condition else "problem",
                            (CONDITIONS["contraception"],))  # fmt: skip
        chart.blood_pressure(visit, int(rng.gauss(112, 8)), int(rng.gauss(72, 6)))
        condition = condition or chart.condition(visit, "contraception")
        chart.medication(
            visit, "combined_pill", condition, active=day + timedelta(days=365) > chart.today
        )
        visit.fees.append("medication")
        day += timedelta(days=365 + rng.randint(-20, 20))


def _pregnancy(chart: Chart) -> None:
    """Antenatal care: booking visit at 8 weeks, then every four weeks to 36 weeks."""
    rng, person = chart.rng, chart.person
    conception = day_between(rng, person.first_day, chart.today - timedelta(days=50))
    if not 18 <= person.age_on(conception) <= 45:
        return
    due_date = conception + timedelta(days=266)
    delivered = due_date - timedelta(days=rng.randint(0, 14))
    condition: str | None = None
    for week in (8, 12, 16, 20, 24, 28, 32, 36):
        day = conception + timedelta(weeks=week - 2, days=rng.randint(0, 4))
        if day >= chart.today:
            chart.due.append((day, "womens_health"))
            return
        kind = "prenatal_initial" if condition is None else "prenatal"
        visit = chart.visit("womens_health", day, kind, (CONDITIONS["pregnancy"],))
        if condition is None:
            resolved = delivered if delivered < chart.today else None
            condition = chart.condition(visit, "pregnancy", onset=conception, resolved=resolved)
            chart.observation(
                visit, "hcg_urine", "laboratory", {"valueCodeableConcept": POSITIVE.concept()}
            )
            chart.observation(visit, "due_date", "exam", {"valueDateTime": due_date.isoformat()})
            chart.medication(visit, "folic_acid", condition, active=delivered >= chart.today)
            visit.fees.append("medication")
        chart.blood_pressure(visit, int(rng.gauss(112, 8)), int(rng.gauss(70, 6)))
        chart.measurement(
            visit, "weight", "vital-signs", round(rng.gauss(56, 6) + week * 0.35, 1), "kg"
        )


def mental_health(chart: Chart) -> None:
    """An episode of depression or anxiety, treated over a few months."""
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    if not 18 <= age <= 80 or rng.random() >= 0.06:
        return
    depressed = rng.random() < 0.55
    key = rng.choice(("depression", "major_depression")) if depressed else rng.choice(
        ("anxiety", "generalised_anxiety"))  # fmt: skip
    score_key, drug = ("phq9", "sertraline") if depressed else ("gad7", "escitalopram")
    day = day_between(
        rng, max(person.first_day, person.birth_date + timedelta(days=18 * 366)), chart.today
    )
    score = rng.randint(12, 22) if depressed else rng.randint(10, 18)
    condition: str | None = None
    for number in range(rng.randint(3, 7)):
        if day >= chart.today:
            chart.due.append((day, "mental_health"))
            return
        visit = chart.visit("mental_health", day, "problem" if condition is None else "follow_up",
                            (CONDITIONS[key],))  # fmt: skip
        if condition is None:
            condition = chart.condition(visit, key)
            if rng.random() < 0.6:
                chart.note(visit, DOCUMENT_TYPES["consult"], _mental_health_note(key, score))
        chart.questionnaire_score(visit, score_key, score)
        chart.medication(
            visit, drug, condition, active=number > 0 and day + timedelta(days=60) > chart.today
        )
        visit.fees.append("medication")
        if number > 0 and rng.random() < 0.4:
            chart.procedure(visit, "cbt", (condition,))
        score = max(2, score - rng.randint(1, 5))
        day += timedelta(days=rng.randint(28, 49))


def _mental_health_note(key: str, score: int) -> str:
    return (
        f"Presenting with low mood, poor sleep and reduced concentration for several weeks.\n"
        f"Impression: {CONDITIONS[key].display.lower()}; questionnaire score {score}.\n"
        "No thoughts of self-harm. Plan: SSRI, psychoeducation, cognitive behavioural therapy; "
        "review in 4-6 weeks."
    )


def physiotherapy(chart: Chart) -> None:
    """Back, neck or knee pain: a GP visit, then a course of physiotherapy."""
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    choices = [
        ("low_back_pain", 0.06 if 25 <= age <= 75 else 0),
        ("neck_pain", 0.03 if 25 <= age <= 70 else 0),
        ("knee_osteoarthritis", 0.06 if age >= 55 else 0),
    ]
    for key, share in choices:
        if rng.random() >= share:
            continue
        day = day_between(rng, person.first_day, chart.today)
        visit = chart.visit("general_practice", day, "problem", (CONDITIONS[key],))
        condition = chart.condition(visit, key, chronic=key == "knee_osteoarthritis")
        chart.medication(visit, "diclofenac_gel" if rng.random() < 0.5 else "ibuprofen", condition)
        visit.fees.append("medication")
        pain = rng.randint(5, 8)
        for session in range(rng.randint(2, 5)):
            day += timedelta(days=rng.randint(5, 10))
            if day >= chart.today:
                chart.due.append((day, "physiotherapy"))
                break
            visit = chart.visit(
                "physiotherapy", day, "follow_up" if session else "problem", (CONDITIONS[key],)
            )
            chart.procedure(visit, "physiotherapy", (condition,))
            if rng.random() < 0.4:
                chart.procedure(visit, "exercise_therapy", (condition,))
            chart.observation(visit, "pain", "survey", {"valueInteger": pain})
            if session == 0 and key == "low_back_pain" and rng.random() < 0.15:
                imaging_study(chart, visit, "lumbar_xray", condition)
            pain = max(1, pain - rng.randint(0, 2))


def dental(chart: Chart) -> None:
    """Regular check-ups with scaling (adults) or fluoride (children), and fillings."""
    rng, person = chart.rng, chart.person
    if person.age_on(chart.today) < 3 or rng.random() >= 0.15:
        return
    day = day_between(rng, person.first_day, person.first_day + timedelta(days=540))
    while day < chart.today:
        if person.age_on(day) >= 3:
            visit = chart.visit("dental", day, "dental")
            chart.procedure(visit, "dental_exam")
            adult = person.age_on(day) >= 16
            chart.procedure(visit, "scaling" if adult else "fluoride")
            if rng.random() < 0.25:
                caries = chart.condition(visit, "dental_caries", resolved=visit.start.date())
                chart.procedure(visit, "restoration", (caries,))
            if adult and rng.random() < 0.12:
                gums = chart.condition(visit, "gingivitis")
                chart.medication(visit, "chlorhexidine_mouthwash", gums)
            if rng.random() < 0.08:
                imaging_study(chart, visit, "bitewing")
        day += timedelta(days=rng.randint(365, 600))
    chart.due.append((day, "dental"))


#: (condition, age range, share, medicines, chronic).
_SKIN = (
    ("atopic_dermatitis", (1, 17), 0.08, ("hydrocortisone_cream", "tacrolimus_ointment"), True),
    ("atopic_dermatitis", (18, 90), 0.025, ("betamethasone_cream",), True),
    ("acne", (13, 30), 0.06, ("adapalene_gel",), False),
    ("psoriasis", (20, 90), 0.015, ("calcipotriol",), True),
)  # fmt: skip


def dermatology(chart: Chart) -> None:
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    for key, (low, high), share, medicines, chronic in _SKIN:
        if not low <= age <= high or rng.random() >= share:
            continue
        day = day_between(rng, person.first_day, chart.today)
        condition: str | None = None
        for _ in range(rng.randint(1, 4)):
            if day >= chart.today:
                break
            visit = chart.visit(
                "dermatology", day, "follow_up" if condition else "problem", (CONDITIONS[key],)
            )
            condition = condition or chart.condition(visit, key, chronic=chronic)
            chart.medication(visit, rng.choice(medicines), condition)
            visit.fees.append("medication")
            day += timedelta(days=rng.randint(60, 150))


def eye_care(chart: Chart) -> None:
    """Myopia control in children, cataract and glaucoma in older adults."""
    rng, person = chart.rng, chart.person
    age = person.age_on(chart.today)
    if 6 <= age <= 17 and rng.random() < 0.2:
        _eye_condition(chart, "myopia", "atropine_drops", yearly=True)
    elif 18 <= age <= 40 and rng.random() < 0.04:
        _eye_condition(chart, "myopia", None, yearly=True)
    if age >= 60 and rng.random() < 0.12:
        _eye_condition(chart, "cataract", "artificial_tears", yearly=False)
    if age >= 50 and rng.random() < 0.025:
        _eye_condition(chart, "glaucoma", "latanoprost", yearly=False, scan=0.3)


def _eye_condition(
    chart: Chart, key: str, medicine: str | None, yearly: bool, scan: float = 0.0
) -> None:
    rng, person = chart.rng, chart.person
    day = day_between(rng, person.first_day, chart.today)
    condition: str | None = None
    for _ in range(poisson(rng, 0.7 * years_in_window(chart)) + 1):
        if day >= chart.today:
            chart.due.append((day, "ophthalmology"))
            return
        visit = chart.visit(
            "ophthalmology", day, "follow_up" if condition else "problem", (CONDITIONS[key],)
        )
        condition = condition or chart.condition(visit, key, chronic=True)
        chart.procedure(visit, "visual_acuity", (condition,))
        if medicine is not None:
            chart.medication(
                visit, medicine, condition, active=day + timedelta(days=365) > chart.today
            )
            visit.fees.append("medication")
        if rng.random() < scan:
            imaging_study(chart, visit, "oct", condition)
        day += timedelta(days=rng.randint(300, 420) if yearly else rng.randint(120, 240))
