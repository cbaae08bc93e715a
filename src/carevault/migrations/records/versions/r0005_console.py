"""The console: its sessions and each account's preferences; recorded ledger verifications;
the hourly activity counts of the dashboard's chart.

Revision ID: records_0005
Revises: records_0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from carevault.db import Sequence64

revision = "records_0005"
down_revision = "records_0004"
branch_labels = None
depends_on = None


def _tables(metadata: MetaData) -> list[Table]:
    # Spelled out as of this revision, so that later changes to the declarations in
    # console/tables.py and ledger/tables.py need migrations of their own.
    return [
        Table(
            "console_session",
            metadata,
            Column("secret_hash", String(64), primary_key=True),
            Column("session_id", String(48), nullable=False, index=True),
            Column("account_id", String(40), nullable=False),
            Column("display_name", String(200), nullable=False),
            Column("created_us", BigInteger, nullable=False),
            Column("last_seen_us", BigInteger, nullable=False),
        ),
        Table(
            "console_preference",
            metadata,
            Column("account_id", String(40), primary_key=True),
            Column("language", String(16), nullable=False),
            Column("updated_us", BigInteger, nullable=False),
        ),
        Table(
            "ledger_verify_run",
            metadata,
            Column("run_id", Sequence64, primary_key=True, autoincrement=True),
            Column("ledger", String(16), nullable=False),
            Column("started_us", BigInteger, nullable=False),
            Column("started_by", String(200), nullable=False),
            Column("finished_us", BigInteger, nullable=True),
            Column("ok", Integer, nullable=True),
            Column("entries", BigInteger, nullable=True),
            Column("checkpoints", Integer, nullable=True),
            Column("witnesses", Integer, nullable=True),
            Column("first_problem", Text, nullable=True),
            Index("ix_ledger_verify_run_ledger", "ledger", "run_id"),
        ),
        Table(
            "ledger_activity",
            metadata,
            Column("ledger", String(16), primary_key=True),
            Column("hour_us", BigInteger, primary_key=True, autoincrement=False),
            Column("actor", String(200), primary_key=True),
            Column("count", BigInteger, nullable=False),
        ),
        Table(
            "ledger_activity_mark",
            metadata,
            Column("ledger", String(16), primary_key=True),
            Column("seq", BigInteger, nullable=False),
        ),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    for table in _tables(MetaData()):
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(_tables(MetaData())):
        table.drop(bind)
