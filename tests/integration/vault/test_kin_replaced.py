"""A Patient's update or deletion keeps the kinship tokens it took away, with the time
of the write (``patient_kin_replaced``): those the new version no longer carries, those of
a version written and replaced within one transaction too, and every token of a deleted
record; ``patient_kin`` keeps only the current version's. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from carevault.bootstrap import Services
from carevault.fhir.kinship import patient_terms
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault.tables import patient_kin, patient_kin_replaced, resource_head
from carevault.vault.writer import Delete, Put, kin_token

pytestmark = pytest.mark.postgres

SYSTEM = Caller(principal="system:test")
PATIENT = RESOURCE_TYPES["Patient"]


def _patient(patient_id: str, family: str, street: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "name": [{"family": family, "given": ["Tai Man"]}],
        "address": [{"use": "home", "line": ["Flat A, 3/F", street]}],
    }


def _tokens(services: Services, resource: dict[str, Any], *kinds: str) -> set[tuple[str, bytes]]:
    """The kin tokens of ``resource`` of ``kinds``, as the writer makes them."""
    return {
        (kind, kin_token(services.vault, kind, term))
        for kind, term in patient_terms(resource)
        if kind in kinds
    }


def test_updates_and_deletions_keep_the_tokens_they_took_away(services: Services) -> None:
    gate = services.gate
    gate.write(
        SYSTEM,
        [
            Put(PATIENT, "p1", _patient("p1", "Lee", "12 Hill Road")),
            Put(PATIENT, "p2", _patient("p2", "Ho", "9 Kings Road")),
        ],
    )
    # The same name kept: only the address's tokens are replaced.
    gate.write(SYSTEM, [Put(PATIENT, "p1", _patient("p1", "Lee", "1 Java Road"))])
    # Twice in one transaction: the version in between held its surname too.
    gate.write(
        SYSTEM,
        [
            Put(PATIENT, "p1", _patient("p1", "Wong", "1 Java Road")),
            Put(PATIENT, "p1", _patient("p1", "Chan", "1 Java Road")),
        ],
    )
    gate.write(SYSTEM, [Delete(PATIENT, "p2")])

    with services.engine.connect() as connection:
        pseudonyms = {
            str(row.resource_id): str(row.patient_pseudonym)
            for row in connection.execute(select(resource_head))
        }
        current = {
            (str(row.patient_pseudonym), str(row.kind), bytes(row.token))
            for row in connection.execute(select(patient_kin))
        }
        replaced = [
            (str(row.patient_pseudonym), str(row.kind), bytes(row.token), int(row.replaced_us))
            for row in connection.execute(select(patient_kin_replaced))
        ]
    p1, p2 = pseudonyms["p1"], pseudonyms["p2"]
    everything = ("surname", "household", "building", "hkid")
    final = _tokens(services, _patient("p1", "Chan", "1 Java Road"), *everything)
    assert current == {(p1, kind, token) for kind, token in final}
    kept = {(pseudonym, kind, token) for pseudonym, kind, token, _ in replaced}
    assert len(kept) == len(replaced)
    taken_from_p1 = {
        *_tokens(services, _patient("p1", "Lee", "12 Hill Road"), *everything),
        *_tokens(services, _patient("p1", "Wong", "1 Java Road"), "surname"),
    }
    taken_from_p2 = _tokens(services, _patient("p2", "Ho", "9 Kings Road"), *everything)
    assert len(taken_from_p1) == 4 and len(taken_from_p2) == 3
    assert kept == {
        *((p1, kind, token) for kind, token in taken_from_p1),
        *((p2, kind, token) for kind, token in taken_from_p2),
    }
    # Keyed tokens only: no name or address in the clear.
    assert all(b"lee" not in token.lower() for _, _, token, _ in replaced)
    assert all(at > 0 for *_, at in replaced)
