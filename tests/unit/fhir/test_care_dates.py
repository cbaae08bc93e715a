"""Care dates of ``$everything``'s start/end: which records a care period keeps."""

from __future__ import annotations

from datetime import UTC, datetime

from carevault.fhir.care_dates import CarePeriod, has_care_date, within
from carevault.fhir.registry import RESOURCE_TYPES

FEBRUARY = CarePeriod(datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
OBSERVATION = RESOURCE_TYPES["Observation"]


def _observation(**dated: object) -> dict[str, object]:
    return {"resourceType": "Observation", "status": "final", **dated}


def test_a_record_dated_in_the_period_is_kept_and_one_outside_is_not() -> None:
    assert within(OBSERVATION, _observation(effectiveDateTime="2024-02-15"), FEBRUARY, UTC)
    assert not within(OBSERVATION, _observation(effectiveDateTime="2024-03-01"), FEBRUARY, UTC)
    assert not within(OBSERVATION, _observation(effectiveDateTime="2024-01-31"), FEBRUARY, UTC)


def test_a_period_that_overlaps_counts_and_open_ends_reach_forever() -> None:
    spanning = _observation(effectivePeriod={"start": "2024-01-20", "end": "2024-02-02"})
    assert within(OBSERVATION, spanning, FEBRUARY, UTC)
    ongoing = _observation(effectivePeriod={"start": "2023-12-01"})
    assert within(OBSERVATION, ongoing, FEBRUARY, UTC)
    from_march = CarePeriod(datetime(2024, 3, 1, tzinfo=UTC), None)
    assert not within(OBSERVATION, _observation(effectiveDateTime="2024-02-15"), from_march, UTC)


def test_what_has_no_care_date_is_kept() -> None:
    assert within(OBSERVATION, _observation(), FEBRUARY, UTC)
    assert within(OBSERVATION, _observation(effectiveDateTime="not a date"), FEBRUARY, UTC)
    assert not has_care_date(RESOURCE_TYPES["Patient"])
    assert within(RESOURCE_TYPES["Patient"], {"birthDate": "1990-01-01"}, FEBRUARY, UTC)
