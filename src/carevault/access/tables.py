"""Tables of the access module: accounts, client apps, sessions, codes, grants, relationships."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from carevault.db import metadata

staff_account = Table(
    "staff_account",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("clinic_ids", Text, nullable=False),
    Column("practitioner_id", String(64), nullable=True),
    Column("password_hash", Text, nullable=False),
    # The TOTP secret, sealed under the credentials key (AES-GCM, bound to the account).
    Column("totp_sealed", LargeBinary, nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
    # Unused since records_0005 (sign-in throttling lives in sign_in_throttle); kept so
    # that an older server process never meets a missing column.
    Column("failed_count", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False, default=0),
    Column("locked_until_us", BigInteger, nullable=False, default=0),
    Column("suspended_us", BigInteger, nullable=True),
    Column("password_changed_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    # HMAC-SHA256 of what the account may do (id, username, role, clinics, practitioner)
    # under a key derived from the index key (``accounts.account_seal``, records_0033): a
    # role or clinic edited in the database by someone without the key no longer matches.
    Column("seal", LargeBinary, nullable=True),
)

client_app = Table(
    "client_app",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # public | confidential
    Column("secret_hash", String(64), nullable=True),
    Column("redirect_uris", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("clinic_ids", Text, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    # A confidential client may act for one integration account (records_0005): its
    # reach is then what both allow, and it ends when the account is suspended.
    Column("account_id", String(40), nullable=True),
    # A confidential client that signs assertions instead of holding a secret: its public
    # JWK Set (records_0024, ``access/assertions.py``).
    Column("jwks", Text, nullable=True),
    # HMAC-SHA256 of every column but created_us under a key derived from the index key
    # (``clients.client_seal``, records_0037): an app's clinics, scopes, secret, keys,
    # bound account or revocation edited by someone without the key no longer match.
    Column("seal", LargeBinary, nullable=True),
)

#: The ``jti`` of each client assertion accepted, hashed, kept until the assertion
#: expires: one presented again is refused (records_0024).
client_assertion = Table(
    "client_assertion",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti_hash", String(64), primary_key=True),
    Column("expires_us", BigInteger, nullable=False, index=True),
)

#: Failed sign-ins, as levels that drain over time, per (username, source address),
#: per username and per source address; and failed step-up codes per (account, source).
#: Usernames appear only hashed: people type passwords into the username field.
sign_in_throttle = Table(
    "sign_in_throttle",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("subject", String(200), primary_key=True),
    Column("level", Float, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("blocked_until_us", BigInteger, nullable=False),
    Index("ix_sign_in_throttle_waits", "kind", "blocked_until_us"),
)

#: One-time recovery codes: a second factor when the authenticator is lost, and a way
#: past the per-account back-off a crowd of addresses can cause. Stored as SHA-256
#: (each code has 80 random bits); a used code keeps its row, with when and from where.
recovery_code = Table(
    "recovery_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("issued_us", BigInteger, nullable=False),
    Column("used_us", BigInteger, nullable=True),
    Column("used_from", String(64), nullable=True),
)

auth_session = Table(
    "auth_session",
    metadata,
    Column("session_id", String(48), primary_key=True),
    Column("account_id", String(40), nullable=True, index=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("scopes", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("last_used_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("revoke_reason", String(200), nullable=True),
    Column("source_address", String(64), nullable=True),
    Column("user_agent", String(300), nullable=True),
    # The patient in context of a SMART patient launch (records_0010): patient/ scopes
    # reach only this patient's records.
    Column("patient_id", String(64), nullable=True),
    Column("patient_pseudonym", String(40), nullable=True),
    # Since when the session must present a fresh TOTP code before more data (records_0013):
    # an automatic response to an alert that keeps the person signed in.
    Column("step_up_us", BigInteger, nullable=True),
    # What the session lets its token do, sealed (``sessions.session_seal``;
    # records_0036): a row moved to another account, lengthened, un-revoked or cleared
    # of its step-up in the database is refused.
    Column("seal", LargeBinary, nullable=True),
)

refresh_token = Table(
    "refresh_token",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", String(48), nullable=False, index=True),
    Column("issued_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("used_us", BigInteger, nullable=True),
    # The token's hash, session, issue and expiry, sealed (``sessions.refresh_seal``;
    # records_0039): a row inserted or moved to another session refreshes nothing.
    Column("seal", LargeBinary, nullable=True),
)

auth_code = Table(
    "auth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("account_id", String(40), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("used_us", BigInteger, nullable=True),
    Column("session_id", String(48), nullable=True),
    # records_0010: the OpenID Connect nonce the app sent, echoed in the ID token; a code
    # still "picking" waits for the user to choose the patient in context (launch/patient)
    # and cannot be redeemed; the patient chosen.
    Column("nonce", String(256), nullable=True),
    Column("launch_state", String(16), nullable=True),
    Column("patient_id", String(64), nullable=True),
    Column("patient_pseudonym", String(40), nullable=True),
    # What the code will open, sealed (``oauth.code_seal``; records_0039): a code
    # inserted in the database opens no session.
    Column("seal", LargeBinary, nullable=True),
    # records_0041: the scopes as the app spelled them at /auth/authorize (SMART v1 or
    # v2), for the words of the token response (``scopes.as_asked``). Not sealed: it
    # changes only how the grant is spelt, never what is granted (``as_asked`` answers
    # the granted text unless the words grant exactly the same).
    Column("asked_scope", Text, nullable=True),
)

break_glass = Table(
    "break_glass",
    metadata,
    Column("grant_id", String(40), primary_key=True),
    Column("account_id", String(40), nullable=False, index=True),
    Column("patient_pseudonym", String(40), nullable=False, index=True),
    Column("reason_code", String(64), nullable=False),
    # Free text may name the patient or their condition: sealed like a record.
    Column("reason_sealed", LargeBinary, nullable=False),
    Column("granted_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("reviewed_us", BigInteger, nullable=True),
    Column("reviewed_by", String(40), nullable=True),
    Column("review_outcome", String(32), nullable=True),
    # Emergency access while patient data is offline: active only once a privacy
    # officer (not the requester) approves it.
    Column("emergency", Boolean, nullable=False, default=False),
    Column("approved_by", String(40), nullable=True),
    Column("approved_us", BigInteger, nullable=True),
    # What the grant opens, to whom and when, sealed (``breakglass.grant_seal``;
    # records_0035): a row inserted or edited in the database opens nothing.
    Column("seal", LargeBinary, nullable=True),
)

#: Clinics where a patient is registered besides their home clinic (the Patient's
#: managingOrganization): each registration was proved by the patient's presence (the
#: identifier they showed, with their birth date), or stated by the system on import.
patient_registration = Table(
    "patient_registration",
    metadata,
    Column("patient_pseudonym", String(40), primary_key=True),
    Column("clinic_id", String(64), primary_key=True),
    Column("registered_us", BigInteger, nullable=False),
    Column("registered_by", String(120), nullable=False),
    Column("proof", String(32), nullable=False),
    # HMAC-SHA256 of the row's other columns under a key derived from the index key
    # (``registrations.registration_seal``, records_0038): a registration inserted by
    # someone without the key places the patient nowhere. NULL in rows written before.
    Column("seal", LargeBinary, nullable=True),
)

#: Derived from Encounters, Appointments and CareTeams when they are written: who
#: may open a patient's health data, and until when. Practitioners appear only as
#: blind tokens, so the table does not say which doctor a patient sees.
care_relationship = Table(
    "care_relationship",
    metadata,
    Column("patient_pseudonym", String(40), nullable=False),
    Column("clinic_id", String(64), nullable=True),
    Column("practitioner_token", LargeBinary, nullable=True),
    Column("source_row_id", BigInteger, nullable=False),
    Column("valid_from_us", BigInteger, nullable=False),
    Column("valid_until_us", BigInteger, nullable=False),
    # A blind token of the principal whose own writes alone made it
    # (``domain.care.made_by``): it explains none of their accesses to the detectors.
    # None: the system made it, or someone else's write corroborated it (records_0022).
    Column("granted_by", LargeBinary, nullable=True),
    # HMAC-SHA256 of the row's other columns under a key derived from the index key
    # (``care.care_seal``, records_0038): a row inserted or widened by someone without the
    # key opens nothing. NULL in rows written before.
    Column("seal", LargeBinary, nullable=True),
    Index("ix_care_relationship_patient", "patient_pseudonym", "valid_until_us"),
    Index("ix_care_relationship_source", "source_row_id"),
    Index("ix_care_relationship_clinic", "clinic_id", "valid_until_us"),
)

#: To whom a care team or a referral ever opened a patient's record (a clinic, or a
#: practitioner's blind token), kept when the record that opened it ends: what the record
#: showed them is no proof of presence (``gate.registration``), and a referral completed,
#: revoked or deleted (by the doctor referred to, who may write it) must not make it one
#: (adversary round 50; records_0027).
care_vouched = Table(
    "care_vouched",
    metadata,
    Column(
        "vouched_id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("patient_pseudonym", String(40), nullable=False),
    Column("clinic_id", String(64), nullable=True),
    Column("practitioner_token", LargeBinary, nullable=True),
    Column("vouched_us", BigInteger, nullable=False),
    Index("ix_care_vouched_patient", "patient_pseudonym"),
)
