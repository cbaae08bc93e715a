"""The kinship tokens a write replaced (``patient_kin_replaced``), kept for as long as the
snooping detectors look back, so that moving a relative's record to another address (or
renaming a namesake) before opening it no longer hides the look.

Revision ID: records_0026
Revises: records_0025
Create Date: 2026-12-05

The table starts empty: what earlier writes replaced was not kept, and nothing can be
recovered of it (``patient_kin`` held only each record's current tokens). From this
revision on, every update or deletion of a Patient that takes a token away keeps it
here with the time; the detection engine forgets rows older than its window.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table

revision = "records_0026"
down_revision = "records_0025"
branch_labels = None
depends_on = None

TABLE = "patient_kin_replaced"


def _table(metadata: MetaData) -> Table:
    # Spelled out as of this revision (the module's table may change later, with a migration).
    return Table(
        TABLE,
        metadata,
        Column(
            "replaced_id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("patient_pseudonym", String(40), nullable=False),
        Column("kind", String(16), nullable=False),
        Column("token", LargeBinary, nullable=False),
        Column("replaced_us", BigInteger, nullable=False),
        Index("ix_patient_kin_replaced_patient", "patient_pseudonym", "replaced_us"),
        Index("ix_patient_kin_replaced_at", "replaced_us"),
    )


def upgrade() -> None:
    _table(MetaData()).create(op.get_bind())


def downgrade() -> None:
    _table(MetaData()).drop(op.get_bind())
