"""Every patient an alert names, one row each (``detect_alert_patient``): an alert kept
at most 5,000 pseudonyms in its list, so its count stopped near 5,000 however many more
patients the account went on to read, and its severity with it.

Revision ID: records_0028
Revises: records_0027
Create Date: 2026-12-05

The table starts with each alert's list as stored: an alert whose count had passed its
list keeps that count (counts only grow), and counts on from its listed patients.
"""

from __future__ import annotations

import json

from alembic import op
from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select

revision = "records_0028"
down_revision = "records_0027"
branch_labels = None
depends_on = None

TABLE = "detect_alert_patient"


def _table(metadata: MetaData) -> Table:
    # Spelled out as of this revision (the module's table may change later, with a migration).
    return Table(
        TABLE,
        metadata,
        Column("alert_id", BigInteger, primary_key=True),
        Column("patient_pseudonym", String(40), primary_key=True),
    )


def upgrade() -> None:
    connection = op.get_bind()
    metadata = MetaData()
    table = _table(metadata)
    table.create(connection)
    alerts = Table("detect_alert", metadata, autoload_with=connection)
    rows = [
        {"alert_id": alert_id, "patient_pseudonym": pseudonym}
        for alert_id, listed in connection.execute(select(alerts.c.alert_id, alerts.c.patients))
        for pseudonym in sorted(set(json.loads(listed or "[]")))
    ]
    for start in range(0, len(rows), 1000):
        connection.execute(insert(table), rows[start : start + 1000])


def downgrade() -> None:
    _table(MetaData()).drop(op.get_bind())
