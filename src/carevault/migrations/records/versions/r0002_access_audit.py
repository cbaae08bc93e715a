"""Staff accounts, client apps, sessions and care relationships; the audit ledger;
containment modes.

Revision ID: records_0002
Revises: records_0001
Create Date: 2026-11-29

The tables are created from their declarations as of this revision; a later change
to one of them gets its own migration with explicit operations (the tile table's
first shape is spelled out in ``ledger_tiles``, the client apps', staff accounts' and
containment's in ``access_shapes``: they have changed since).
"""

from __future__ import annotations

from alembic import op

from carevault.access import tables as access
from carevault.ledger.schema import audit_tables
from carevault.migrations.access_shapes import (
    first_auth_code_table,
    first_auth_session_table,
    first_break_glass_table,
    first_client_app_table,
    first_containment_table,
    first_staff_account_table,
)
from carevault.migrations.ledger_tiles import first_tile_table

revision = "records_0002"
down_revision = "records_0001"
branch_labels = None
depends_on = None

_TABLES = [
    first_staff_account_table(),
    first_client_app_table(),
    first_auth_session_table(),
    access.refresh_token,
    first_auth_code_table(),
    first_break_glass_table(),
    access.care_relationship,
    audit_tables.entry,
    first_tile_table("audit"),
    audit_tables.head,
    audit_tables.checkpoint,
    first_containment_table(),
]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_TABLES):
        table.drop(bind)
