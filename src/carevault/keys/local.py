"""Local keyring: key-encryption keys in a file outside the database.

The file holds every KEK version (AES-256) and is written with mode 0600 in a
directory of mode 0700. Data keys are wrapped with AES-256-GCM whose associated
data names the data key's id and the KEK version, so a wrapped key copied onto
another patient's row does not unwrap. This provider is for a single host and
the demo; production uses the PKCS#11 provider, where the KEK never leaves the token.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carevault.keys.files import write_private
from carevault.keys.provider import (
    KeyIntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
    WrappedKey,
)

_FORMAT = "carevault-keyring/1"
_NONCE_BYTES = 12


def _wrap_aad(key_id: str, version: int) -> bytes:
    return f"carevault-kek|{version}|{key_id}".encode()


class LocalKeyring:
    """A ``KeyProvider`` backed by a keyring file (see module docstring)."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] = {}
        self._active = 0
        self._load()

    @classmethod
    def create(cls, path: Path) -> LocalKeyring:
        """Create a new keyring file with a first KEK version; refuse to overwrite one."""
        if path.exists():
            raise KeyProviderError(f"keyring {path} already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path.parent, 0o700)
        _write_keyring(path, {1: secrets.token_bytes(32)}, active=1)
        return cls(path)

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> None:
        try:
            raw = json.loads(self._path.read_text())
        except FileNotFoundError as error:
            raise KeyProviderUnavailable(
                f"keyring {self._path} not found: run `carevault init`"
            ) from error
        except (OSError, ValueError) as error:
            raise KeyProviderUnavailable(
                f"keyring {self._path} cannot be read: {type(error).__name__}"
            ) from error
        if raw.get("format") != _FORMAT:
            raise KeyProviderUnavailable(f"keyring {self._path} is not a CareVault keyring")
        self._keys = {int(v): base64.b64decode(k["key"]) for v, k in raw["keks"].items()}
        self._active = int(raw["active"])

    def active_version(self) -> int:
        with self._lock:
            return self._active

    def versions(self) -> list[int]:
        with self._lock:
            return sorted(self._keys)

    def wrap(self, key_id: str, data_key: bytes) -> WrappedKey:
        with self._lock:
            version = self._active
            kek = self._keys[version]
        nonce = secrets.token_bytes(_NONCE_BYTES)
        blob = nonce + AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(key_id, version))
        return WrappedKey(kek_version=version, blob=blob)

    def unwrap(self, key_id: str, wrapped: WrappedKey) -> bytes:
        kek = self._kek(wrapped.kek_version)
        nonce, body = wrapped.blob[:_NONCE_BYTES], wrapped.blob[_NONCE_BYTES:]
        try:
            return AESGCM(kek).decrypt(nonce, body, _wrap_aad(key_id, wrapped.kek_version))
        except InvalidTag as error:
            raise KeyIntegrityError(
                f"data key {key_id} did not unwrap under KEK version {wrapped.kek_version}"
            ) from error

    def _kek(self, version: int) -> bytes:
        with self._lock:
            kek = self._keys.get(version)
        if kek is None:
            # Another process (the CLI rotating keys) may have changed the file.
            with self._lock:
                self._load()
                kek = self._keys.get(version)
        if kek is None:
            raise KeyIntegrityError(f"KEK version {version} is not held (destroyed or unknown)")
        return kek

    def create_version(self) -> int:
        with self._lock:
            self._load()
            version = max(self._keys, default=0) + 1
            self._keys[version] = secrets.token_bytes(32)
            self._active = version
            _write_keyring(self._path, self._keys, active=version)
            return version

    def destroy_version(self, version: int) -> None:
        with self._lock:
            self._load()
            if version == self._active:
                raise KeyProviderError("the active KEK version cannot be destroyed; rotate first")
            if version not in self._keys:
                raise KeyProviderError(f"KEK version {version} is not held")
            del self._keys[version]
            _write_keyring(self._path, self._keys, active=self._active)


def _write_keyring(path: Path, keys: dict[int, bytes], *, active: int) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    document: dict[str, Any] = {
        "format": _FORMAT,
        "active": active,
        "written": datetime.now(UTC).isoformat(),
        "keks": {str(v): {"key": base64.b64encode(k).decode()} for v, k in sorted(keys.items())},
    }
    write_private(path, json.dumps(document, indent=2).encode())
