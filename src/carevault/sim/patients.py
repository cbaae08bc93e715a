"""Patients of the synthetic clinic group, streamed one at a time as FHIR R4 resources.

``generate_patients(group, count, seed, today)`` yields ``PatientRecord``s in constant
memory: each patient draws from its own ``random.Random`` keyed by (seed, index), and
HKID and phone numbers come from keyed permutations rather than a set of those used.
The same arguments always give the same patients; the first N patients of a longer run
are the same as a run of N (appointments of the coming week aside, which share slots).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from carevault.sim import history, programmes
from carevault.sim.billing import Policy, bill_visits
from carevault.sim.booking import SlotBook, book_past_visits, book_upcoming
from carevault.sim.chart import Chart, Person
from carevault.sim.codes import BCP47, V2_0203, Concept
from carevault.sim.elements import format_hk_number, new_id
from carevault.sim.group import ClinicGroup
from carevault.sim.hkid import UniqueNumbers
from carevault.sim.names import ORIGIN_LANGUAGES, person_name, pick_origin
from carevault.sim.places import CLINIC_SITES, address
from carevault.sim.unique import Permutation

HKID_SYSTEM = "http://carevault.hk/sid/hkid"
MRN_SYSTEM = "http://carevault.hk/sid/mrn"
#: RFC 2606 reserved domains: a synthetic patient's email can never reach a real person.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
WINDOW = timedelta(days=5 * 365 + 1)

#: Age bands (first age, last age, weight) of the patient population.
AGE_BANDS = ((0, 4, 5), (5, 11, 6), (12, 17, 5), (18, 24, 6), (25, 34, 12), (35, 44, 14),
             (45, 54, 15), (55, 64, 15), (65, 74, 13), (75, 84, 7), (85, 95, 2))  # fmt: skip
_AGE_CUMULATIVE = list(accumulate(weight for _, _, weight in AGE_BANDS))
_LANGUAGE_NAMES = {"yue": "Cantonese", "zh": "Chinese", "en": "English", "tl": "Tagalog",
                   "id": "Indonesian", "ne": "Nepali", "hi": "Hindi", "ur": "Urdu"}  # fmt: skip
#: Mobile numbers in Hong Kong start with 5, 6 or 9.
_MOBILE_FIRST_DIGITS = "569"
#: Days ahead of today that spontaneous bookings fall on, nearer days likelier.
_BOOKING_DAY_WEIGHTS = (3.0, 2.0, 2.0, 1.5, 1.5, 1.0, 1.0)


@dataclass(frozen=True)
class PatientRecord:
    """One patient: the Patient resource, every other resource of theirs, and plain facts.

    ``resources`` come in dependency order. The plain facts (HKID, names, phone, email)
    let tests look for leaked plaintext in raw storage.
    """

    patient: dict[str, Any]
    resources: list[dict[str, Any]]
    home_clinic_id: str
    hkid: str
    mrn: str
    names: list[str]
    phone: str
    email: str | None
    birth_date: str


class Identities:
    """Distinct HKID numbers, phone numbers and email addresses by patient index."""

    def __init__(self, seed: int) -> None:
        self.hkids = UniqueNumbers(random.Random(f"carevault-hkid:{seed}"))
        self.phones = Permutation(random.Random(f"carevault-phone:{seed}"), 3 * 10**7)
        self.mail_tags = Permutation(random.Random(f"carevault-mail:{seed}"), 10**7)

    def phone(self, index: int) -> str:
        slot = self.phones(index)
        first, rest = divmod(slot, 10**7)
        return format_hk_number(f"{_MOBILE_FIRST_DIGITS[first]}{rest:07d}")

    def email(self, rng: random.Random, index: int, stem: str) -> str:
        # The permuted index keeps addresses unique without remembering them.
        return f"{stem}{self.mail_tags(index)}@{rng.choice(EMAIL_DOMAINS)}"


def _birth_date(rng: random.Random, origin: str, today: date) -> date:
    if origin in ("filipino", "indonesian"):
        age = rng.randint(22, 55)  # mostly foreign domestic helpers
    else:
        low, high, _ = rng.choices(AGE_BANDS, cum_weights=_AGE_CUMULATIVE)[0]
        age = rng.randint(low, high)
    return today - timedelta(days=int(age * 365.25) + rng.randrange(365))


def _person(rng: random.Random, group: ClinicGroup, today: date) -> Person:
    origin = pick_origin(rng)
    female = rng.random() < (0.95 if origin in ("filipino", "indonesian") else 0.53)
    birth_date = _birth_date(rng, origin, today)
    child = (today - birth_date).days < 18 * 365
    weights = [
        site.weight * (1.5 if child and "paediatrics" in site.specialities else 1.0)
        for site in CLINIC_SITES
    ]
    home = rng.choices(group.clinics, weights=weights)[0]
    window_start = max(birth_date, today - WINDOW)
    joined = window_start if rng.random() < 0.7 else history.day_between(rng, window_start, today)
    age = (today - birth_date).days / 365.25
    insured = rng.random() < (0.55 if age < 18 else 0.25 if age >= 65 else 0.45)
    return Person(new_id(rng), female, birth_date, origin, home, joined, insured)


def _language(rng: random.Random, origin: str) -> str:
    if origin == "chinese":
        return rng.choices(("yue", "zh", "en"), weights=(88, 8, 4))[0]
    return ORIGIN_LANGUAGES[origin][0]


def _write_history(chart: Chart) -> None:
    person = chart.person
    allergies = history.pick_allergies(chart.rng, person.age_on(chart.today))
    history.acute_illness(chart, allergies)
    history.chronic_care(chart)
    history.asthma(chart)
    history.vaccination(chart)
    programmes.child_health(chart)
    programmes.womens_health(chart)
    programmes.mental_health(chart)
    programmes.physiotherapy(chart)
    programmes.dental(chart)
    programmes.dermatology(chart)
    programmes.eye_care(chart)
    history.record_allergies(chart, allergies)


def _spontaneous_booking(chart: Chart) -> None:
    """Some patients have booked a visit in the coming days for something new."""
    if not chart.visits or chart.rng.random() >= 0.06:
        return
    offset = chart.rng.choices(range(len(_BOOKING_DAY_WEIGHTS)), _BOOKING_DAY_WEIGHTS)[0]
    specialities = [v.speciality for v in chart.visits]
    speciality = max(set(specialities), key=lambda s: (specialities.count(s), s))
    if speciality == "paediatrics" and chart.person.age_on(chart.today) >= 18:
        speciality = "general_practice"
    chart.due.append((chart.today + timedelta(days=offset), speciality))


def _patient_resource(
    chart: Chart, group: ClinicGroup, hkid: str, mrn: str, phone: str, email: str | None,
    name_forms: list[dict[str, Any]], language: str, home_address: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    person = chart.person
    telecom: list[dict[str, Any]] = [
        {"system": "phone", "value": phone, "use": "mobile", "rank": 1}
    ]
    if email is not None:
        telecom.append({"system": "email", "value": email, "use": "home", "rank": 2})
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": person.patient_id,
        "identifier": [
            {"use": "official",
             "type": {"coding": [{"system": V2_0203, "code": "NI",
                                  "display": "National unique individual identifier"}],
                      "text": "Hong Kong Identity Card"},
             "system": HKID_SYSTEM, "value": hkid},
            {"use": "usual",
             "type": {"coding": [{"system": V2_0203, "code": "MR",
                                  "display": "Medical record number"}]},
             "system": MRN_SYSTEM, "value": mrn,
             "assigner": {"reference": f"Organization/{group.group['id']}"}},
        ],
        "active": True,
        "name": name_forms,
        "telecom": telecom,
        "gender": "female" if person.female else "male",
        "birthDate": person.birth_date.isoformat(),
        "address": [home_address],
        "communication": [{
            "language": Concept(BCP47, language, _LANGUAGE_NAMES[language]).concept(),
            "preferred": True,
        }],
    }  # fmt: skip
    usual_gp = chart.usual_physician(person.home.id, "general_practice")
    if usual_gp is not None:
        patient["generalPractitioner"] = [{"reference": f"Practitioner/{usual_gp.practitioner_id}"}]
    patient["managingOrganization"] = {"reference": f"Organization/{person.home.id}"}
    return patient


def generate_patients(
    group: ClinicGroup, count: int, seed: int, today: date | None = None
) -> Iterator[PatientRecord]:
    """``count`` patients of ``group``, with histories up to ``today`` (default: the group's)."""
    today = today or group.today
    identities = Identities(seed)
    slots = SlotBook(group, random.Random(f"carevault-slots:{seed}"), today)
    sites = {site.key: site for site in CLINIC_SITES}
    insurers = [insurer["id"] for insurer in group.insurers]
    for index in range(count):
        rng = random.Random(f"carevault-patient:{seed}:{index}")
        person = _person(rng, group, today)
        origin = person.origin
        chart = Chart(rng, group, person, today)
        name = person_name(rng, person.female, person.birth_date.year, origin)
        district = rng.choice(sites[person.home.key].catchment)
        home_address = address(rng, district)
        policy = None
        if person.insured:
            start = history.day_between(
                rng, person.first_day - timedelta(days=700), person.first_day + timedelta(days=400)
            )
            start = min(max(start, person.birth_date), today)
            policy = Policy(chart, rng.choice(insurers), start)
        _write_history(chart)
        book_past_visits(chart)
        _spontaneous_booking(chart)
        book_upcoming(chart, slots, sorted(chart.due))
        if policy is not None:
            bill_visits(chart, policy)
        age = person.age_on(today)
        hkid = identities.hkids.number(index)
        phone = identities.phone(index)
        wants_email = rng.random() < (0.0 if age < 16 else 0.85 if age < 70 else 0.3)
        email = (
            identities.email(rng, index, name.username_stem().replace(".", ""))
            if wants_email
            else None
        )
        mrn = f"{group.code}-{index + 1:07d}"
        patient = _patient_resource(
            chart,
            group,
            hkid,
            mrn,
            phone,
            email,
            name.human_names(),
            _language(rng, origin),
            home_address,
        )
        yield PatientRecord(
            patient=patient,
            resources=chart.resources(),
            home_clinic_id=person.home.id,
            hkid=hkid,
            mrn=mrn,
            names=name.texts(),
            phone=phone,
            email=email,
            birth_date=person.birth_date.isoformat(),
        )
