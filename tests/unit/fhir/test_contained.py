"""R4's dom-2, dom-4 and dom-5: what a contained resource may not hold (400)."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bulk.shape import Shapes
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.validate import InvalidResource, validate_resource


def _observation(**practitioner: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "performer": [{"reference": "#pr1"}],
        "contained": [{"resourceType": "Practitioner", "id": "pr1", **practitioner}],
    }


BROKEN = {
    "dom-2": (
        {"contained": [{"resourceType": "Organization", "id": "o1", "name": "x"}]},
        "Observation.contained[0].contained",
    ),
    "dom-4": ({"meta": {"versionId": "3"}}, "Observation.contained[0].meta"),
    "dom-5": (
        {
            "meta": {
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    }
                ]
            }
        },
        "Observation.contained[0].meta.security",
    ),
}


@pytest.mark.parametrize("invariant", sorted(BROKEN))
def test_a_contained_resource_breaking_an_r4_invariant_is_refused_naming_it(
    invariant: str,
) -> None:
    practitioner, where = BROKEN[invariant]
    with pytest.raises(InvalidResource) as refused:
        validate_resource(_observation(**practitioner), "Observation")
    assert refused.value.status == 400
    [issue] = refused.value.issues
    assert issue.code == "invariant" and issue.expression == (where,)
    assert invariant in issue.diagnostics


@pytest.mark.parametrize("invariant", sorted(BROKEN))
def test_the_compiled_import_check_is_not_sure_of_what_the_rules_refuse(invariant: str) -> None:
    practitioner, _ = BROKEN[invariant]
    shapes = Shapes(DEFAULT_LIMITS)
    assert shapes.certainly_valid(_observation(name=[{"family": "Chan"}]))
    assert not shapes.certainly_valid(_observation(**practitioner))


def test_a_contained_resource_with_a_profile_and_a_tag_is_accepted() -> None:
    meta = {"profile": ["http://example.org/p"], "tag": [{"code": "x"}]}
    assert validate_resource(_observation(meta=meta), "Observation")
