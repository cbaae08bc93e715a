"""Key-encryption-key rotation that resumes after a crash with every patient readable;
crypto-shredding of one patient; and the whole stack on a SoftHSM2 token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.containment.service import Officer
from carevault.domain.roles import Role
from carevault.keys.service import DataKeyError
from carevault.keys.tables import data_key
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.keys.conftest import USER_PIN, SoftHsm, Token
from tests.integration.keys.test_pkcs11 import token_store_moved_away
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli
from tests.support.staff import make_staff


def add_patients(api: FhirTestClient, count: int) -> list[str]:
    return [
        api.post_json(
            "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": f"Rotate{n}"}]}
        ).json()["id"]
        for n in range(count)
    ]


def all_readable(services: Services, ids: list[str]) -> bool:
    services.keys.forget_cached()  # type: ignore[union-attr]
    with FhirTestClient(app_for(services)) as client:
        return all(client.get(f"/fhir/Patient/{pid}").status_code == 200 for pid in ids)


def app_for(services: Services) -> Any:
    from carevault.gate import Caller
    from carevault.web.security import caller

    app = create_app(services.settings, services)
    app.dependency_overrides[caller] = lambda: Caller(principal="system:test")
    return app


def test_a_rotation_stopped_half_way_resumes_and_every_patient_stays_readable(
    api: FhirTestClient, services: Services, settings: Settings
) -> None:
    ids = add_patients(api, 12)
    keys = services.keys
    assert keys is not None
    old = keys.provider.active_version()
    new = keys.provider.create_version()
    total = keys.pending_rewrap()
    assert total >= 13  # the patients and the shared keys
    assert keys.rewrap_batch(5) == 5
    services.close()  # the process dies here, half-way

    restarted = build_services(settings)
    try:
        assert restarted.keys is not None
        assert restarted.keys.pending_rewrap() == total - 5
        assert all_readable(restarted, ids)  # reads work in the middle of a rotation
        with pytest.raises(DataKeyError, match="still wrapped"):
            restarted.keys.destroy_kek_version(old)
        while restarted.keys.rewrap_batch(4):
            pass
        assert restarted.keys.pending_rewrap() == 0
        with restarted.key_engine.connect() as connection:
            versions = set(
                connection.execute(
                    select(data_key.c.kek_version).where(data_key.c.wrapped.is_not(None))
                ).scalars()
            )
        assert versions == {new}
        restarted.keys.destroy_kek_version(old)
        assert restarted.keys.provider.versions() == [new]
        assert all_readable(restarted, ids)
        unwraps = [data for _, data in restarted.unwrap_ledger.store.entries()]
        assert sum(b'"purpose":"kek-rotation"' in entry for entry in unwraps) == total
        assert restarted.unwrap_ledger.verify().ok
    finally:
        restarted.close()


def test_the_cli_rotates_with_progress(api: FhirTestClient, services: Services) -> None:
    add_patients(api, 3)
    env = environment(services.settings.home, services.settings.database_url)
    rotated = invoke_cli(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "none left on older versions" in rotated.stdout
    status = invoke_cli(env, "keys", "status")
    assert "data keys to re-wrap: 0" in status.stdout
    assert "versions: [1, 2] (active 2)" in status.stdout
    destroyed = invoke_cli(env, "keys", "destroy-version", "1", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    refused = invoke_cli(env, "keys", "destroy-version", "2", "--yes")
    assert refused.returncode == 1 and "active" in refused.stderr


def test_erasure_shreds_one_patient_and_the_backup_sequence_closes_the_door(
    api: FhirTestClient, services: Services
) -> None:
    erased, kept = add_patients(api, 2)
    keys = services.keys
    assert keys is not None
    officer = make_staff(services, Role.PRIVACY_OFFICER, ["clinic-a"])
    pseudonym = services.vault.patient_pseudonyms([erased])[erased]
    with services.key_engine.connect() as connection:
        backup = connection.execute(select(data_key).where(data_key.c.key_id == pseudonym)).one()
    services.contain.erase_patient(
        Officer(officer.account.username, officer.totp()), pseudonym, "erasure request 7", keys
    )
    assert api.get(f"/fhir/Patient/{erased}").status_code == 410
    assert api.get(f"/fhir/Patient/{kept}").status_code == 200
    entries = [data for _, data in services.audit_ledger.store.entries()]
    assert any(
        b"keys:data-key:shredded" in entry and pseudonym.encode() in entry for entry in entries
    )
    assert services.audit_ledger.verify().ok

    def restore_from_backup() -> None:
        with services.key_engine.begin() as connection:
            connection.execute(
                update(data_key)
                .where(data_key.c.key_id == pseudonym)
                .values(wrapped=backup.wrapped, kek_version=backup.kek_version, shredded_us=None)
            )
        keys.forget_cached()

    # While the old key-encryption key lives, a backup's row put back would undo the
    # shredding: the erasures' register beside the keyring refuses it (adversary round 69;
    # it was served, 200, before)...
    restore_from_backup()
    assert api.get(f"/fhir/Patient/{erased}").status_code == 500
    keys.shred(pseudonym)
    # ...and rotate, re-wrap the live keys, and destroy the old version, for backups whose
    # keys directory holds no register (erasures made before it).
    keys.provider.create_version()
    while keys.rewrap_batch():
        pass
    keys.destroy_kek_version(backup.kek_version)
    restore_from_backup()
    assert api.get(f"/fhir/Patient/{erased}").status_code in (500, 503)
    assert api.get(f"/fhir/Patient/{kept}").status_code == 200


@pytest.fixture
def hsm_services(token: Token, tmp_path: Path) -> Iterator[Services]:
    settings = make_settings(
        tmp_path / "home",
        key_provider="pkcs11",
        pkcs11_module=Path(token.hsm.module),
        pkcs11_token_label=token.label,
        pkcs11_pin=USER_PIN,
        dek_cache_size=0,
    )
    built = build_services(settings, create_keys=True, migrate=True)
    yield built
    built.close()


def test_the_whole_stack_on_softhsm_fails_closed_and_returns(
    hsm_services: Services, softhsm: SoftHsm
) -> None:
    with FhirTestClient(app_for(hsm_services)) as client:
        created = client.post_json(
            "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Hsm"}]}
        ).json()
        path = f"/fhir/Patient/{created['id']}"
        assert client.get(path).json()["name"][0]["family"] == "Hsm"
        with token_store_moved_away(softhsm):
            down = client.get(path)
            assert down.status_code == 503
            assert "Hsm" not in down.text
            refused = client.post_json(
                "/fhir/Patient", {"resourceType": "Patient", "name": [{"family": "Nowhere"}]}
            )
            assert refused.status_code == 503
        assert client.get(path).status_code == 200
        assert hsm_services.keys is not None
        provider = hsm_services.keys.provider
        old = provider.active_version()
        provider.create_version()
        while hsm_services.keys.rewrap_batch():
            pass
        hsm_services.keys.destroy_kek_version(old)
        assert client.get(path).status_code == 200
