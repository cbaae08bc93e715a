"""Which Patient heads an export covers: the client's reach, the Group's clinic, and the
``patient`` list that narrows it. One definition, used by the kick-off (to refuse a
``patient`` outside it) and by the worker (to choose each batch), so that what a job
was accepted for and what it reads are the same rule."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, Engine, and_, or_, select

from carevault.access.control import AccessControl
from carevault.db import read_transaction
from carevault.domain.policy import Actor
from carevault.export.model import Level
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.vault.tables import resource_head

_PATIENT = RESOURCE_TYPES["Patient"]


def covered_patients(
    access: AccessControl,
    actor: Actor,
    level: Level,
    group_id: str | None,
    since_us: int | None,
    patients: Collection[str],
    now_us: int,
) -> list[ColumnElement[bool]]:
    """The Patient heads an export covers: those in the client's reach (and the
    Group's), live; with ``_since``, also those deleted after it, judged by the same
    reach on the deleted head's patient and clinic: their records deleted since are
    the export's to list too (a Patient is deleted only after every record of theirs
    is), and nobody else's are. With ``patients`` (the ``patient`` parameter), only
    those of them: the list narrows the reach, never widens it.

    A Patient deleted after the transactionTime (while the job runs, before its
    batch) is covered as well: its records deleted at or before the transactionTime
    are this export's to list (Bulk Data v2, export.html, ``deleted``: "resources
    that would have been returned, but have been deleted subsequent to" ``_since``),
    and the next export, ``_since`` this one's transactionTime, lists only what was
    deleted after it. Bounding the patients by the transactionTime lost them from
    both (integrator and adversary round 55). The deletions listed are still bounded by
    it (``locate_*_deletions``)."""
    covered: ColumnElement[bool] = resource_head.c.deleted.is_(False)
    if since_us is not None:
        covered = or_(
            covered,
            and_(
                resource_head.c.deleted.is_(True),
                resource_head.c.last_updated_us > since_us,
            ),
        )
    conditions: list[ColumnElement[bool]] = [
        resource_head.c.resource_type == "Patient",
        covered,
    ]
    restriction = access.restriction(actor, _PATIENT, now_us)
    if restriction is not None:
        conditions.append(restriction)
    if level is Level.GROUP and group_id is not None:
        registered = access.registrations.patients_at([group_id])
        conditions.append(
            (resource_head.c.clinic_id == group_id)
            | resource_head.c.patient_pseudonym.in_(registered)
        )
    if patients:
        conditions.append(resource_head.c.resource_id.in_(sorted(patients)))
    return conditions


def outside(
    engine: Engine, conditions: Sequence[ColumnElement[bool]], patients: Sequence[str]
) -> list[str]:
    """The ids of ``patients`` (in their order) that no head of ``conditions`` is: an
    unknown id, another clinic's patient, one not in the Group, one deleted, alike."""
    with read_transaction(engine) as connection:
        found = set(
            connection.execute(select(resource_head.c.resource_id).where(*conditions)).scalars()
        )
    return [patient_id for patient_id in patients if patient_id not in found]


def patient_held(engine: Engine, patient_id: str) -> bool:
    """Whether a Patient record (live or deleted) has ``patient_id``."""
    with read_transaction(engine) as connection:
        found = connection.execute(
            select(resource_head.c.row_id)
            .where(
                resource_head.c.resource_type == "Patient",
                resource_head.c.resource_id == patient_id,
            )
            .limit(1)
        ).first()
    return found is not None
