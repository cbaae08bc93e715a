"""records_0032: containment rows gain a seal; rows written before keep none and are
obeyed as they stand (an unsealed mode on stays on, one released stays released), until
a sealed row is older than them; the column comes and goes. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from carevault.containment.state import ContainmentStore, Mode
from carevault.migrations import downgrade, upgrade
from carevault.migrations.records.versions import r0032_containment_seal
from tests.integration.migrations.conftest import column_names

pytestmark = [pytest.mark.fresh_home, pytest.mark.postgres]

REVISION = r0032_containment_seal.revision
BEFORE = r0032_containment_seal.down_revision
KEY = b"k" * 32


def _insert(engine: Engine, mode: str, released_us: int | None) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO containment (mode, target, reason, started_us, started_by,"
                " released_us, released_by) VALUES (:mode, NULL, 'drill', 10, 'staff:po',"
                " :released, :by)"
            ),
            {"mode": mode, "released": released_us, "by": "staff:po" if released_us else None},
        )


def test_rows_written_before_are_obeyed_as_they_stand(engine: Engine) -> None:
    upgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "containment")
    _insert(engine, "read-only", None)
    _insert(engine, "phi-offline", 20)
    upgrade("records", engine, REVISION)
    assert "seal" in column_names(engine, "containment")
    store = ContainmentStore(engine, lambda: 30, refresh_seconds=0, seal_key=KEY)
    state = store.current()
    assert state.read_only and not state.phi_offline
    # A mode started now is sealed; the one from before is released as ever.
    started = store.start(Mode.KEY_LOCKDOWN, None, "drill", "staff:po")
    assert store.release(1, "staff:po").released_us == 30
    assert not store.current().read_only and store.current().key_lockdown
    with engine.connect() as connection:
        seals = connection.execute(
            text("SELECT containment_id, seal FROM containment ORDER BY containment_id")
        ).all()
    assert [row[1] is not None for row in seals] == [True, False, True]
    assert started.containment_id == 3
    downgrade("records", engine, BEFORE)
    assert "seal" not in column_names(engine, "containment")
