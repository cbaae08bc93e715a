"""Each care relationship and each registration sealed (``access.care.care_seal``,
``access.registrations.registration_seal``): an HMAC of the row under a key derived from
the index key, so that someone who may write to the database but holds no key cannot
open a patient's record to a clinic or a doctor by inserting a row (adversary round 70:
an inserted registration let Tuen Mun's desk and doctor read Tsuen Wan's patient, and a
clinic-wide care relationship beside it the patient's observations).

Revision ID: records_0038
Revises: records_0037
Create Date: 2026-12-06

Rows written before have no seal: the first server to start after this revision seals
them as they stand, once, and notes it beside the keyring (``keys.anchors``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0038"
down_revision = "records_0037"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("care_relationship", "patient_registration"):
        # records_0002 creates care_relationship from its current definition, so a new
        # database has the column already: add it only where it is missing.
        present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}
        if "seal" not in present:
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column("seal", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    for table in ("care_relationship", "patient_registration"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seal")
