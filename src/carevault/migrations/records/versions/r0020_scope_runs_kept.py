"""Scope runs are kept whole: each run of an incident is numbered and keeps who computed
it, the ledger sizes it started from, its document and the document's SHA-256 (also in
the run's ledger entry), so the console shows the latest run instead of computing one
on every visit.

Revision ID: records_0020
Revises: records_0019
Create Date: 2026-12-02

Runs kept before this revision had only their lines: they are numbered in the order they
were recorded and keep no document (a new run is computed when one is asked for).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0020"
down_revision = "records_0019"
branch_labels = None
depends_on = None

_TABLE = "incident_scope_run"
_UNIQUE = "ux_incident_scope_run_number"
ADDED = (
    ("number", sa.Integer()),
    ("actor", sa.String(200)),
    ("audit_size", sa.BigInteger()),
    ("unwrap_size", sa.BigInteger()),
    ("document", sa.Text()),
    ("sha256", sa.String(64)),
    ("ledger_seq", sa.BigInteger()),
)
_NUMBERED = sa.text(
    "UPDATE incident_scope_run SET number = (SELECT count(*) FROM incident_scope_run AS earlier"
    " WHERE earlier.incident_id = incident_scope_run.incident_id"
    " AND earlier.run_id <= incident_scope_run.run_id)"
)


def upgrade() -> None:
    # records_0008 creates the incident tables from their current definitions, so a new
    # database has these already: add only what is missing.
    inspector = sa.inspect(op.get_bind())
    present = {column["name"] for column in inspector.get_columns(_TABLE)}
    missing = [(name, kind) for name, kind in ADDED if name not in present]
    if missing:
        with op.batch_alter_table(_TABLE) as batch:
            for name, kind in missing:
                batch.add_column(sa.Column(name, kind, nullable=True))
        op.execute(_NUMBERED)
        with op.batch_alter_table(_TABLE) as batch:
            batch.alter_column("number", existing_type=sa.Integer(), nullable=False)
    if _UNIQUE not in {index["name"] for index in inspector.get_indexes(_TABLE)}:
        op.create_index(_UNIQUE, _TABLE, ["incident_id", "number"], unique=True)


def downgrade() -> None:
    op.drop_index(_UNIQUE, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        for name, _ in reversed(ADDED):
            batch.drop_column(name)
