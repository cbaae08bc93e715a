"""The composition root: builds every service from ``Settings``, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from carevault.config import Settings
from carevault.db import make_engine
from carevault.gate import Gate
from carevault.keys.cache import DataKeyCache
from carevault.keys.local import LocalKeyring
from carevault.keys.provider import KeyProvider
from carevault.keys.service import DIRECTORY_KEY_ID, KeyService, TableUnwrapRecorder
from carevault.migrations import upgrade
from carevault.rest.interactions import FhirInteractions, SearchSettings
from carevault.vault.envelope import Envelope
from carevault.vault.store import SYSTEM_PRINCIPAL, Vault


@dataclass
class Services:
    settings: Settings
    engine: Engine
    key_engine: Engine
    provider: KeyProvider | None
    keys: KeyService | None
    vault: Vault
    gate: Gate
    fhir: FhirInteractions
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.keys is not None:
            self.keys.forget_cached()
        self.engine.dispose()
        if self.key_engine is not self.engine:
            self.key_engine.dispose()


def make_provider(settings: Settings, *, create: bool = False) -> KeyProvider:
    if settings.key_provider == "pkcs11":
        from carevault.keys.pkcs11 import Pkcs11KeyProvider

        pin = settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else ""
        provider = Pkcs11KeyProvider(str(settings.pkcs11_module), settings.pkcs11_token_label, pin)
        if create and not provider.versions():
            provider.create_version()
        return provider
    path = settings.resolved_keyring_path
    if create and not path.exists():
        return LocalKeyring.create(path)
    return LocalKeyring(path)


def initialise(settings: Settings) -> None:
    """Prepare a data directory and databases: idempotent, never overwrites keys."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    services = build_services(settings, create_keys=True, migrate=True)
    services.close()


def build_services(
    settings: Settings, *, create_keys: bool = False, migrate: bool = False
) -> Services:
    settings.check()
    engine = make_engine(settings.resolved_database_url)
    key_url = settings.resolved_keys_database_url
    key_engine = engine if key_url == settings.resolved_database_url else make_engine(key_url)
    if migrate:
        upgrade("records", engine)
        upgrade("keys", key_engine)
    provider: KeyProvider | None = None
    keys: KeyService | None = None
    if settings.encryption:
        provider = make_provider(settings, create=create_keys)
        cache = DataKeyCache(settings.dek_cache_size, settings.dek_cache_seconds)
        keys = KeyService(key_engine, provider, cache, TableUnwrapRecorder(key_engine))
    zone = ZoneInfo(settings.timezone)
    vault = Vault(engine, keys, Envelope(encrypted=settings.encryption), zone)
    vault.start()
    if keys is not None:
        keys.ensure_data_key(
            DIRECTORY_KEY_ID, "directory", principal=SYSTEM_PRINCIPAL, purpose="startup"
        )
    gate = Gate(vault, candidate_limit=settings.sort_candidate_limit)
    fhir = FhirInteractions(
        gate,
        SearchSettings(
            zone=zone,
            default_count=settings.search_default_count,
            max_count=settings.search_max_count,
        ),
    )
    return Services(settings, engine, key_engine, provider, keys, vault, gate, fhir)
