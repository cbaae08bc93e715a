"""Integrator round 70, the operator restoring onto a new host: what was handed out
before the backup still checks after the restore. ``carevault backup`` copied the
keyring, the token and ledger signing keys, and left behind the key of the codes
printed in breach notices and the key of the ID tokens apps hold: a restored home made
new ones, so every notice already sent failed its check at ``/verify`` (a patient told
to trust only a code that checks was told the genuine notice was not), and apps'
cached JWKS no longer matched. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from carevault.backup.service import restore_backup, take_backup
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.notify.service import code_keys
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.backup.test_restore_drill import restore_target
from tests.support.client import FhirTestClient


def _jwks(services: Services) -> object:
    with FhirTestClient(create_app(services.settings, services)) as web:
        answer = web.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    return answer.json()


def test_a_restored_home_confirms_the_notices_and_id_tokens_issued_before(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    issued = code_keys(settings).code_for("notice-1", "email")
    jwks = _jwks(services)
    take_backup(settings, tmp_path / "b", tmp_path / "k", "cli:test")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert {"notice-codes.key", "id-token.pem"} <= set(manifest["key_files"])
    with restore_target(settings) as url:
        home = tmp_path / "restored"
        restored_settings = make_settings(
            home, url, fresh=True, witness_dir=settings.home / "witness"
        )
        assert restore_backup(tmp_path / "b", restored_settings, tmp_path / "k", "cli:test").ok
        assert code_keys(restored_settings).code_for("notice-1", "email") == issued
        restored = build_services(restored_settings)
        try:
            assert _jwks(restored) == jwks
        finally:
            restored.close()
