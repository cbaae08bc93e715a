"""The Synthea R4 bundles the tests use as real-world input, vendored under
``tests/fixtures/synthea-r4`` (Apache-2.0, their LICENSE and README beside them), so a
clone of the repository alone runs the tests."""

from __future__ import annotations

from pathlib import Path

SYNTHEA = Path(__file__).resolve().parents[1] / "fixtures" / "synthea-r4"
#: The vendored bundles, sorted by file name (three patients).
BUNDLES = sorted(SYNTHEA.glob("*.json"))
