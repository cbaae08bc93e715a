"""Key files kept outside the database: written 0600 in a 0700 directory, atomically."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from carevault.keys.provider import KeyProviderUnavailable


def write_private(path: Path, content: bytes, *, durable_rename: bool = False) -> None:
    """Put ``content`` at ``path`` whole (0600, its folder 0700), through a temporary file
    renamed over it. ``durable_rename``: the folder fsynced after the rename too, so the
    new file cannot be lost to the old one coming back after a crash (a register that
    other processes append to once it is in place)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable_rename:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def append_line(path: Path, line: str) -> None:
    """Append ``line`` to the custodian's file ``path`` (0600, its folder 0700), fsynced
    before returning: a line this short is written whole with ``O_APPEND``, so processes
    appending at once do not lose each other's."""
    if "\n" in line or "\r" in line:
        raise ValueError("one line at a time")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line_once(path: Path, line: str) -> bool:
    """Append ``line`` to ``path`` as ``append_line`` does unless a line of the file is
    ``line`` already; whether it was appended. Under an exclusive lock on the file, so
    processes starting at once (``carevault serve --workers N``, the detector beside
    them) write it once between them: a note written twice outlived the runbook's
    "delete that line" (review of stop 66)."""
    if "\n" in line or "\r" in line:
        raise ValueError("one line at a time")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = b""
        while chunk := os.read(fd, 65536):
            held += chunk
        if line in held.decode().splitlines():
            return False
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
        return True
    finally:
        os.close(fd)  # and the lock with it


def ed25519_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The Ed25519 private key in ``path`` (PKCS#8 PEM), made once if ``create``."""
    if not path.exists():
        if not create:
            raise KeyProviderUnavailable(f"key file {path} not found: run `carevault init`")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyProviderUnavailable(f"{path} does not hold an Ed25519 key")
    return loaded


def rsa_key(path: Path, *, bits: int = 2048) -> RSAPrivateKey:
    """The RSA private key in ``path`` (PKCS#8 PEM), made on first use.

    Made with a hard link so that of two processes starting at once exactly one key
    wins and both use it (the other's is thrown away before it signs anything)."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        staging = path.with_name(f".{path.name}.new-{os.getpid()}")
        write_private(staging, pem)
        try:
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, RSAPrivateKey):
        raise KeyProviderUnavailable(f"{path} does not hold an RSA key")
    return loaded
