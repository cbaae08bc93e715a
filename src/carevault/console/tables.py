"""Tables of the console: its sign-in cookies and each account's preferences."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, String, Table

from carevault.db import metadata

#: A browser's console session. The cookie holds a random secret; only its hash is
#: stored, beside the ``auth_session`` it stands for (which suspension, revocation and
#: "who is signed in" already know about).
console_session = Table(
    "console_session",
    metadata,
    Column("secret_hash", String(64), primary_key=True),
    Column("session_id", String(48), nullable=False, index=True),
    Column("account_id", String(40), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    # The cookie's hash, its session and account, sealed (``console.sessions``;
    # records_0039): a row pointed at an officer's session opens no console.
    Column("seal", LargeBinary, nullable=True),
)

#: What a staff member chose in the console, kept with their account (not the browser).
console_preference = Table(
    "console_preference",
    metadata,
    Column("account_id", String(40), primary_key=True),
    Column("language", String(16), nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
