"""records_0024: integration clients registered before keep their secrets and no keys;
the key column and the table of used assertions come and go with the revision, on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from carevault.config import Settings
from carevault.db import make_engine
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0024_client_keys

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0024_client_keys.revision
BEFORE = r0024_client_keys.down_revision


def test_clients_registered_before_keep_their_secret_and_no_keys(settings: Settings) -> None:
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)

    def shape() -> tuple[bool, bool]:
        found = inspect(engine)
        columns = {column["name"] for column in found.get_columns("client_app")}
        return r0024_client_keys.COLUMN in columns, found.has_table(r0024_client_keys.TABLE)

    try:
        upgrade("records", engine, BEFORE)
        assert shape() == (False, False)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO client_app (client_id, name, kind, secret_hash, redirect_uris,"
                    " scopes, clinic_ids, created_us)"
                    " VALUES ('lab-feed', 'Lab', 'confidential', 'h', '[]',"
                    " 'system/Observation.rs', 'clinic-a', 1)"
                )
            )
        upgrade("records", engine, REVISION)
        assert shape() == (True, True)
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT client_id, secret_hash, jwks FROM client_app")
            ).all()
        assert [tuple(row) for row in rows] == [("lab-feed", "h", None)]
        downgrade("records", engine, BEFORE)
        assert shape() == (False, False)
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT client_id FROM client_app")).scalars().all()
        assert kept == ["lab-feed"]
    finally:
        engine.dispose()


def test_going_down_leaves_no_client_that_holds_no_secret(settings: Settings) -> None:
    """From the security review: a client registered with keys holds no secret, and
    the release before compared a missing secret with a placeholder anyone can send."""
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade("records", engine, REVISION)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO client_app (client_id, name, kind, secret_hash, redirect_uris,"
                    " scopes, clinic_ids, created_us, jwks) VALUES ('bulk-feed', 'Bulk',"
                    " 'confidential', NULL, '[]', 'system/Observation.rs', 'clinic-a', 1,"
                    " '{\"keys\":[]}')"
                )
            )
        downgrade("records", engine, BEFORE)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT secret_hash, revoked_us FROM client_app WHERE client_id='bulk-feed'")
            ).one()
        assert row.secret_hash is not None and len(row.secret_hash) == 64
        assert row.revoked_us is not None
    finally:
        engine.dispose()
