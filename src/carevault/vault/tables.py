"""Tables of the record store. In the clear: type, id, version, lastUpdated,
patient pseudonym, clinic id, status and blind-index tokens — nothing else."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from carevault.db import Sequence64, metadata

#: The current version of every resource: what reads and searches start from.
resource_head = Table(
    "resource_head",
    metadata,
    # A compact surrogate key, so that each search token costs few bytes.
    Column("row_id", Sequence64, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated_us", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("patient_pseudonym", String(40), nullable=True),
    Column("clinic_id", String(64), nullable=True),
    Column("status", String(64), nullable=True),
    UniqueConstraint("resource_type", "resource_id", name="uq_resource_head_type_id"),
    # clinic_id too: an incident's scope groups thousands of patients' records by clinic
    # and type from the index alone (migration records_0019).
    Index("ix_resource_head_patient", "patient_pseudonym", "resource_type", "clinic_id"),
    Index("ix_resource_head_updated", "resource_type", "last_updated_us", "resource_id"),
)

#: Directory records (a room, a role, a schedule: no patient's) whose current version a
#: member of staff or a client app wrote, not the system's own load: each is a place
#: someone of its clinic chose the id of. A patient's record the system loads that names
#: its clinic only through one, where the patient is not registered, is refused
#: (``Gate._placed_where_registered``; adversary round 62). Only its type and id, who
#: wrote it and when: as in the clear as its head and its ledger entry.
directory_written = Table(
    "directory_written",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("principal", String(200), nullable=False),
    Column("written_us", BigInteger, nullable=False),
)

#: Every version ever written, sealed. A deletion is a version without a body.
resource_version = Table(
    "resource_version",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated_us", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("sealed", LargeBinary, nullable=True),
    # Whose and which clinic's this version was when written: an old version is shown
    # under the policy facts it had then as well as now, never only the current ones.
    Column("patient_pseudonym", String(40), nullable=True),
    Column("clinic_id", String(64), nullable=True),
    # The HTTP method that wrote the version (``records.Method``), for history's
    # request.method (records_0025); NULL for versions written before, inferred.
    Column("method", String(8), nullable=True),
)

#: Search tokens of current versions: blind-index HMACs, or clear values where
#: DESIGN.md allows (status). A token already names its resource type and
#: search parameter (they are inside the HMAC), so the row is just (token, row).
search_token = Table(
    "search_token",
    metadata,
    Column("token", LargeBinary, primary_key=True),
    Column("row_id", BigInteger, primary_key=True, autoincrement=False),
    # PostgreSQL's plans for a page of a date-range search walk the heads in order and
    # probe each row's tokens through this index (1.9 ms a page at 3,000 charts; without
    # it, 320 ms). SQLite's plans never use it (records_0023), and every token written
    # paid for it there: 4-7 % of a bulk load's writer.
    Index("ix_search_token_row", "row_id").ddl_if(dialect="postgresql"),
    sqlite_with_rowid=False,
)

#: Each current record's search tokens as one value (``carevault.vault.tokenlist``):
#: which tokens a row has, for replacing or deleting them by ``search_token``'s primary
#: key, where there is no index by row (SQLite, records_0023); on both backends, what a
#: patient's date search reads of their records' tokens. Written and removed with the
#: row's tokens, in the same transaction.
search_token_list = Table(
    "search_token_list",
    metadata,
    # Sequence64: SQLite's rowid itself, so the list is the table's only B-tree.
    Column("row_id", Sequence64, primary_key=True, autoincrement=False),
    Column("tokens", LargeBinary, nullable=False),
)

#: Date values of resources that are not patient data (Slot, Schedule, …), in the
#: clear as DESIGN.md allows, so that a range or a sort on them is plain SQL. One row
#: per value: [low_us, high_us) in microseconds since the epoch, NULL where open.
search_date = Table(
    "search_date",
    metadata,
    Column("row_id", BigInteger, nullable=False),
    Column("param", String(64), nullable=False),
    Column("low_us", BigInteger, nullable=True),
    Column("high_us", BigInteger, nullable=True),
    # The sort's lookup (one record's earliest value of a parameter) and deletion by row.
    Index("ix_search_date_row", "row_id", "param", "low_us"),
    Index("ix_search_date_low", "param", "low_us"),
    Index("ix_search_date_high", "param", "high_us"),
)

#: Kinship tokens of current Patient records (records_0013): keyed blind tokens of the
#: surname, the home (whole address), the building (address without flat and floor) and
#: the HKID number (see ``carevault.fhir.kinship``), written with the record, so that the
#: detectors can tell a relative's, a neighbour's or a co-worker's record without
#: decrypting anything. The kind is clear; the value only a keyed HMAC.
patient_kin = Table(
    "patient_kin",
    metadata,
    Column("row_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), primary_key=True),
    Column("token", LargeBinary, primary_key=True),
    Column("patient_pseudonym", String(40), nullable=False),
    Index("ix_patient_kin_patient", "patient_pseudonym"),
    Index("ix_patient_kin_token", "token", "kind"),
)

#: Kinship tokens a write replaced (records_0026): a Patient's surname, home, building or
#: HKID token that its update or deletion took away, with when. ``patient_kin`` holds only
#: the current version's, so a member of staff who first moved a relative's record to
#: another address (or renamed a namesake) and then opened it would be judged on tokens
#: she had just made; the detectors relate an entry to these too, for as long as they look
#: back (``detect.kin.KIN_WINDOW_US``), and forget them after. Keyed tokens only, as in
#: ``patient_kin``. A new patient replaces nothing: a bulk load writes no row here.
patient_kin_replaced = Table(
    "patient_kin_replaced",
    metadata,
    Column("replaced_id", Sequence64, primary_key=True, autoincrement=True),
    Column("patient_pseudonym", String(40), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("token", LargeBinary, nullable=False),
    Column("replaced_us", BigInteger, nullable=False),
    # The detectors' look-up (a batch's patients, since a time) and the pruning (by time).
    Index("ix_patient_kin_replaced_patient", "patient_pseudonym", "replaced_us"),
    Index("ix_patient_kin_replaced_at", "replaced_us"),
)
