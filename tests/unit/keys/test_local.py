"""The local keyring and the data-key cache."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from carevault.keys.local import LocalKeyring
from carevault.keys.provider import (
    KeyIntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
    WrappedKey,
)


def test_created_keyring_is_private_and_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    LocalKeyring.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(KeyProviderError, match="refusing"):
        LocalKeyring.create(path)


def test_wrap_binds_the_key_id(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "k.json")
    data_key = secrets.token_bytes(32)
    wrapped = ring.wrap("patient-a", data_key)
    assert data_key not in wrapped.blob
    assert ring.unwrap("patient-a", wrapped) == data_key
    with pytest.raises(KeyIntegrityError):
        ring.unwrap("patient-b", wrapped)
    with pytest.raises(KeyIntegrityError):
        # One bit flipped: a byte set to a fixed value would leave the blob unchanged 1 time in 256.
        tampered = wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1])
        ring.unwrap("patient-a", WrappedKey(wrapped.kek_version, tampered))


def test_rotation_keeps_old_versions_until_destroyed(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "k.json")
    data_key = secrets.token_bytes(32)
    old = ring.wrap("p", data_key)
    assert ring.create_version() == 2
    new = ring.wrap("p", data_key)
    assert (old.kek_version, new.kek_version) == (1, 2)
    assert ring.unwrap("p", old) == data_key
    with pytest.raises(KeyProviderError):
        ring.destroy_version(2)
    ring.destroy_version(1)
    with pytest.raises(KeyIntegrityError, match="version 1"):
        ring.unwrap("p", old)
    # Another process (the server) sees the change when it meets an unknown version.
    assert LocalKeyring(tmp_path / "k.json").versions() == [2]


def test_missing_or_foreign_keyring_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KeyProviderUnavailable, match="carevault init"):
        LocalKeyring(tmp_path / "none.json")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(KeyProviderUnavailable, match="not a CareVault keyring"):
        LocalKeyring(tmp_path / "other.json")
