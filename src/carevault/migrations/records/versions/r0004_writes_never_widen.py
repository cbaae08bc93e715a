"""Writes never widen access: each version keeps the patient and clinic it had when
written, and a patient's registrations at clinics other than their home clinic.

Revision ID: records_0004
Revises: records_0003
Create Date: 2026-12-01

Versions written before this revision get the patient their data key names (a
version is sealed under its own patient's key, so this is exact) and the clinic
their resource has now (the best that is known).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0004"
down_revision = "records_0003"
branch_labels = None
depends_on = None

_DIRECTORY_KEY_ID = "directory"


def upgrade() -> None:
    op.add_column("resource_version", sa.Column("patient_pseudonym", sa.String(40)))
    op.add_column("resource_version", sa.Column("clinic_id", sa.String(64)))
    version = sa.table(
        "resource_version",
        sa.column("resource_type", sa.String),
        sa.column("resource_id", sa.String),
        sa.column("key_id", sa.String),
        sa.column("patient_pseudonym", sa.String),
        sa.column("clinic_id", sa.String),
    )
    head = sa.table(
        "resource_head",
        sa.column("resource_type", sa.String),
        sa.column("resource_id", sa.String),
        sa.column("clinic_id", sa.String),
    )
    current_clinic = (
        sa.select(head.c.clinic_id)
        .where(
            head.c.resource_type == version.c.resource_type,
            head.c.resource_id == version.c.resource_id,
        )
        .scalar_subquery()
    )
    op.execute(
        version.update().values(
            patient_pseudonym=sa.case(
                (version.c.key_id == _DIRECTORY_KEY_ID, sa.null()), else_=version.c.key_id
            ),
            clinic_id=current_clinic,
        )
    )
    op.create_table(
        "patient_registration",
        sa.Column("patient_pseudonym", sa.String(40), primary_key=True),
        sa.Column("clinic_id", sa.String(64), primary_key=True),
        sa.Column("registered_us", sa.BigInteger, nullable=False),
        sa.Column("registered_by", sa.String(120), nullable=False),
        sa.Column("proof", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("patient_registration")
    with op.batch_alter_table("resource_version") as batch:
        batch.drop_column("clinic_id")
        batch.drop_column("patient_pseudonym")
