"""What a checking process sends back (bulk/checking.py)."""

from __future__ import annotations

import pickle
from pathlib import Path
from zoneinfo import ZoneInfo

from carevault.bulk.checking import _sendable, received
from carevault.bulk.sources import bundles_to_ndjson, read_items
from carevault.domain.categories import DataCategory
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
