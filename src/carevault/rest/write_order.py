"""The order a transaction's writes are made in (FHIR R4 http.html#trules).

R4 lets a transaction's entries come in any order ("the order of the entries doesn't
matter") and sets the order of processing by method: DELETE, POST, PUT. The writer
needs more than that: a record is written after the records of the same Bundle it
refers to (an Observation after the Patient whose compartment it joins, which it finds
by that Patient's record), and a Patient is deleted only once its records are. So
among the writes, one comes after every other write it refers to, and otherwise in
the spec's order, then the Bundle's.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def dependency_order(ranks: Sequence[tuple[int, ...]], needs: Sequence[set[int]]) -> list[int]:
    """The positions ``0..n-1`` in the order to write them: each after the positions in
    its ``needs`` (references to other writes), ties broken by ``ranks`` (tuples: the
    method, then the place in the Bundle, say). Writes that refer to each other in a
    circle keep their rank order among themselves (the writer answers for a reference
    it cannot resolve, as it always did)."""
    waiting = [len(need - {position}) for position, need in enumerate(needs)]
    needed_by: list[list[int]] = [[] for _ in needs]
    for position, need in enumerate(needs):
        for other in need - {position}:
            needed_by[other].append(position)
    ready = [(ranks[position], position) for position, count in enumerate(waiting) if not count]
    heapq.heapify(ready)
    done: set[int] = set()
    order: list[int] = []
    while len(order) < len(needs):
        if not ready:
            # A circle: take the first of what is left by rank, as if it needed nothing.
            stuck = min((ranks[p], p) for p in range(len(needs)) if p not in done)
            heapq.heappush(ready, stuck)
            waiting[stuck[1]] = 0
        _, position = heapq.heappop(ready)
        if position in done:
            continue
        done.add(position)
        order.append(position)
        for later in needed_by[position]:
            waiting[later] -= 1
            if waiting[later] == 0 and later not in done:
                heapq.heappush(ready, (ranks[later], later))
    return order
