"""The order a transaction's writes are made in: referred-to records first, else by rank."""

from __future__ import annotations

from carevault.rest.write_order import dependency_order


def test_without_references_the_writes_keep_their_rank_order() -> None:
    assert dependency_order([(1, 2), (0, 0), (1, 1)], [set(), set(), set()]) == [1, 2, 0]


def test_a_write_comes_after_the_writes_it_refers_to() -> None:
    # An Observation (0) naming an Encounter (1) naming the Patient (2), listed first.
    ranks = [(1, 0), (1, 1), (1, 2)]
    assert dependency_order(ranks, [{1, 2}, {2}, set()]) == [2, 1, 0]


def test_a_reference_to_itself_or_a_circle_does_not_stop_the_order() -> None:
    assert dependency_order([(1, 0), (1, 1)], [{0}, set()]) == [0, 1]
    # 0 and 1 refer to each other; 2 refers to 0: the circle in rank order, then 2.
    assert dependency_order([(1, 0), (1, 1), (1, 2)], [{1}, {0}, {0}]) == [0, 1, 2]
