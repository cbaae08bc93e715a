"""The scope document: checked whole, merged per patient across the chosen tiers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from carevault.domain.categories import DataCategory
from carevault.notify.scope import ScopeError, parse_scope


def document(**tiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "incident": {"id": "INC-1", "title": "t", "status": "open",
                     "declared_at": "2026-12-01T08:00:00Z", "since": None, "until": None,
                     "compromised": {"accounts": ["staff:x"]}},
        "tiers": tiers,
        "counts": {},
    }  # fmt: skip


def test_a_patient_in_two_tiers_is_notified_once_with_both_tiers_categories() -> None:
    scope = parse_scope(
        document(
            confirmed=[{"patient": "Patient/a", "categories": ["identity"], "evidence": [3]}],
            decrypted=[
                {"patient": "a", "categories": ["clinical"], "first": "2026-11-30T01:00:00Z"}
            ],
            potentially=[{"patient": "b", "categories": ["contact"]}],
        )
    )
    notified = list(scope.exposures())
    assert [(e.patient_id, e.tier) for e in notified] == [("a", "confirmed")]
    assert notified[0].categories == (DataCategory.CLINICAL, DataCategory.IDENTITY)
    assert scope.patient_count() == 2
    assert [e.patient_id for e in scope.exposures(("potentially",))] == ["b"]


@pytest.mark.parametrize(
    "broken",
    [
        [],
        {"incident": {"id": "bad id", "declared_at": "2026-12-01T00:00:00Z"}, "tiers": {}},
        {"incident": {"id": "I", "declared_at": "yesterday"}, "tiers": {}},
        # A time without its offset was taken as UTC, where every other door of CareVault
        # reads it in the group's zone: a hand-written Hong Kong declaration opened the
        # regulators' clocks 8 hours late (adversary round 44).
        {"incident": {"id": "I", "declared_at": "2026-12-01T08:00:00"}, "tiers": {}},
        {"incident": {"id": "I", "declared_at": "2026-12-01"}, "tiers": {}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z",
                      "since": "2026-11-30T18:00"}, "tiers": {}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"},
         "tiers": {"confirmed": [{"patient": "a", "first": "2026-11-30T01:00:00"}]}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"}, "tiers": {"leaked": []}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"},
         "tiers": {"confirmed": [{"patient": "a", "categories": ["secrets"]}]}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"},
         "tiers": {"confirmed": [{"patient": "<script>", "categories": []}]}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"},
         "tiers": {"confirmed": [{"patient": "a", "evidence": ["x"]}]}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"}, "tiers": {},
         "changed": {"a": []}},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"}, "tiers": {},
         "changed": [{"patient": "a", "evidence": [True]}]},
        {"incident": {"id": "I", "declared_at": "2026-12-01T00:00:00Z"}, "tiers": {},
         "changed": [{"patient": "../a", "evidence": [1]}]},
    ],
)  # fmt: skip
def test_a_malformed_document_is_refused_whole(broken: Any) -> None:
    with pytest.raises(ScopeError):
        parse_scope(broken)


def test_the_changed_patients_are_kept_apart_from_the_tiers() -> None:
    raw = document(confirmed=[{"patient": "a", "categories": ["identity"], "evidence": [3]}])
    raw["changed"] = [
        {"patient": "Patient/b", "categories": ["contact"], "evidence": [5, 8],
         "first": "2026-11-30T01:00:00Z"},
    ]  # fmt: skip
    scope = parse_scope(raw)

    assert list(scope.changed) == ["b"]
    assert scope.changed["b"].evidence == (5, 8)
    assert scope.changed["b"].categories == (DataCategory.CONTACT,)
    assert [e.patient_id for e in scope.exposures()] == ["a"]  # changed alone tells no one
    assert parse_scope(document()).changed == {}  # a document of before has none


def test_the_incidents_containment_actions_are_read_and_checked() -> None:
    given = document()
    given["incident"]["containment"] = [
        {"id": 3, "mode": "account-suspended", "target": "mallory", "reason": "phished",
         "started_at": "2026-12-01T09:00:00Z", "started_by": "staff:ada", "released_at": None},
    ]  # fmt: skip
    actions = parse_scope(given).incident.containment
    assert [(a.mode, a.target, a.reason, a.released_at) for a in actions] == [
        ("account-suspended", "mallory", "phished", None)
    ]
    assert actions[0].started_at == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert parse_scope(document()).incident.containment == ()
    given["incident"]["containment"] = [{"mode": "account-suspended"}]
    with pytest.raises(ScopeError, match="containment"):
        parse_scope(given)


def test_one_persons_records_are_one_notice_and_two_people_two() -> None:
    """The scope names each record's person (Patient records of one HKID): a notice goes
    to people, so one person's two records are one notice, named by the person, in the
    worst tier that holds either, with both records' categories, clinics and times."""
    scope = parse_scope(
        document(
            confirmed=[
                {"patient": "p7", "person": "p1", "categories": ["identity"],
                 "clinics": ["clinic-tw"], "first": "2026-11-30T03:00:00Z", "evidence": [9]},
                {"patient": "p2", "person": "p2", "categories": ["identity"]},
            ],
            decrypted=[
                {"patient": "p1", "person": "p1", "categories": ["clinical"],
                 "clinics": ["clinic-tm"], "first": "2026-11-30T01:00:00Z",
                 "last": "2026-11-30T05:00:00Z", "evidence": [4]},
                {"patient": "p3", "person": "p3", "categories": ["contact"]},
            ],
        )
    )  # fmt: skip
    notices = {e.patient_id: e for e in scope.notices()}
    assert set(notices) == {"p1", "p2", "p3"}
    both = notices["p1"]
    assert both.records == ("p1", "p7") and both.tier == "confirmed"
    assert both.categories == (DataCategory.CLINICAL, DataCategory.IDENTITY)
    assert both.clinics == ("clinic-tm", "clinic-tw") and both.evidence == (4, 9)
    assert both.first == datetime(2026, 11, 30, 1, tzinfo=UTC)
    assert both.last == datetime(2026, 11, 30, 5, tzinfo=UTC)
    assert notices["p2"].covers == ("p2",) and notices["p3"].tier == "decrypted"
    assert scope.notice_count() == 3 and scope.patient_count(("confirmed", "decrypted")) == 4
    # Only the chosen tiers: the person's record in another tier is not covered.
    (alone,) = [e for e in scope.notices(("confirmed",)) if e.who == "p1"]
    assert alone.patient_id == "p1" and alone.covers == ("p7",)
