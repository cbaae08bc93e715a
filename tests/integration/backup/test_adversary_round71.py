"""Adversary round 71 (stop 57): the register of revocations and step-ups beside the
keyring (``keys.revocations``) travels with the key files of a backup and comes back
with them, so that in a restored home a session's row saved before its revocation and
written back still opens nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from carevault.access.tables import auth_session
from carevault.backup.service import restore_backup, take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from tests.conftest import make_settings
from tests.integration.backup.test_restore_drill import restore_target
from tests.support.staff import make_staff

pytestmark = pytest.mark.e2e

REVOCATIONS = "revocations"


def test_a_restored_home_keeps_a_revocation_whose_row_is_written_back(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    desk = make_staff(services, Role.FRONT_DESK, ["clinic-tm"])
    (session,) = services.sessions.list_for(desk.account.account_id)
    assert services.sessions.state(session.session_id, fresh=True).live
    with services.engine.begin() as connection:
        saved = dict(
            connection.execute(
                select(auth_session).where(auth_session.c.session_id == session.session_id)
            )
            .one()
            ._mapping
        )
    assert services.sessions.revoke(session.session_id, "ended by its owner")
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert REVOCATIONS in manifest["key_files"]
    with restore_target(settings) as url:
        home = tmp_path / "restored"
        witness = settings.home / "witness"
        restored_settings = make_settings(home, url, fresh=True, witness_dir=witness)
        assert restore_backup(tmp_path / "b", restored_settings, tmp_path / "k", "cli:test").ok
        restored = build_services(restored_settings)
        try:
            with restored.engine.begin() as connection:
                connection.execute(
                    update(auth_session)
                    .where(auth_session.c.session_id == session.session_id)
                    .values(**saved)
                )
            state = restored.sessions.state(session.session_id, fresh=True)
            assert not state.live, "the session revoked before the backup lived again"
        finally:
            restored.close()
