"""Whose release budget a release counts in (``detect/budget.holder``)."""

from __future__ import annotations

from carevault.detect.budget import holder


def test_a_practitioners_accounts_share_one_holder() -> None:
    assert holder("staff:wong-a", "dr-wong") == holder("staff:wong-b", "dr-wong")
    assert holder("staff:wong-a", "dr-wong") != holder("staff:lee", "dr-lee")


def test_an_account_of_no_practitioner_is_its_own_holder() -> None:
    assert holder("staff:desk1", None) == "staff:desk1"
    assert holder("client:lab-feed", "") == "client:lab-feed"
    # No principal is ever taken for a practitioner's count: principals name their kind.
    assert holder("staff:x", None) != holder("staff:y", "x")
