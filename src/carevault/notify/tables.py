"""Tables of breach notification: one row per notice, its verification code, the
addresses that bounced, the officer's decisions and the regulators' clocks.

Nothing here is patient data in the clear: a notice names its patient by logical id
(as the vault's clear metadata does), an address only by its keyed digest, and a
verification code only by its keyed digest.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from carevault.db import metadata

#: One notice per (incident, patient). ``state`` moves pending → sending → sent, or
#: to skipped (deceased, unreachable); ``sending`` is written and committed before a
#: message leaves, so a job that restarts knows which sends it must settle first.
notify_notice = Table(
    "notify_notice",
    metadata,
    Column("notice_key", String(64), primary_key=True),
    Column("incident_id", String(80), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("tier", String(20), nullable=False),
    Column("categories", Text, nullable=False),
    Column("language", String(8), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("channel", String(8), nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False, default=0),
    Column("last_error", String(200), nullable=True),
    Column("code_digest", String(64), nullable=False, unique=True),
    Column("address_digest", String(64), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger, nullable=True),
    Index("ix_notify_notice_incident_state", "incident_id", "state"),
)

#: An email address or phone number that bounced (a 5xx reply or a DSN), by digest.
notify_bounce = Table(
    "notify_bounce",
    metadata,
    Column("address_digest", String(64), primary_key=True),
    Column("channel", String(8), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("at_us", BigInteger, nullable=False),
)

#: A send job of an incident: its options, and when it started and last ran. The lease
#: (``lease_owner`` until ``lease_until_us``, renewed every batch) lets one process at a
#: time run it, whichever server worker or CLI started it.
notify_job = Table(
    "notify_job",
    metadata,
    Column("incident_id", String(80), primary_key=True),
    Column("tiers", String(120), nullable=False),
    Column("total", Integer, nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
)

#: /verify's token buckets (one per source address, ``*`` for everyone together), kept
#: in the database so that every server process draws from the same ones.
notify_verify_bucket = Table(
    "notify_verify_bucket",
    metadata,
    Column("subject", String(80), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

#: A regulator's clock for an incident: when it started, when it runs out, when filed.
notify_clock = Table(
    "notify_clock",
    metadata,
    Column("incident_id", String(80), primary_key=True),
    Column("regulator", String(16), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("starts_us", BigInteger, nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("filed_us", BigInteger, nullable=True),
    Column("decision", String(20), nullable=True),
)
