"""Access tables as the first migrations made them, where they have changed since.

records_0002 creates the access tables from their declarations; a table that later
gained a column is spelled out here in its first shape, so that a fresh database
gets the column from the migration that adds it (records_0005 for client_app). The
containment, staff account and break-the-glass tables, made there too, are here in
their first shapes (records_0032, records_0033 and records_0035 seal them).
"""

from __future__ import annotations

import sqlalchemy as sa

from carevault.db import Sequence64


def first_client_app_table() -> sa.Table:
    """``client_app`` without ``account_id`` (records_0002)."""
    return sa.Table(
        "client_app",
        sa.MetaData(naming_convention={"pk": "pk_%(table_name)s"}),
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("clinic_ids", sa.Text, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )


#: The names the records metadata gives indexes and keys (carevault.db).
_NAMES = {"ix": "ix_%(column_0_label)s", "pk": "pk_%(table_name)s"}


def first_auth_session_table() -> sa.Table:
    """``auth_session`` without the patient in context (records_0010)."""
    return sa.Table(
        "auth_session",
        sa.MetaData(naming_convention=_NAMES),
        sa.Column("session_id", sa.String(48), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=True, index=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("last_used_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.Column("revoke_reason", sa.String(200), nullable=True),
        sa.Column("source_address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
    )


def first_auth_code_table() -> sa.Table:
    """``auth_code`` without the nonce, the picker's state and the patient (records_0010)."""
    return sa.Table(
        "auth_code",
        sa.MetaData(naming_convention=_NAMES),
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("used_us", sa.BigInteger, nullable=True),
        sa.Column("session_id", sa.String(48), nullable=True),
    )


def first_containment_table() -> sa.Table:
    """``containment`` without its rows' seal (records_0032)."""
    return sa.Table(
        "containment",
        sa.MetaData(naming_convention=_NAMES),
        sa.Column("containment_id", Sequence64, primary_key=True, autoincrement=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("released_us", sa.BigInteger, nullable=True),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Index("ix_containment_active", "released_us"),
    )


def first_staff_account_table() -> sa.Table:
    """``staff_account`` without its seal (records_0033)."""
    return sa.Table(
        "staff_account",
        sa.MetaData(naming_convention={**_NAMES, "uq": "uq_%(table_name)s_%(column_0_name)s"}),
        sa.Column("account_id", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("clinic_ids", sa.Text, nullable=False),
        sa.Column("practitioner_id", sa.String(64), nullable=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("totp_sealed", sa.LargeBinary, nullable=True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=True),
        sa.Column("failed_count", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_us", sa.BigInteger, nullable=False, default=0),
        sa.Column("locked_until_us", sa.BigInteger, nullable=False, default=0),
        sa.Column("suspended_us", sa.BigInteger, nullable=True),
        sa.Column("password_changed_us", sa.BigInteger, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )


def first_break_glass_table() -> sa.Table:
    """``break_glass`` without its seal (records_0035)."""
    return sa.Table(
        "break_glass",
        sa.MetaData(naming_convention=_NAMES),
        sa.Column("grant_id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False, index=True),
        sa.Column("patient_pseudonym", sa.String(40), nullable=False, index=True),
        sa.Column("reason_code", sa.String(64), nullable=False),
        sa.Column("reason_sealed", sa.LargeBinary, nullable=False),
        sa.Column("granted_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("reviewed_us", sa.BigInteger, nullable=True),
        sa.Column("reviewed_by", sa.String(40), nullable=True),
        sa.Column("review_outcome", sa.String(32), nullable=True),
        sa.Column("emergency", sa.Boolean, nullable=False, default=False),
        sa.Column("approved_by", sa.String(40), nullable=True),
        sa.Column("approved_us", sa.BigInteger, nullable=True),
    )
