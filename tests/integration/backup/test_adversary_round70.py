"""Adversary round 70: the containment measures' register beside the keyring
(``keys.measures``) travels with the key files of a backup and comes back with them, so
that a restored home still keeps on a measure whose row is deleted from its database.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete

from carevault.backup.service import restore_backup, take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.state import Mode
from carevault.containment.tables import containment
from tests.conftest import make_settings
from tests.integration.backup.test_restore_drill import restore_target

pytestmark = pytest.mark.e2e

MEASURES = "containment-measures"


def test_a_restored_home_keeps_on_a_measure_whose_row_is_deleted(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    started = services.containment.start(Mode.PHI_OFFLINE, None, "ransomware", "staff:officer")
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert MEASURES in manifest["key_files"]
    with restore_target(settings) as url:
        home = tmp_path / "restored"
        witness = settings.home / "witness"
        restored_settings = make_settings(home, url, fresh=True, witness_dir=witness)
        assert restore_backup(tmp_path / "b", restored_settings, tmp_path / "k", "cli:test").ok
        restored = build_services(restored_settings)
        try:
            with restored.engine.begin() as connection:
                connection.execute(delete(containment))
        finally:
            restored.close()
        restarted = build_services(restored_settings)
        try:
            state = restarted.containment.current()
            assert state.phi_offline
            assert [item.containment_id for item in state.active] == [started.containment_id]
        finally:
            restarted.close()
