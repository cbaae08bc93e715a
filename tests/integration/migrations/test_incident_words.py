"""records_0031: an incident's title column takes its sealed form (TEXT), titles stored
before stay as typed (read as they are: ``incidents.words``), and a regulator's clock no
longer copies the incident's title, on SQLite and PostgreSQL. What it is for is in
tests/integration/incidents/test_sealed_words.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, String, Text, inspect, text

from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0031_incident_words

# Each test takes its stores through the migrations itself, from nothing.
pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0031_incident_words.revision
BEFORE = r0031_incident_words.down_revision


def _title_type(engine: Engine) -> object:
    (found,) = [c["type"] for c in inspect(engine).get_columns("incident") if c["name"] == "title"]
    return found


def test_titles_stored_before_stay_and_clocks_lose_their_copy(engine: Engine) -> None:
    upgrade("records", engine, BEFORE)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO incident (title, status, declared_us, declared_by, since_us,"
                " compromised, updated_us) VALUES ('Dr Lam looked up Chan', 'open', 1, 'cli',"
                " 1, '{}', 1)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO notify_clock (incident_id, regulator, title, starts_us, due_us)"
                " VALUES ('1', 'pcpd', 'PCPD: Dr Lam looked up Chan', 1, 2)"
            )
        )
    upgrade("records", engine, REVISION)
    if engine.dialect.name == "postgresql":
        assert isinstance(_title_type(engine), Text)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT title FROM incident")).scalar_one() == (
            "Dr Lam looked up Chan"
        )
        assert connection.execute(text("SELECT title FROM notify_clock")).scalar_one() == (
            "pcpd: incident 1"
        )
    downgrade("records", engine, BEFORE)
    if engine.dialect.name == "postgresql":
        found = _title_type(engine)
        assert isinstance(found, String) and found.length == 500
    with engine.connect() as connection:
        assert connection.execute(text("SELECT title FROM incident")).scalar_one() == (
            "Dr Lam looked up Chan"
        )
