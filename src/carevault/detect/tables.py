"""The detection engine's tables: where it stands in the ledger, its state, its alerts,
the patients released per account (the release budget) and the flags a privacy officer
sets (VIP, decoy). Owned by ``carevault.detect``; migration ``records_0007``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from carevault.db import Sequence64, metadata

#: Where the detectors stand in each ledger, and which process holds the lease to advance.
detect_cursor = Table(
    "detect_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("owner", String(64), nullable=True),
    Column("lease_until_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

#: Slowly changing state per subject (an account's baseline, a role's): compact JSON.
detect_state = Table(
    "detect_state",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

detect_alert = Table(
    "detect_alert",
    metadata,
    Column("alert_id", Sequence64, primary_key=True, autoincrement=True),
    #: Detector, subject and period: a second finding with the same key updates the alert.
    Column("dedup_key", String(300), nullable=False, unique=True),
    Column("case_key", String(200), nullable=False, index=True),
    Column("detector", String(48), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("account", String(200), nullable=True),
    Column("role", String(32), nullable=True),
    Column("client", String(64), nullable=True),
    Column("session", String(64), nullable=True),
    Column("source_address", String(64), nullable=True),
    #: How many patients the alert names in all (``detect_alert_patient``'s rows).
    Column("patient_count", Integer, nullable=False),
    #: JSON list of patient pseudonyms (never names), the first ``alerts.KEPT_PATIENTS``
    #: in order: what the alert's page lists.
    Column("patients", Text, nullable=False),
    Column("first_position", BigInteger, nullable=True),
    Column("last_position", BigInteger, nullable=True),
    Column("raised_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("action", String(32), nullable=True),
    Column("containment_id", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("handled_by", String(200), nullable=True),
    Index("ix_detect_alert_raised", "raised_us"),
)

#: Every patient an alert names, however many (records_0028): what its count is of.
detect_alert_patient = Table(
    "detect_alert_patient",
    metadata,
    Column("alert_id", BigInteger, primary_key=True),
    Column("patient_pseudonym", String(40), primary_key=True),
)

#: Patients released to an account, per day: the release budget, shared by processes.
detect_release = Table(
    "detect_release",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("pseudonym", String(64), primary_key=True),
    Column("at_us", BigInteger, nullable=False),
    Index("ix_detect_release_at", "account", "day", "at_us"),
)

#: Flags on patients: ``vip`` (set by a privacy officer) and ``decoy`` (honeytokens).
detect_flag = Table(
    "detect_flag",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("set_by", String(200), nullable=False),
    Column("set_us", BigInteger, nullable=False),
)

#: What HR records of a member of staff, as kinship tokens (records_0013): their
#: surname, home, building and HKID number, each a keyed blind token made like a
#: Patient's (``carevault.fhir.kinship``), so that opening a relative's, a neighbour's or
#: a co-worker's record can be told without any name or address in the clear.
detect_staff_kin = Table(
    "detect_staff_kin",
    metadata,
    Column("account", String(200), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("token", LargeBinary, primary_key=True),
    Column("set_by", String(200), nullable=False),
    Column("set_us", BigInteger, nullable=False),
)

#: The tables of records_0007 (which creates them from this tuple): later ones are not here.
TABLES = (detect_cursor, detect_state, detect_alert, detect_release, detect_flag)
