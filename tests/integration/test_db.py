"""Data files are their owner's alone (issue 9: database files were 0644): the SQLite
databases with their -wal and -shm files, the keys, and the directories that hold them.
PostgreSQL keeps no files of ours, so this is SQLite's test."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from carevault.bootstrap import build_services, initialise
from carevault.db import private_sqlite_file
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.gate import Caller
from carevault.vault.writer import Put
from tests.conftest import make_settings
from tests.integration.rest.test_interactions import patient


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    """The usual default umask, under which files come out 0644 unless asked otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_every_data_file_is_0600_and_every_directory_0700(tmp_path: Path, lax_umask: None) -> None:
    settings = make_settings(tmp_path / "home")
    initialise(settings)
    services = build_services(settings)
    try:
        services.gate.write(
            Caller(principal="system:test"), [Put(RESOURCE_TYPES["Patient"], "p1", patient())]
        )
        home = settings.home
        files = [
            home / "carevault.db",
            home / "carevault.db-wal",
            home / "carevault.db-shm",
            home / "keys" / "keys.db",
            home / "keys" / "keys.db-wal",
            home / "keys" / "keyring.json",
            home / "keys" / "token-signing.pem",
            home / "keys" / "ledger-signing.pem",
        ]
        for path in files:
            assert path.exists(), path
            assert _mode(path) == 0o600, (path, oct(_mode(path)))
        for directory in (home, home / "keys", home / "witness"):
            assert _mode(directory) == 0o700, (directory, oct(_mode(directory)))
    finally:
        services.close()


def test_files_of_an_older_laxer_install_are_narrowed(tmp_path: Path, lax_umask: None) -> None:
    database = tmp_path / "data" / "carevault.db"
    database.parent.mkdir()
    for path in (database, database.with_name("carevault.db-wal")):
        path.write_bytes(b"")
        path.chmod(0o644)
    private_sqlite_file(database)
    assert _mode(database) == 0o600
    assert _mode(database.with_name("carevault.db-wal")) == 0o600
