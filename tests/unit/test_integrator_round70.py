"""Integrator round 70, the operator's production checks: the secret of the breach
notices' codes and the notices' DKIM key are key files like the others, and production
refuses to start when either is readable by others (whoever reads the first mints codes
that ``/verify`` calls genuine). Only the keyring and the token, ledger and ID-token
keys were checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.config import Settings, UnsafeConfiguration


def _production(home: Path) -> Settings:
    return Settings(
        environment="test",
        home=home,
        database_url="postgresql+psycopg://carevault@db/carevault",
        public_base_url="https://ehr.example.hk",
        witness_dir=home.parent / "witness",
    ).model_copy(update={"environment": "production"})


@pytest.mark.parametrize("name", ["notice-codes.key", "dkim.pem"])
def test_production_refuses_a_notice_key_readable_by_others(tmp_path: Path, name: str) -> None:
    settings = _production(tmp_path / "home")
    keys = tmp_path / "home" / "keys"
    keys.mkdir(parents=True)
    key = keys / name
    key.write_bytes(b"secret")
    key.chmod(0o600)
    settings.check()
    key.chmod(0o644)
    with pytest.raises(UnsafeConfiguration, match=f"{name} is readable by others"):
        settings.check()
