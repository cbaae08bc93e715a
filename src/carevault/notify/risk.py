"""Risk assessment of an incident (pure): a severity band and what each regulator's
rules suggest, never a decision. The officer decides, and the decision and its
reason go in the ledger (``decisions``).

The score follows the ENISA method that DESIGN.md names: severity = data processing
context (DPC, the highest category score among the data exposed, plus one for a
minor, at most 4) × ease of identification (EI) + circumstances of the breach (CB).
Bands: low < 2, medium 2–3, high 3–4, very high ≥ 4.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from carevault.domain.categories import BASE_SCORE, DataCategory
from carevault.notify.scope import NOTIFIED_TIERS, Exposure, Scope

BANDS = ("low", "medium", "high", "very high")
_IDENTIFYING = frozenset({DataCategory.IDENTITY, DataCategory.GOVERNMENT_ID})


#: 45 CFR 164.406(a): media notice for a breach "involving more than 500 residents of a
#: State or jurisdiction": 500 exactly is not more than 500 (integrator round 68).
MEDIA_NOTICE_ABOVE = 500


def media_notice_states(regions: Counter[str]) -> list[str]:
    """States or jurisdictions where HIPAA asks for media notice (164.406(a))."""
    return sorted(state for state, count in regions.items() if count > MEDIA_NOTICE_ABOVE)


def band_of(score: float) -> str:
    if score < 2:
        return "low"
    if score < 3:
        return "medium"
    if score < 4:
        return "high"
    return "very high"


@dataclass(frozen=True)
class PatientRisk:
    patient_id: str
    tier: str
    dpc: float
    ei: float
    cb: float

    @property
    def score(self) -> float:
        return round(self.dpc * self.ei + self.cb, 2)


@dataclass(frozen=True)
class Assessment:
    incident_id: str
    people: int
    people_by_tier: dict[str, int]
    categories: dict[str, int]
    score: float
    band: str
    bands: dict[str, int]
    sensitive: bool
    minors: int
    keys_safe: bool
    encrypted_only: bool
    circumstances: list[str]
    recommendations: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "incident": self.incident_id,
            "method": "ENISA: severity = DPC x EI + CB; bands low <2, medium 2-3, high 3-4, "
            "very high >=4",
            "people": self.people,
            "people_by_tier": self.people_by_tier,
            "categories": self.categories,
            "score": self.score,
            "band": self.band,
            "people_by_band": self.bands,
            "sensitive_data": self.sensitive,
            "minors": self.minors,
            "keys_safe": self.keys_safe,
            "encrypted_only": self.encrypted_only,
            "circumstances": self.circumstances,
            "recommendations": self.recommendations,
            "decision": "not made: the privacy officer decides and records the reason",
        }


def _dpc(exposure: Exposure, minor: bool) -> float:
    score = max((BASE_SCORE[c] for c in exposure.categories), default=1)
    return float(min(4, score + (1 if minor else 0)))


def _ei(exposure: Exposure, keys_safe: bool) -> float:
    if exposure.tier == "at_rest_only" and keys_safe:
        return 0.25  # unintelligible without keys that stayed safe: negligible
    categories = set(exposure.categories)
    if categories & _IDENTIFYING:
        return 1.0
    if DataCategory.CONTACT in categories:
        return 0.75
    return 0.5  # records under a pseudonymous id, linkable with effort


def _cb(exposure: Exposure, outsiders: bool, malicious: bool) -> float:
    confidentiality = 0.5 if outsiders or exposure.tier != "confirmed" else 0.25
    return confidentiality + (0.5 if malicious else 0.0)


def assess(
    scope: Scope,
    *,
    minors: frozenset[str] = frozenset(),
    malicious: bool = True,
    regions: Counter[str] | None = None,
) -> Assessment:
    """The assessment of every tier of ``scope``. ``minors``: patient ids of minors (from
    the notice job's reading); ``regions``: people per state or region (HIPAA)."""
    incident = scope.incident
    compromised = incident.compromised
    keys_safe = not incident.keys_compromised
    outsiders = bool(
        compromised.get("addresses") or compromised.get("clients") or compromised.get("database")
        or compromised.get("host")
    )  # fmt: skip
    everyone = list(scope.exposures(("confirmed", "decrypted", "at_rest_only", "potentially")))
    risks = [
        PatientRisk(
            e.patient_id,
            e.tier,
            _dpc(e, e.patient_id in minors),
            _ei(e, keys_safe),
            _cb(e, outsiders, malicious),
        )
        for e in everyone
    ]
    score = max((r.score for r in risks), default=0.0)
    band = band_of(score) if risks else "low"
    # People, not records, as the scope counts them (``counts.people``): one person's two
    # Patient records (one HKID) are one data subject, in the worst tier that holds them.
    persons: dict[str, set[str]] = {}
    tier_of: dict[str, str] = {}
    for e in everyone:
        persons.setdefault(e.who, set()).update(str(c) for c in e.categories)
        tier_of.setdefault(e.who, e.tier)
    categories = Counter(c for held in persons.values() for c in held)
    by_tier = Counter(tier_of.values())
    sensitive = DataCategory.SENSITIVE_CLINICAL in {c for e in everyone for c in e.categories}
    encrypted_only = bool(everyone) and all(e.tier == "at_rest_only" for e in everyone)
    circumstances = [
        "malicious intent assumed (an incident)" if malicious else "no malicious intent found",
        "data reached unknown parties" if outsiders else "data reached known accounts only",
        "key service and host not compromised" if keys_safe else "keys may be compromised",
    ]
    assessment = Assessment(
        incident_id=incident.incident_id,
        people=len(persons),
        people_by_tier={tier: by_tier.get(tier, 0) for tier in scope.tiers},
        categories=dict(sorted(categories.items())),
        score=score,
        band=band,
        bands=dict(Counter(band_of(r.score) for r in risks)),
        sensitive=sensitive,
        minors=len({e.who for e in everyone if e.patient_id in minors}),
        keys_safe=keys_safe,
        encrypted_only=encrypted_only,
        circumstances=circumstances,
    )
    notified = sum(by_tier.get(t, 0) for t in NOTIFIED_TIERS)
    assessment.recommendations.update(_recommend(assessment, notified, regions or Counter()))
    return assessment


def _recommend(a: Assessment, notified: int, regions: Counter[str]) -> dict[str, list[str]]:
    serious = a.band != "low"
    pcpd = [
        "Notification to the PCPD is voluntary under the PDPO; its guidance expects it where "
        "there is a real risk of harm."
    ]
    pcpd.append(
        f"Severity {a.band} ({a.score}): notify the PCPD and the {notified} affected people "
        "as soon as practicable."
        if serious
        else f"Severity low ({a.score}): notification may not be needed; the officer decides "
        "and records the reason."
    )
    hipaa = [
        "An impermissible use or disclosure of PHI is presumed a breach unless a documented "
        "four-factor assessment shows a low probability of compromise (45 CFR 164.402).",
        f"Notify the {notified} individuals without unreasonable delay, at the latest 60 days "
        "after discovery (164.404).",
        "Notify HHS within 60 days of discovery (500 or more people)"
        if a.people >= 500
        else "Log the breach and report it to HHS within 60 days of the end of the calendar "
        "year (fewer than 500 people) (164.408).",
    ]
    media = media_notice_states(regions)
    if media:
        hipaa.append(
            "Notify prominent media outlets in " + ", ".join(media) + " (more than 500 "
            "residents) within 60 days (164.406)."
        )
    if a.encrypted_only and a.keys_safe:
        hipaa.append(
            "Every record stayed encrypted and the keys were not compromised: the safe harbour "
            "for secured PHI may apply. The officer must confirm it and record why."
        )
    gdpr = [
        "Art. 33: notify the supervisory authority within 72 hours of becoming aware, unless "
        "the breach is unlikely to result in a risk to people's rights and freedoms"
        + (" (the officer must record why, if not notifying)." if not serious else "."),
    ]
    if a.band in ("high", "very high"):
        gdpr.append("Art. 34: high risk: communicate the breach to the people without undue delay.")
    else:
        gdpr.append("Art. 34: communicate to the people if the risk is high; the officer decides.")
    if a.encrypted_only and a.keys_safe:
        gdpr.append(
            "Art. 34(3)(a): the data stayed unintelligible (encrypted, keys safe): the "
            "communication to people may not be required."
        )
    return {"pcpd": pcpd, "hipaa": hipaa, "gdpr": gdpr}
