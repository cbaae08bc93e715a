"""To whom a care team or a referral ever opened a patient's record (``care_vouched``),
kept when the record that opened it ends, so that ``$register`` still refuses a
clinician to whom the record was opened from elsewhere (adversary round 50).

Revision ID: records_0027
Revises: records_0026
Create Date: 2026-12-05

The table starts with what the care teams and referrals standing now opened (their
relationship rows, running or run out): what records that ended before this revision
opened was not kept, and cannot be recovered from the relationship table.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    insert,
    select,
)

revision = "records_0027"
down_revision = "records_0026"
branch_labels = None
depends_on = None

TABLE = "care_vouched"

#: The resource types whose relationships are vouched for (``domain.care.VOUCHED``).
_VOUCHING = ("CareTeam", "ServiceRequest")


def _table(metadata: MetaData) -> Table:
    # Spelled out as of this revision (the module's table may change later, with a migration).
    return Table(
        TABLE,
        metadata,
        Column(
            "vouched_id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("patient_pseudonym", String(40), nullable=False),
        Column("clinic_id", String(64), nullable=True),
        Column("practitioner_token", LargeBinary, nullable=True),
        Column("vouched_us", BigInteger, nullable=False),
        Index("ix_care_vouched_patient", "patient_pseudonym"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    metadata = MetaData()
    table = _table(metadata)
    table.create(bind)
    care = Table("care_relationship", metadata, autoload_with=bind)
    head = Table("resource_head", metadata, autoload_with=bind)
    standing = select(
        care.c.patient_pseudonym,
        care.c.clinic_id,
        care.c.practitioner_token,
        care.c.valid_from_us,
    ).join(
        head,
        and_(head.c.row_id == care.c.source_row_id, head.c.resource_type.in_(_VOUCHING)),
    )
    bind.execute(
        insert(table).from_select(
            ["patient_pseudonym", "clinic_id", "practitioner_token", "vouched_us"], standing
        )
    )


def downgrade() -> None:
    _table(MetaData()).drop(op.get_bind())
