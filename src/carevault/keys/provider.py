"""The port every key-encryption-key holder implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class KeyProviderError(RuntimeError):
    """The key provider could not do what was asked (unreachable, refused, bad key)."""


class KeyProviderUnavailable(KeyProviderError):
    """The key provider cannot be reached; callers fail closed with a 503."""


class KeyIntegrityError(KeyProviderError):
    """A wrapped key did not unwrap: it was altered, moved, or wrapped by another key."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by one version of the key-encryption key."""

    kek_version: int
    blob: bytes


class KeyProvider(Protocol):
    """Holds key-encryption keys (KEKs) and wraps and unwraps data keys with them.

    Contract:
    * the KEK never leaves the provider in the clear (for PKCS#11 it never leaves
      the token at all);
    * ``unwrap`` of a blob wrapped for another ``key_id`` or altered in any way
      raises ``KeyIntegrityError`` where the mechanism can tell;
    * a provider that cannot be reached raises ``KeyProviderUnavailable``;
    * the provider does not log: the key service logs every unwrap before it
      returns a key.
    """

    name: str

    def active_version(self) -> int:
        """The KEK version new wraps use."""
        ...

    def versions(self) -> list[int]:
        """Every KEK version still held, oldest first."""
        ...

    def wrap(self, key_id: str, data_key: bytes) -> WrappedKey:
        """Wrap ``data_key`` (32 bytes) under the active KEK."""
        ...

    def unwrap(self, key_id: str, wrapped: WrappedKey) -> bytes:
        """Return the 32-byte data key inside ``wrapped``."""
        ...

    def create_version(self) -> int:
        """Generate a new KEK version inside the provider and make it active."""
        ...

    def destroy_version(self, version: int) -> None:
        """Destroy a KEK version for good; blobs wrapped by it become unreadable."""
        ...
