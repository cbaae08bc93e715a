"""Kinship tokens: a Patient's surname, home, building and HKID number, and what HR
records of each member of staff, as keyed blind tokens for the snooping detectors; and
in-session step-up (``auth_session.step_up_us``).

Revision ID: records_0013
Revises: records_0012
Create Date: 2026-12-01

``patient_kin`` starts empty: ``carevault reindex`` fills it for Patients written
before (it opens each record through the key service, as a reindex does); records
written from now on carry their tokens. ``detect_staff_kin`` is filled by
``carevault alerts identify``.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Index, LargeBinary, MetaData, String, Table

revision = "records_0013"
down_revision = "records_0012"
branch_labels = None
depends_on = None


def _tables(metadata: MetaData) -> list[Table]:
    # Spelled out as of this revision (the modules' tables may change later, with a migration).
    return [
        Table(
            "patient_kin",
            metadata,
            Column("row_id", BigInteger, primary_key=True, autoincrement=False),
            Column("kind", String(16), primary_key=True),
            Column("token", LargeBinary, primary_key=True),
            Column("patient_pseudonym", String(40), nullable=False),
            Index("ix_patient_kin_patient", "patient_pseudonym"),
            Index("ix_patient_kin_token", "token", "kind"),
        ),
        Table(
            "detect_staff_kin",
            metadata,
            Column("account", String(200), primary_key=True),
            Column("kind", String(16), primary_key=True),
            Column("token", LargeBinary, primary_key=True),
            Column("set_by", String(200), nullable=False),
            Column("set_us", BigInteger, nullable=False),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables(MetaData()):
        table.create(bind)
    op.add_column("auth_session", Column("step_up_us", BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_session") as batch:
        batch.drop_column("step_up_us")
    bind = op.get_bind()
    for table in reversed(_tables(MetaData())):
        table.drop(bind)
