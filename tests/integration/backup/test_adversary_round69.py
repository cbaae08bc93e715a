"""Adversary round 69: the erasures' register beside the keyring (``keys.shreds``)
travels with the key files of a backup and comes back with them, so that a restored
home still refuses an erased patient's wrapped key put back into its database. On
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from carevault.backup.service import restore_backup, take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.domain.roles import Role
from carevault.keys.service import ShredUndone
from carevault.keys.shreds import REGISTER, register_path
from carevault.keys.tables import data_key
from tests.conftest import make_settings
from tests.integration.backup.test_restore_drill import restore_target
from tests.support.client import FhirTestClient
from tests.support.staff import make_staff

pytestmark = pytest.mark.e2e


def test_a_restored_home_keeps_the_erasures_register(
    api: FhirTestClient, services: Services, settings: Settings, tmp_path: Path
) -> None:
    made = api.post_json("/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "X"}]})
    patient = made.json()["id"]
    pseudonym = services.vault.patient_pseudonyms([patient])[patient]
    with services.key_engine.connect() as connection:
        kept = connection.execute(select(data_key).where(data_key.c.key_id == pseudonym)).one()
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    assert services.keys is not None
    services.contain.erase_patient(
        Officer(officer.account.username, officer.totp()), pseudonym, "request 7", services.keys
    )
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert REGISTER in manifest["key_files"]
    with restore_target(settings) as url:
        home = tmp_path / "restored"
        witness = settings.home / "witness"
        restored_settings = make_settings(home, url, fresh=True, witness_dir=witness)
        assert restore_backup(tmp_path / "b", restored_settings, tmp_path / "k", "cli:test").ok
        register = register_path(restored_settings.resolved_keyring_path)
        assert pseudonym in register.read_text().split()
        restored = build_services(restored_settings)
        try:
            assert restored.keys is not None
            with restored.key_engine.begin() as connection:
                connection.execute(
                    update(data_key)
                    .where(data_key.c.key_id == pseudonym)
                    .values(wrapped=kept.wrapped, kek_version=kept.kek_version, shredded_us=None)
                )
            with pytest.raises(ShredUndone):
                restored.keys.data_keys([pseudonym], principal="system:test", purpose="TREAT")
        finally:
            restored.close()


def test_a_backup_from_before_any_erasure_restores_beside_a_custodians_register(
    settings: Settings, tmp_path: Path
) -> None:
    """Review of round 69: the restore wrote every custodian file the target had, reading
    each from the backup; a backup taken before the first erasure has no register, and
    with the keyring kept apart from the data directory (whose folder had a register) the
    restore stopped half done on the missing file. It writes only the backup's own files
    now, and the custodian's register stays."""
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert REGISTER not in manifest["key_files"]
    with restore_target(settings) as url:
        custodian = tmp_path / "custodian"
        restored_settings = make_settings(
            tmp_path / "restored", url, fresh=True, witness_dir=settings.home / "witness",
            keyring_path=custodian / "keyring.json",
        )  # fmt: skip
        register = register_path(restored_settings.resolved_keyring_path)
        register.parent.mkdir(parents=True)
        register.write_text("erased-elsewhere\n")
        assert restore_backup(tmp_path / "b", restored_settings, tmp_path / "k", "cli:test").ok
        assert register.read_text() == "erased-elsewhere\n"
