"""R4's dom-2, dom-4 and dom-5: what a contained resource may not hold (400); and ref-1,
a local reference names a contained resource, judged on the record as it will be stored
(``contained.check_references``)."""

from __future__ import annotations

from typing import Any

import pytest

from carevault.bulk.shape import Shapes
from carevault.fhir.contained import check_references, dangling, may_refer_locally
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


def _expressions(resource: dict[str, Any], **given: Any) -> list[str]:
    issues = check_references(resource, "Observation", **given)
    assert all("ref-1" in issue.diagnostics for issue in issues)
    return [e for issue in issues for e in issue.expression]


def test_a_local_reference_to_a_contained_resource_holds() -> None:
    assert _expressions(_observation()) == []


def test_a_local_reference_that_names_nothing_contained_is_named_by_its_place() -> None:
    dangling = {**_observation(), "performer": [{"reference": "#pr1"}, {"reference": "#pr2"}]}
    assert _expressions(dangling) == ["Observation.performer[1].reference"]
    assert _expressions({**dangling, "contained": []}) == [
        "Observation.performer[0].reference",
        "Observation.performer[1].reference",
    ]


def test_only_a_contained_resource_may_refer_to_its_container_by_a_bare_hash() -> None:
    """``#`` alone is the resource that contains the one it is in (R4 dom-3's second
    way): meaningless at the top, where no container is."""
    inner = {"resourceType": "Practitioner", "id": "pr1", "extension": [_about("#")]}
    holds = {**_observation(), "contained": [inner]}
    assert _expressions(holds) == []
    assert _expressions({**holds, "extension": [_about("#")]}) == [
        "Observation.extension[0].valueReference.reference"
    ]
    sibling = {**inner, "extension": [_about("#pr9")]}
    assert _expressions({**holds, "contained": [sibling]}) == [
        "Observation.contained[0].extension[0].valueReference.reference"
    ]


def test_references_sent_are_judged_against_what_the_record_will_contain() -> None:
    """A view saved back refers to a contained resource the gate puts back (``held``);
    one that dangled in the version replaced, at the same place, is let through
    (``tolerated``); any other is named where it was sent."""
    view = {**_observation(), "contained": []}
    assert _expressions(view) == ["Observation.performer[0].reference"]
    assert _expressions(view, held={"pr1"}) == []
    legacy = dangling(view, "Observation", set())
    assert legacy == [("Observation.performer[0].reference", "#pr1")]
    assert _expressions(view, tolerated=legacy) == []
    moved = {**view, "performer": [{"reference": "#x"}, {"reference": "#pr1"}]}
    assert _expressions(moved, tolerated=legacy) == [
        "Observation.performer[0].reference",
        "Observation.performer[1].reference",
    ]


def test_only_records_that_contain_or_may_refer_locally_are_walked() -> None:
    assert may_refer_locally(_observation())
    assert may_refer_locally({"resourceType": "Observation", "note": [{"text": "#1"}]})
    assert not may_refer_locally({"resourceType": "Observation", "status": "final"})


def _about(reference: str) -> dict[str, Any]:
    return {"url": "http://example.org/about", "valueReference": {"reference": reference}}
