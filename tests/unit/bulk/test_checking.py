"""What a checking process sends back (bulk/checking.py)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carevault.bulk.checking import _sendable, received, verdict
from carevault.bulk.shape import Shapes
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.domain.categories import DataCategory
from carevault.fhir.content import DEFAULT_LIMITS
from carevault.fhir.derived import Derived, derive
from carevault.fhir.registry import RESOURCE_TYPES
from tests.support.synthea import BUNDLES

ZONE = ZoneInfo("Asia/Hong_Kong")


def test_outcomes_cross_as_plain_tuples_and_read_back_as_worked_out(tmp_path: Path) -> None:
    files = bundles_to_ndjson(BUNDLES, tmp_path)
    resources = [item.resource for path in files for item in read_items(path, "x")]
    assert len(resources) > 200
    seen: set[DataCategory] = set()
    for resource in resources:
        assert resource is not None
        worked_out = derive(RESOURCE_TYPES[resource["resourceType"]], resource, ZONE)
        sent = pickle.dumps(_sendable(worked_out), protocol=pickle.HIGHEST_PROTOCOL)
        # Nothing of CareVault's is named in what crosses: no class to import and call.
        assert b"carevault" not in sent
        back = received(pickle.loads(sent))  # noqa: S301 - our own bytes, just made
        assert isinstance(back, Derived)
        assert back == worked_out
        assert all(isinstance(category, DataCategory) for category in back.categories)
        seen |= back.categories
    assert {DataCategory.CLINICAL, DataCategory.IDENTITY} <= seen


def test_a_refusal_crosses_as_its_reason() -> None:
    assert _sendable("birthDate: not a date") == "birthDate: not a date"
    assert received("birthDate: not a date") == "birthDate: not a date"


@pytest.mark.parametrize(
    ("resource", "named"),
    [
        (
            {"resourceType": "Schedule", "id": "s1", "actor": [{"reference": "Patient/p1"}]},
            "Schedule.actor[0]",
        ),
        (
            {"resourceType": "Practitioner", "id": "d1", "identifier": [
                {"system": "http://carevault.hk/sid/hkid", "value": "A123456(3)"}]},
            "Practitioner.identifier[0]",
        ),
    ],
)  # fmt: skip
def test_an_import_refuses_what_rest_refuses_though_its_shape_is_sound(
    resource: dict[str, Any], named: str
) -> None:
    """The compiled check answers for shape only: a record the content rules refuse (a
    patient in a directory record, an HKID outside Patient) is refused by an import too."""
    assert Shapes(DEFAULT_LIMITS).certainly_valid(resource)
    refused = verdict(resource, None, DEFAULT_LIMITS)
    assert refused is not None and refused.startswith(named)
    assert "A123456" not in refused and "p1" not in refused


def test_a_practitioners_schedule_is_imported() -> None:
    resource = {"resourceType": "Schedule", "id": "s1", "actor": [{"reference": "Practitioner/d"}]}
    assert verdict(resource, None, DEFAULT_LIMITS) is None
