"""Where a claim's line holds a sensitive code: in what the line says was done (its
product or service, modifiers, revenue and programme codes, body site, place), in any of
its details and sub-details, in an insurer's added line, in a supporting information's
code, and in an extension; not in an adjudication, which says how the insurer paid."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.fhir.codes import claim_line_sensitive, has_sensitive_code

#: An HIV-1 viral load (LOINC 25836-8), what a clinic bills for an HIV patient's check.
VIRAL_LOAD = {"coding": [{"system": "http://loinc.org", "code": "25836-8"}]}
#: A check-up (SNOMED CT 185349003), as Synthea bills most visits.
CHECK_UP = {"coding": [{"system": "http://snomed.info/sct", "code": "185349003"}]}
MONEY = {"value": 120, "currency": "HKD"}


def _line(**more: Any) -> dict[str, Any]:
    return {"sequence": 1, "productOrService": CHECK_UP, "net": MONEY, **more}


@pytest.mark.parametrize(
    "line",
    [
        _line(productOrService=VIRAL_LOAD),
        _line(modifier=[CHECK_UP, VIRAL_LOAD]),
        _line(programCode=[VIRAL_LOAD]),
        _line(detail=[{"sequence": 1, "productOrService": VIRAL_LOAD}]),
        _line(
            detail=[
                {
                    "sequence": 1,
                    "productOrService": CHECK_UP,
                    "subDetail": [{"sequence": 1, "productOrService": VIRAL_LOAD}],
                }
            ]
        ),  # fmt: skip
        # An insurer's added line: no sequence of its own, the same nesting.
        {
            "itemSequence": [1],
            "productOrService": CHECK_UP,
            "detail": [
                {"productOrService": CHECK_UP, "subDetail": [{"productOrService": VIRAL_LOAD}]}
            ],
        },  # fmt: skip
        # Supporting information: the reason for the visit, coded.
        {
            "sequence": 1,
            "category": {"coding": [{"code": "patientreasonforvisit"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}]},
        },  # fmt: skip
        _line(extension=[{"url": "urn:x", "valueCodeableConcept": VIRAL_LOAD}]),
        _line(_servicedDate={"extension": [{"url": "urn:x", "valueCodeableConcept": VIRAL_LOAD}]}),
        _line(productOrService={"coding": [{"code": "25836-8"}]}),  # no system: every list
        # An extension nested in an amount, a coded value of supporting information
        # (found in review: only named elements of a line were walked).
        _line(net={**MONEY, "extension": [{"url": "urn:x", "valueCodeableConcept": VIRAL_LOAD}]}),
        {
            "sequence": 1,
            "category": {"coding": [{"code": "info"}]},
            "valueCodeableConcept": VIRAL_LOAD,
        },
        [VIRAL_LOAD],  # not a line (not valid FHIR): walked whole
    ],
)
def test_a_line_coding_what_was_done_as_sensitive_is_sensitive(line: Any) -> None:
    assert claim_line_sensitive(line)


def test_an_ordinary_line_and_its_adjudication_are_not_judged_sensitive() -> None:
    adjudication = [
        {"category": {"coding": [{"code": "submitted"}]}, "amount": MONEY},
        # How the insurer paid is not walked: its codes say nothing of what was done.
        {"category": {"coding": [{"code": "benefit"}]}, "reason": VIRAL_LOAD},
    ]
    line = _line(
        category={"coding": [{"code": "1", "display": "Medical care"}]},
        locationCodeableConcept={"coding": [{"code": "21"}]},
        servicedPeriod={"start": "2026-01-02", "end": "2026-01-02"},
        encounter=[{"reference": "Encounter/e1"}],
        adjudication=adjudication,
    )

    assert not claim_line_sensitive(line)
    assert has_sensitive_code(line)  # the whole walk would have found it
    assert not has_sensitive_code(line, "adjudication")
    assert not claim_line_sensitive(_line(detail=[_line()], quantity={"value": 1}))
    assert not claim_line_sensitive("25836-8")
