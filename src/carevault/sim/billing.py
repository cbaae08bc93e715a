"""Insurance: a patient's Coverage, and a Claim with its ExplanationOfBenefit per visit.

Hong Kong outpatient care is mostly paid at the counter; insured patients (or the clinic
on their behalf) then claim from their private insurer. Uninsured patients have no
Coverage and no claims.
"""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

from carevault.sim.chart import Chart, Visit
from carevault.sim.codes import FEE_SCHEDULE, FEES, V3_ACT
from carevault.sim.elements import at, instant, money

MEMBER_SYSTEM = "http://carevault.hk/sid/insurance-member"
_CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
_ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
_PLANS = (("GOLD", "Gold outpatient plan", 0.9), ("SILVER", "Silver outpatient plan", 0.75),
          ("BASIC", "Basic outpatient plan", 0.5))  # fmt: skip


class Policy:
    """The Coverage of an insured patient and what its plan reimburses."""

    def __init__(self, chart: Chart, insurer_id: str, start: date) -> None:
        rng = chart.rng
        code, name, self.rate = rng.choices(_PLANS, weights=(2, 3, 2))[0]
        self.insurer_id = insurer_id
        self.start = start
        member = f"{rng.choice('CJS')}{rng.randrange(10**8, 10**9)}"
        adult = chart.person.age_on(chart.today) >= 18
        self.coverage_id = chart.add("Coverage", {
            "identifier": [{"system": MEMBER_SYSTEM, "value": member}],
            "status": "active",
            "type": {"coding": [{"system": V3_ACT, "code": "HIP",
                                 "display": "health insurance plan policy"}]},
            "subscriberId": member,
            "beneficiary": chart.subject,
            "relationship": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                "code": "self" if adult else "child"}]},
            "period": {"start": start.isoformat()},
            "payor": [{"reference": f"Organization/{insurer_id}"}],
            "class": [{"type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                "code": "plan"}]}, "value": code, "name": name}],
        })  # fmt: skip

    def claim(self, chart: Chart, visit: Visit) -> None:
        """A Claim for the visit and, once adjudicated, its ExplanationOfBenefit."""
        items, total = [], 0
        for sequence, fee in enumerate(visit.fees, start=1):
            code, display, amount = FEES[fee]
            total += amount
            items.append({
                "sequence": sequence,
                "productOrService": {"coding": [{"system": FEE_SCHEDULE, "code": code,
                                                 "display": display}]},
                "servicedDate": visit.start.date().isoformat(),
                "unitPrice": money(amount),
                "net": money(amount),
                "encounter": [visit.reference],
            })  # fmt: skip
        claim: dict[str, Any] = {
            "status": "active",
            "type": _professional(),
            "use": "claim",
            "patient": chart.subject,
            "created": instant(visit.end),
            "insurer": {"reference": f"Organization/{self.insurer_id}"},
            "provider": {"reference": f"Organization/{visit.clinic.id}"},
            "priority": {"coding": [{"system": _PRIORITY, "code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True,
                           "coverage": {"reference": f"Coverage/{self.coverage_id}"}}],
        }  # fmt: skip
        if visit.diagnoses:
            claim["diagnosis"] = [
                {"sequence": n, "diagnosisReference": {"reference": f"Condition/{c}"}}
                for n, c in enumerate(visit.diagnoses[:4], start=1)
            ]
        claim["item"] = items
        claim["total"] = money(total)
        claim_id = chart.add("Claim", claim)
        adjudicated = visit.end + timedelta(days=chart.rng.randint(5, 20))
        if adjudicated >= at(chart.today, time(0, 0)):
            return  # still with the insurer
        self._explain(chart, visit, claim_id, claim["item"], total, adjudicated.date())

    def _explain(
        self, chart: Chart, visit: Visit, claim_id: str, items: list[dict[str, Any]],
        total: int, day: date,
    ) -> None:  # fmt: skip
        adjudicated = []
        for item in items:
            amount = item["net"]["value"]
            adjudicated.append({
                "sequence": item["sequence"],
                "productOrService": {"coding": [dict(item["productOrService"]["coding"][0])]},
                "adjudication": [_amount("submitted", "Submitted Amount", amount),
                                 _amount("benefit", "Benefit Amount", round(amount * self.rate))],
            })  # fmt: skip
        benefit = round(total * self.rate)
        chart.add("ExplanationOfBenefit", {
            "status": "active",
            "type": _professional(),
            "use": "claim",
            "patient": chart.subject,
            "created": day.isoformat(),
            "insurer": {"reference": f"Organization/{self.insurer_id}"},
            "provider": {"reference": f"Organization/{visit.clinic.id}"},
            "claim": {"reference": f"Claim/{claim_id}"},
            "outcome": "complete",
            "insurance": [{"focal": True,
                           "coverage": {"reference": f"Coverage/{self.coverage_id}"}}],
            "item": adjudicated,
            "total": [_amount("submitted", "Submitted Amount", total),
                      _amount("benefit", "Benefit Amount", benefit)],
            "payment": {"date": day.isoformat(), "amount": money(benefit)},
        })  # fmt: skip


def _professional() -> dict[str, Any]:
    return {"coding": [{"system": _CLAIM_TYPE, "code": "professional", "display": "Professional"}]}


def _amount(code: str, display: str, value: float) -> dict[str, Any]:
    return {
        "category": {"coding": [{"system": _ADJUDICATION, "code": code, "display": display}]},
        "amount": money(value),
    }


def bill_visits(chart: Chart, policy: Policy) -> None:
    """Claims for the visits since the policy started; a few go unclaimed."""
    for visit in chart.visits:
        if visit.start.date() >= policy.start and chart.rng.random() < 0.8:
            policy.claim(chart, visit)
