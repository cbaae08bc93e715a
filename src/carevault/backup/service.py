"""Taking a backup of a live data directory, and restoring one into a new directory.

The order is what keeps a backup whole and erasure final:

1. The backup is recorded in the audit ledger and both ledgers are checkpointed, so the
   witness has seen no more than the copy will hold.
2. The records database is copied, then the key store's database: every data key a
   copied record needs was created before the record, so it is in the later copy.
3. The ledger heads of the copies are signed and cosigned by the witness; the notes go
   in the manifest and become checkpoints of the restored ledgers. A restore of an older
   backup then shows, in ``audit verify``, that the witness has seen more.
4. The key files are copied last, and must hold every KEK version the copied data keys
   need (a rotation racing the backup is caught and the key files copied again). They
   go to their own directory: keep it apart from the data, and replace it rather than
   keep old ones, or an old keyring would undo the destruction of a KEK version.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, func, insert, select

from carevault.backup.manifest import (
    BackupInvalid,
    LedgerHead,
    Manifest,
    check_files,
    file_digest,
)
from carevault.backup.snapshot import (
    copy_sqlite,
    dump_postgres,
    exported_snapshot,
    restore_postgres,
    seal_sqlite,
    sqlite_path,
)
from carevault.bootstrap import Services, build_services
from carevault.clock import fhir_instant, utc_now
from carevault.config import Settings
from carevault.db import make_engine, read_transaction, write_transaction
from carevault.incidents.tables import ledger_segment
from carevault.keys.anchors import ANCHORS, anchors_path
from carevault.keys.files import write_private
from carevault.keys.measures import MEASURES, measures_path
from carevault.keys.revocations import REVOCATIONS, revocations_path
from carevault.keys.shreds import REGISTER, register_path
from carevault.keys.tables import data_key
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.ledger.schema import AUDIT_LEDGER, audit_tables
from carevault.ledger.service import Ledger
from carevault.ledger.store import LedgerStore
from carevault.ledger.tables import LedgerTables
from carevault.ledger.tree import EMPTY_ROOT
from carevault.ledger.unwrap import UNWRAP_LEDGER, unwrap_tables
from carevault.ledger.verify import VerifyReport

RECORDS_COPY = "records.db"
KEYS_COPY = "keys.db"
RECORDS_DUMP = "records.dump"
KEYS_DUMP = "keys.dump"
KEYRING = "keyring.json"
SHREDS = REGISTER
TOKEN_KEY = "token-signing.pem"  # noqa: S105 - a file name
LEDGER_KEY = "ledger-signing.pem"
#: The keys of what was handed out before the backup, which must still check after a
#: restore: ID tokens apps hold (their JWKS), the codes printed in breach notices
#: (``/verify``), the DKIM signatures of notices sent. Integrator round 70: ``backup``
#: left them behind and a restored home made new ones, so every notice already sent
#: failed its check at ``/verify`` (a patient told to trust only a code that checks was
#: told the genuine notice was not).
ID_TOKEN_KEY = "id-token.pem"  # noqa: S105 - a file name
NOTICE_CODES = "notice-codes.key"
DKIM_KEY = "dkim.pem"
SEGMENTS = "segments"

_TABLES: dict[str, LedgerTables] = {AUDIT_LEDGER: audit_tables, UNWRAP_LEDGER: unwrap_tables}


class BackupFailed(RuntimeError):
    """The backup could not be taken whole; what was written is not a backup."""


@dataclass(frozen=True)
class Restored:
    home: Path
    manifest: Manifest
    reports: list[VerifyReport]

    @property
    def ok(self) -> bool:
        return all(report.ok for report in self.reports)


def _empty_directory(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupFailed(f"{what} {path} exists and is not empty: choose a new directory")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def take_backup(
    settings: Settings, destination: Path, keys_destination: Path | None, by: str
) -> Manifest:
    """Copy the live data directory of ``settings`` into ``destination`` (data) and
    ``keys_destination`` (key files; default ``destination/keys``), as the module says."""
    keys_destination = keys_destination or destination / "keys"
    _empty_directory(destination, "backup directory")
    _empty_directory(keys_destination, "keys directory")
    services = build_services(settings)
    try:
        services.audit.record(
            [
                AuditEvent(
                    Tag.ADMIN_BACKUP_TAKEN,
                    Outcome.SUCCESS,
                    services.now_us(),
                    principal=by,
                    reason="backup",
                )
            ]
        )
        for ledger in services.ledgers():
            ledger.checkpoints.make("backup")
        if settings.is_sqlite:
            files, heads, versions = _copy_sqlite(settings, destination)
        else:
            files, heads, versions = _dump_postgres(settings, destination)
        notes = {name: _witness(ledger, heads[name]) for name, ledger in _named(services)}
        key_files = _copy_key_files(settings, keys_destination, versions)
    finally:
        services.close()
    manifest = Manifest(
        created=fhir_instant(utc_now()),
        backend="sqlite" if settings.is_sqlite else "postgresql",
        key_provider=settings.key_provider,
        ledgers=notes,
        files=files,
        key_files=key_files,
        kek_versions=versions,
        schema=None,
    )
    manifest.write(destination)
    return manifest


def _named(services: Services) -> list[tuple[str, Ledger]]:
    return [(AUDIT_LEDGER, services.audit_ledger), (UNWRAP_LEDGER, services.unwrap_ledger)]


def _witness(ledger: Ledger, head: tuple[int, bytes]) -> LedgerHead:
    size, root = head
    live_root, note, witnessed = ledger.checkpoints.witness_size(size)
    if live_root != root:
        raise BackupFailed(
            f"the live {ledger.store.name} ledger does not extend the copy at size {size}: "
            "its history changed while the backup ran; run `carevault audit verify`"
        )
    return LedgerHead(size, root.hex(), note, witnessed)


def _heads(engine: Engine, names: list[str]) -> dict[str, tuple[int, bytes]]:
    return {name: LedgerStore(engine, _TABLES[name], name).head() for name in names}


def _kek_versions(engine: Engine) -> list[int]:
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(data_key.c.kek_version)
            .where(data_key.c.wrapped.is_not(None))
            .group_by(data_key.c.kek_version)
        ).all()
    return sorted(int(row[0]) for row in rows if row[0] is not None)


def _copy_sqlite(
    settings: Settings, destination: Path
) -> tuple[dict[str, str], dict[str, tuple[int, bytes]], list[int]]:
    records, keys = destination / RECORDS_COPY, destination / KEYS_COPY
    # Records first, then keys: a key is created before the first record it seals.
    copy_sqlite(sqlite_path(settings.resolved_database_url), records)
    copy_sqlite(sqlite_path(settings.resolved_keys_database_url), keys)
    records_engine = make_engine(f"sqlite:///{records}")
    keys_engine = make_engine(f"sqlite:///{keys}")
    try:
        heads = _heads(records_engine, [AUDIT_LEDGER]) | _heads(keys_engine, [UNWRAP_LEDGER])
        versions = _kek_versions(keys_engine)
        with read_transaction(records_engine) as connection:
            segments = [
                str(row[0]) for row in connection.execute(select(ledger_segment.c.file_name))
            ]
    finally:
        records_engine.dispose()
        keys_engine.dispose()
    for path in (records, keys):
        seal_sqlite(path)
    files = {path.name: file_digest(path) for path in (records, keys)}
    return files | _copy_segments(settings, destination, segments), heads, versions


def _copy_segments(settings: Settings, destination: Path, names: list[str]) -> dict[str, str]:
    """The sealed Parquet segments the copy names (sealed files are never rewritten, so
    copying them after the snapshot is as consistent as the snapshot)."""
    copied: dict[str, str] = {}
    for name in names:
        target = destination / SEGMENTS / Path(name).name
        target.parent.mkdir(exist_ok=True, mode=0o700)
        shutil.copyfile(settings.resolved_segments_dir / Path(name).name, target)
        target.chmod(0o600)
        copied[f"{SEGMENTS}/{target.name}"] = file_digest(target)
    return copied


def _dump_postgres(
    settings: Settings, destination: Path
) -> tuple[dict[str, str], dict[str, tuple[int, bytes]], list[int]]:
    records_url = settings.resolved_database_url
    keys_url = settings.resolved_keys_database_url
    shared = keys_url == records_url
    heads: dict[str, tuple[int, bytes]] = {}
    versions: list[int] = []
    files: dict[str, str] = {}
    segments: list[str] = []
    targets = [(records_url, RECORDS_DUMP, [AUDIT_LEDGER] + ([UNWRAP_LEDGER] if shared else []))]
    if not shared:
        targets.append((keys_url, KEYS_DUMP, [UNWRAP_LEDGER]))
    for url, name, ledgers in targets:
        with exported_snapshot(url) as (snapshot, connection):
            for ledger in ledgers:
                heads[ledger] = _snapshot_head(connection, ledger)
            if AUDIT_LEDGER in ledgers:
                segments = [
                    str(row[0])
                    for row in connection.execute(
                        f"SELECT file_name FROM {ledger_segment.name}"  # noqa: S608 - fixed
                    ).fetchall()
                ]
            if UNWRAP_LEDGER in ledgers:
                found = connection.execute(
                    "SELECT DISTINCT kek_version FROM data_key "
                    "WHERE wrapped IS NOT NULL AND kek_version IS NOT NULL"
                ).fetchall()
                versions = sorted(int(row[0]) for row in found)
            dump_postgres(url, destination / name, snapshot)
        files[name] = file_digest(destination / name)
    return files | _copy_segments(settings, destination, segments), heads, versions


def _snapshot_head(connection: psycopg.Connection[Any], ledger: str) -> tuple[int, bytes]:
    table = _TABLES[ledger].head.name
    row = connection.execute(
        f"SELECT size, root FROM {table} WHERE ledger = %s",  # noqa: S608 - a fixed table
        (ledger,),
    ).fetchone()
    return (0, EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))


def _key_sources(settings: Settings) -> dict[str, Path]:
    sources = {
        TOKEN_KEY: settings.resolved_token_key_path,
        LEDGER_KEY: settings.resolved_ledger_key_path,
    }
    for name, path in _handed_out_keys(settings).items():
        if path.exists():
            sources[name] = path
    if settings.key_provider == "local":
        sources[KEYRING] = settings.resolved_keyring_path
    # The erasures' register travels with the keys it speaks of (a backup's own: restored
    # with it, it names the erasures made before the backup was taken).
    register = register_path(settings.resolved_keyring_path)
    if register.exists():
        sources[SHREDS] = register
    # So does the note of which tables' rows are all sealed (``keys.anchors``).
    anchors = anchors_path(settings.resolved_keyring_path)
    if anchors.exists():
        sources[ANCHORS] = anchors
    # And the containment measures' register (``keys.measures``): a backup's own names the
    # measures started before it was taken, as its data does.
    measures = measures_path(settings.resolved_keyring_path)
    if measures.exists():
        sources[MEASURES] = measures
    # And the revocations' register (``keys.revocations``): a backup's own names the
    # sessions and apps revoked before it was taken, so a row written back in the
    # restored database does not bring one back.
    revocations = revocations_path(settings.resolved_keyring_path)
    if revocations.exists():
        sources[REVOCATIONS] = revocations
    return sources


def _handed_out_keys(settings: Settings) -> dict[str, Path]:
    """Where the keys of ID tokens, notice codes and DKIM signatures live (each made at
    first use, so a home may lack some)."""
    return {
        ID_TOKEN_KEY: settings.resolved_id_token_key_path,
        NOTICE_CODES: settings.home / "keys" / NOTICE_CODES,
        DKIM_KEY: settings.resolved_dkim_key_path,
    }


def keyring_versions(path: Path) -> set[int]:
    try:
        document = json.loads(path.read_text())
        return {int(version) for version in document["keks"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _copy_key_files(settings: Settings, target: Path, versions: list[int]) -> dict[str, str]:
    sources = _key_sources(settings)
    for _attempt in range(3):
        for name, source in sources.items():
            write_private(target / name, source.read_bytes())
        if settings.key_provider != "local":
            break
        missing = set(versions) - keyring_versions(target / KEYRING)
        if not missing:
            break
    else:
        raise BackupFailed(
            f"the keyring no longer holds KEK version(s) {sorted(missing)} that the copied data "
            "keys need (a version was destroyed while the backup ran): take the backup again"
        )
    return {name: file_digest(target / name) for name in sources}


# --- restore -------------------------------------------------------------------------------


def restore_backup(source: Path, settings: Settings, keys_source: Path | None, by: str) -> Restored:
    """Put the backup in ``source`` into the new data directory ``settings.home``, then
    verify both ledgers against their checkpoints and the witness."""
    keys_source = keys_source or source / "keys"
    manifest = Manifest.read(source)
    check_files(source, manifest.files, "backup")
    check_files(keys_source, manifest.key_files, "keys")
    if manifest.key_provider != settings.key_provider:
        raise BackupInvalid(
            f"the backup was taken with the {manifest.key_provider} key provider; "
            f"these settings use {settings.key_provider}"
        )
    if manifest.key_provider == "local":
        missing = set(manifest.kek_versions) - keyring_versions(keys_source / KEYRING)
        if missing:
            raise BackupInvalid(
                f"the keyring does not hold KEK version(s) {sorted(missing)} that this backup's "
                "data keys need: they were destroyed (after an erasure), or the keyring is another"
            )
    _empty_directory(settings.home, "data directory")
    if manifest.backend == "sqlite":
        if not settings.is_sqlite:
            raise BackupInvalid("a SQLite backup restores into a SQLite data directory")
        _place(source / RECORDS_COPY, sqlite_path(settings.resolved_database_url))
        _place(source / KEYS_COPY, sqlite_path(settings.resolved_keys_database_url))
    else:
        if settings.is_sqlite:
            raise BackupInvalid("a PostgreSQL backup needs CAREVAULT_DATABASE_URL set")
        _refuse_occupied(settings.resolved_database_url)
        restore_postgres(settings.resolved_database_url, source / RECORDS_DUMP)
        if KEYS_DUMP in manifest.files:
            restore_postgres(settings.resolved_keys_database_url, source / KEYS_DUMP)
    for name in manifest.files:
        if name.startswith(f"{SEGMENTS}/"):
            _place(source / name, settings.resolved_segments_dir / Path(name).name)
    # Only the key files the backup holds: one taken before the first erasure (or before
    # rows were sealed) has no register (no note), and a custodian's folder kept apart from
    # the data directory keeps the ones it has (review of round 69: the restore stopped,
    # half done, on a file the backup never had).
    destinations = {
        TOKEN_KEY: settings.resolved_token_key_path,
        LEDGER_KEY: settings.resolved_ledger_key_path,
        KEYRING: settings.resolved_keyring_path,
        SHREDS: register_path(settings.resolved_keyring_path),
        ANCHORS: anchors_path(settings.resolved_keyring_path),
        **_handed_out_keys(settings),
        MEASURES: measures_path(settings.resolved_keyring_path),
        REVOCATIONS: revocations_path(settings.resolved_keyring_path),
    }
    for name, path in destinations.items():
        if name in manifest.key_files and (name != KEYRING or settings.key_provider == "local"):
            write_private(path, (keys_source / name).read_bytes())
    _store_backup_checkpoints(settings, manifest)
    services = build_services(settings, migrate=True)
    try:
        services.audit.record(
            [
                AuditEvent(
                    Tag.ADMIN_RESTORED,
                    Outcome.SUCCESS,
                    services.now_us(),
                    principal=by,
                    reason="restore",
                    detail={"backup_created": manifest.created},
                )
            ]
        )
        reports = [services.verify_runs.verify(ledger, by) for ledger in services.ledgers()]
    finally:
        services.close()
    return Restored(settings.home, manifest, reports)


def _place(copy: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.parent.chmod(0o700)
    shutil.copyfile(copy, target)
    target.chmod(0o600)


def _refuse_occupied(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.has_table(connection, audit_tables.head.name):
                raise BackupInvalid(
                    "the target database already holds CareVault tables: restore into an "
                    "empty database"
                )
    finally:
        engine.dispose()


def _store_backup_checkpoints(settings: Settings, manifest: Manifest) -> None:
    """The witnessed checkpoints of the copy's heads become checkpoints of the restored
    ledgers (the schema first brought up to date, so the tables are there)."""
    services = build_services(settings, migrate=True)
    try:
        engines = {AUDIT_LEDGER: services.engine, UNWRAP_LEDGER: services.key_engine}
        for name, head in manifest.ledgers.items():
            table = _TABLES[name].checkpoint
            with write_transaction(engines[name]) as connection:
                present = connection.execute(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.ledger == name, table.c.note == head.note)
                ).scalar_one()
                if not present:
                    connection.execute(
                        insert(table).values(
                            ledger=name,
                            size=head.size,
                            root=bytes.fromhex(head.root),
                            at_us=services.now_us(),
                            reason="backup",
                            note=head.note,
                        )
                    )
    finally:
        services.close()
