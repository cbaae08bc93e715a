"""Directory records whose writer this database does not know, kept as written by
someone other than the system (``vault.tables.directory_written``; adversary round 82).

Revision ID: records_0040
Revises: records_0039
Create Date: 2026-12-07

records_0034 kept who wrote a room or role from then on; those written before had no row
and placed records as the system's own did. Stop 64 made a room or role of the system's
own load also register the patient where it places a loaded booking, and read "no row"
as "the system's": a room a desk made before records_0034 then registered another
clinic's patients at the desk's clinic. Every directory record without a row is now
kept as of an unknown writer: it places and registers nothing for the system's loads of
patients not registered at its clinic, as one staff wrote. One the system loaded since
records_0034 is among them (nothing here tells the two apart); the system's next load of
it clears the row, as any load of the group's directory does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0040"
down_revision = "records_0039"
branch_labels = None
depends_on = None

#: Who wrote them, as the table keeps it: no account or client has this name.
UNKNOWN = "unknown:before-records_0040"
#: Patient-less types that are no place (``vault.writer._NOT_PLACES``, as of this revision).
_NOT_PLACES = ("Organization", "Practitioner")


def upgrade() -> None:
    op.get_bind().execute(
        sa.text(
            "INSERT INTO directory_written (resource_type, resource_id, principal, written_us)"
            " SELECT h.resource_type, h.resource_id, :unknown, h.last_updated_us"
            " FROM resource_head h"
            " WHERE h.patient_pseudonym IS NULL"
            " AND h.resource_type NOT IN (:organization, :practitioner)"
            " AND NOT EXISTS (SELECT 1 FROM directory_written d"
            " WHERE d.resource_type = h.resource_type AND d.resource_id = h.resource_id)"
        ),
        {"unknown": UNKNOWN, "organization": _NOT_PLACES[0], "practitioner": _NOT_PLACES[1]},
    )


def downgrade() -> None:
    op.get_bind().execute(
        sa.text("DELETE FROM directory_written WHERE principal = :unknown"), {"unknown": UNKNOWN}
    )
