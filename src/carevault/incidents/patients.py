"""What the scope needs to know of patients, from the record store's clear metadata only:
each pseudonym's Patient id, the clinics that hold its records, the kinds of records
stored (for the categories a data key or a stolen file would expose), and who a
compromised principal could reach. Nothing here decrypts anything.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)

from carevault.db import read_transaction
from carevault.domain.categories import DataCategory
from carevault.domain.roles import RIGHTS, Right, Role
from carevault.fhir.categories import own_categories
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.tables import resource_head, resource_version

#: Patients per query: one parameter holds them all (``_among``); this bounds its size.
_CHUNK = 20_000


@dataclass
class PatientFacts:
    patient_id: str | None = None
    clinics: set[str] = field(default_factory=set)
    resource_types: set[str] = field(default_factory=set)

    def stored_categories(self) -> set[str]:
        return set(_categories_of_kinds(frozenset(self.resource_types)))


@cache
def _categories_of(resource_type: str) -> frozenset[str]:
    """The category names a record of ``resource_type`` may hold in its own elements
    (none for an unknown type); what a contained resource brings is not told by clear
    metadata. Asked once per type and patient in a scope: thousands of times."""
    rt = RESOURCE_TYPES.get(resource_type)
    if rt is None:
        return frozenset()
    return frozenset(category.value for category in own_categories(rt))


@lru_cache(maxsize=4096)
def _categories_of_kinds(resource_types: frozenset[str]) -> frozenset[str]:
    """The categories of a set of record kinds: most patients hold one of a few sets."""
    found: set[str] = set()
    for name in resource_types:
        found.update(_categories_of(name))
    return frozenset(found)


def _among(column: ColumnElement[Any], dialect: str, values: list[str]) -> ColumnElement[bool]:
    """``column IN values`` with the values as one parameter (a JSON array read by
    ``json_each`` on SQLite, an array on PostgreSQL). SQLAlchemy renders a list as one
    placeholder per value on every execution, which for a clinic's thousands of patients
    cost more than the query itself."""
    if dialect == "postgresql":
        return column == any_(bindparam("values", values, type_=ARRAY(String)))
    if dialect == "sqlite":
        listed = func.json_each(bindparam("values", json.dumps(values)))
        return column.in_(select(literal_column("value")).select_from(listed))
    return column.in_(values)


def _joined(dialect: str, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """The distinct values of ``column`` in a group, joined by commas (NULLs left out):
    one row per patient instead of one per kind of record and clinic. Resource types and
    clinic ids hold no commas."""
    if dialect == "postgresql":
        return func.string_agg(column.distinct(), literal_column("','"))
    return func.group_concat(column.distinct())


def facts(engine: Engine, pseudonyms: Collection[str]) -> dict[str, PatientFacts]:
    """Patient id, clinics and stored resource types of each pseudonym."""
    found: dict[str, PatientFacts] = {pseudonym: PatientFacts() for pseudonym in pseudonyms}
    ordered = sorted(pseudonyms)
    head = resource_head.c
    # Grouped in the database, one row per patient: a patient holds dozens of records,
    # and fetching a row per record (or per kind and clinic) to keep a few distinct facts
    # was most of a clinic's scope.
    with read_transaction(engine) as connection:
        dialect = connection.dialect.name
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            wanted = _among(head.patient_pseudonym, dialect, chunk)
            grouped = (
                select(
                    head.patient_pseudonym,
                    _joined(dialect, head.resource_type),
                    _joined(dialect, head.clinic_id),
                )
                .where(wanted)
                .group_by(head.patient_pseudonym)
            )
            for pseudonym, kinds, clinics in _tuples(connection, grouped):
                entry = found[pseudonym]
                entry.resource_types.update(kinds.split(",") if kinds else ())
                entry.clinics.update(clinic for clinic in (clinics or "").split(",") if clinic)
            first = (
                select(head.patient_pseudonym, func.min(head.row_id).label("row_id"))
                .where(wanted, head.resource_type == "Patient")
                .group_by(head.patient_pseudonym)
                .subquery()
            )
            patients = select(head.patient_pseudonym, head.resource_id).join(
                first, head.row_id == first.c.row_id
            )
            for pseudonym, ident in _tuples(connection, patients):
                found[pseudonym].patient_id = ident
    return found


def _tuples(connection: Connection, statement: Select[Any]) -> list[Any]:
    """The rows as the driver's tuples: a clinic's scope groups tens of thousands of
    rows, and building a row object for each cost more than the query."""
    result = connection.execute(statement)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def stored_before(engine: Engine, before_us: int | None) -> set[str]:
    """Every patient with a record written before ``before_us``: what a copy of the
    database (or a backup) taken in the window held."""
    version = resource_version.c
    query = select(version.patient_pseudonym).where(version.patient_pseudonym.is_not(None))
    if before_us is not None:
        query = query.where(version.last_updated_us < before_us)
    with read_transaction(engine) as connection:
        rows = connection.execute(query.group_by(version.patient_pseudonym)).all()
    return {str(row[0]) for row in rows}


def at_clinics(engine: Engine, clinics: Iterable[str]) -> set[str]:
    """Patients whose Patient record belongs to one of ``clinics``."""
    wanted = sorted(set(clinics))
    if not wanted:
        return set()
    head = resource_head.c
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(head.patient_pseudonym).where(
                head.resource_type == "Patient",
                head.clinic_id.in_(wanted),
                head.patient_pseudonym.is_not(None),
            )
        ).all()
    return {str(row[0]) for row in rows}


def readable_categories(role: Role) -> set[str]:
    """The categories ``role`` may read: the upper bound of what it could be shown."""
    return {
        category.value
        for category, rights in RIGHTS.get(role, {}).items()
        if Right.READ in rights and category is not DataCategory.CREDENTIALS
    }


def patient_count(engine: Engine) -> int:
    head = resource_head.c
    with read_transaction(engine) as connection:
        found = connection.execute(
            select(func.count()).where(head.resource_type == "Patient")
        ).scalar()
    return int(found or 0)
