"""Writes: every operation of a request in one database transaction.

Each new version is sealed under its patient's data key (a new patient gets a
new key and a new random pseudonym), its search tokens replace the previous
version's, and ``before_commit`` lets the gate append the audit entries in the
same transaction, so a write and its audit record commit together or not at all.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, TypeAlias

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update

from carevault.clock import fhir_instant, from_micros, to_micros
from carevault.db import (
    driver_all,
    driver_executemany,
    driver_executemany_tuples,
    driver_scalar,
    hold_record_writes,
    write_transaction,
)
from carevault.fhir import jsonio
from carevault.fhir.derived import (
    Derived,
    Targets,
    clear_date_values,
    clinic_targets,
    patient_targets,
)
from carevault.fhir.indexing import SENSITIVITY, index_term_rows, sensitivity_term
from carevault.fhir.kinship import patient_terms
from carevault.fhir.registry import ResourceType
from carevault.keys.envelope import RECORD_FORM, record_aad
from carevault.vault.records import (
    Erased,
    Head,
    Method,
    MissingReference,
    ReferenceConflict,
    VersionConflict,
    WriteResult,
    head_from_row,
    not_known,
)
from carevault.vault.store import Vault
from carevault.vault.tables import (
    directory_written,
    patient_kin,
    patient_kin_replaced,
    resource_head,
    resource_version,
    search_date,
    search_token,
    search_token_list,
)
from carevault.vault.tokenlist import pack, unpack

_HEAD_COLUMNS = (
    "version_id",
    "last_updated_us",
    "deleted",
    "patient_pseudonym",
    "clinic_id",
    "status",
)
#: Built once: a head is written for every resource, and building a statement per row
#: cost more than the row (bulk loads write thousands a second).
_INSERT_HEAD = (
    insert(resource_head)
    .values(
        resource_type=bindparam("resource_type"),
        resource_id=bindparam("resource_id"),
        **{name: bindparam(name) for name in _HEAD_COLUMNS},
    )
    .returning(resource_head.c.row_id)
)
#: A bulk load's new heads, inserted together with the row ids given them (``_RowIds``).
_HEAD_ORDER = ("row_id", "resource_type", "resource_id", *_HEAD_COLUMNS)
_INSERT_HEADS = insert(resource_head).values(**{name: bindparam(name) for name in _HEAD_ORDER})
_NEXT_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('resource_head', 'row_id')) "
    "FROM generate_series(1, :wanted)"
)
#: Heads read by id in chunks of at most this many (a statement per power of two up to it).
_HEADS_CHUNK = 512


@functools.cache
def _heads_by_id(count: int, lock: bool) -> Any:
    """The heads of ``count`` ids of one type (``head_id_0`` ...), built once per size: an
    expanding ``IN`` had SQLAlchemy build the SQL again on every execution."""
    statement = select(*resource_head.columns).where(
        resource_head.c.resource_type == bindparam("head_type"),
        resource_head.c.resource_id.in_([bindparam(f"head_id_{n}") for n in range(count)]),
    )
    return statement.with_for_update() if lock else statement


def read_heads(
    connection: Connection, resource_type: str, ids: Sequence[str], *, lock: bool = False
) -> dict[str, Head]:
    """The stored heads of ``ids`` (of ``resource_type``), by id, on the driver's cursor;
    ``lock``: FOR UPDATE (PostgreSQL)."""
    found: dict[str, Head] = {}
    for start in range(0, len(ids), _HEADS_CHUNK):
        chunk = ids[start : start + _HEADS_CHUNK]
        # Padded to a power of two with the last id again: few statements, each kept.
        size = 1 << (len(chunk) - 1).bit_length()
        params: dict[str, Any] = {"head_type": resource_type}
        last = len(chunk) - 1
        for n in range(size):
            params[f"head_id_{n}"] = chunk[min(n, last)]
        for row in driver_all(connection, _heads_by_id(size, lock), params):
            (row_id, rt, rid, version, updated, deleted, pseudonym, clinic, status) = row
            found[rid] = Head(
                row_id, rt, rid, version, updated, bool(deleted), pseudonym, clinic, status
            )
    return found


_UPDATE_HEAD = (
    update(resource_head)
    .where(resource_head.c.row_id == bindparam("head_row_id"))
    .values(**{name: bindparam(name) for name in _HEAD_COLUMNS})
)
_VERSION_ORDER = tuple(column.name for column in resource_version.columns)
_INSERT_VERSION = insert(resource_version).values(
    **{name: bindparam(name) for name in _VERSION_ORDER}
)
_INSERT_DATE = insert(search_date).values(
    **{name: bindparam(name) for name in ("row_id", "param", "low_us", "high_us")}
)
_INSERT_KIN = insert(patient_kin).values(
    **{name: bindparam(name) for name in ("row_id", "kind", "token", "patient_pseudonym")}
)
_INSERT_TOKEN = insert(search_token).values(token=bindparam("token"), row_id=bindparam("row_id"))
_DELETE_TOKEN = delete(search_token).where(
    search_token.c.token == bindparam("token"), search_token.c.row_id == bindparam("row_id")
)
_INSERT_TOKEN_LIST = insert(search_token_list).values(
    row_id=bindparam("row_id"), tokens=bindparam("tokens")
)
# The tokens it removes come back: those the new version does not carry were replaced.
_DELETE_KIN = (
    delete(patient_kin)
    .where(patient_kin.c.row_id == bindparam("kin_row_id"))
    .returning(patient_kin.c.kind, patient_kin.c.token)
)
_INSERT_KIN_REPLACED = insert(patient_kin_replaced).values(
    **{name: bindparam(name) for name in ("patient_pseudonym", "kind", "token", "replaced_us")}
)


#: ``If-Match: *`` (RFC 9110 13.1.1: true if the target has any current representation).
#: Versions count from 1, so no version is 0.
ANY_VERSION: Final = 0

#: What an ``If-Match`` names: one version (``ANY_VERSION`` for ``*``), or several (a
#: list of ETags, RFC 9110 13.1.1: true if any of them names the current version).
IfMatch: TypeAlias = int | frozenset[int]


def names_current(if_match: IfMatch, version_id: int) -> bool:
    """Whether ``if_match`` holds for a record whose current version is ``version_id``."""
    if isinstance(if_match, frozenset):
        return version_id in if_match
    return if_match in (ANY_VERSION, version_id)


@dataclass(frozen=True)
class Put:
    """Create or update ``resource_type/resource_id`` with ``resource`` (already valid FHIR).

    ``if_match`` is the version (or versions) the client believes current (412 if not);
    ``fresh`` says the id was just generated by the server, so no row can exist.
    """

    resource_type: ResourceType
    resource_id: str
    resource: dict[str, Any]
    if_match: IfMatch | None = None
    fresh: bool = False
    #: The versions ``If-None-Match`` names (``ANY_VERSION`` for ``*``): 412 if the
    #: current version is one of them (RFC 9110 13.1.2); None when it was not sent.
    if_none_match: frozenset[int] | None = None
    #: Where the record belongs, when the gate decided it (an imported record that names
    #: an outside organization); otherwise derived from the resource's references.
    clinic_id: str | None = None
    #: The resource's search terms, marker and categories, when worked out already from
    #: this very resource (a bulk load's checking processes); otherwise worked out here.
    derived: Derived | None = None
    #: The HTTP method of the interaction, stored with the version for its history: PUT
    #: for an update even where it creates, PATCH for a patch. None (a load by the system:
    #: bulk import, seeding, a transfer): POST where the write creates the record, PUT
    #: where it replaces one.
    method: Method | None = None
    #: A conditional create's identifier (``If-None-Exist: identifier=...``): the blind
    #: tokens a record of the type holds, every one of them, when it is the match the
    #: create looked for. The gate refuses the create (``MatchedMeanwhile``) if a record
    #: holds them by the time it is written: the search that found none ran before.
    unless_held: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Delete:
    resource_type: ResourceType
    resource_id: str
    if_match: IfMatch | None = None
    #: As ``Put.if_none_match``: 412 if the current version is one of them (RFC 9110
    #: 13.1.2, 13.2.1); a record with no current version is deleted as without it.
    if_none_match: frozenset[int] | None = None


Operation = Put | Delete
BeforeCommit = Callable[[Connection, list[WriteResult]], None]
#: Called for each operation once the patient and clinic it touches are known, before
#: anything is sealed or stored, inside the transaction: raising refuses the whole request.
#: It gets the head the operation would write and the head stored now (None if there is
#: none; for a Put, a deleted head too): a change must be allowed on both, so that what
#: is sent can never authorise a change to what is stored.
Authorize = Callable[[Connection, Operation, Head, Head | None], None]
#: Called after each operation is stored, inside the transaction, so that what is
#: derived from it (care relationships) is visible to the operations after it.
AfterWrite = Callable[[Connection, WriteResult], None]


def apply_writes(
    vault: Vault,
    operations: Sequence[Operation],
    *,
    principal: str,
    purpose: str,
    before_commit: BeforeCommit | None = None,
    authorize: Authorize | None = None,
    after_write: AfterWrite | None = None,
    bulk: bool = False,
) -> list[WriteResult]:
    """``bulk``: a load by the system in which nothing reads the transaction's heads back
    from the database before ``before_commit`` (``authorize`` and ``after_write`` read
    nothing): the new heads are then inserted together rather than one by one."""
    created_keys: list[str] = []
    try:
        with write_transaction(vault.engine) as connection:
            # Stamped once this transaction holds the record-writes lock (``db.settled_now``):
            # a write stamped before an export's transactionTime has committed by then.
            hold_record_writes(connection)
            now_us = to_micros(vault.clock())
            writer = _Writer(
                vault, connection, now_us, principal, purpose, created_keys, authorize, bulk=bulk
            )
            results = []
            writer.prefetch(operations)
            for operation in operations:
                result = writer.apply(operation)
                if after_write is not None:
                    after_write(connection, result)
                results.append(result)
            writer.flush()
            if before_commit is not None:
                before_commit(connection, results)
    except BaseException:
        # The key store is a separate database: keys made for patients whose records
        # were rolled back are removed again (they never sealed anything that was kept).
        if created_keys and vault.keys is not None:
            vault.keys.discard_unused(created_keys)
        raise
    return results


class _RowIds:
    """Row ids for the heads a bulk load inserts together. On SQLite (one writer at a
    time: the transaction holds the write lock) the ones after the largest, as SQLite
    would give them; on PostgreSQL drawn from the column's sequence, as many at a time as
    the batch still needs, so that concurrent writers never get the same."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._next: int | None = None
        self._drawn: list[int] = []

    def take(self, wanted: int) -> int:
        connection = self.connection
        if connection.dialect.name == "sqlite":
            if self._next is None:
                largest = connection.execute(
                    select(func.coalesce(func.max(resource_head.c.row_id), 0))
                ).scalar_one()
                self._next = int(largest) + 1
            taken = self._next
            self._next += 1
            return taken
        if not self._drawn:
            rows = connection.execute(_NEXT_IDS, {"wanted": max(wanted, 1)})
            self._drawn = sorted((int(row[0]) for row in rows), reverse=True)
        return self._drawn.pop()


class _Writer:
    def __init__(
        self,
        vault: Vault,
        connection: Connection,
        now_us: int,
        principal: str,
        purpose: str,
        created_keys: list[str],
        authorize: Authorize | None,
        *,
        bulk: bool = False,
    ) -> None:
        self.vault = vault
        self.connection = connection
        self.now_us = now_us
        self.principal = principal
        self.purpose = purpose
        self.created_keys = created_keys
        self.authorize = authorize
        # A bulk load's new heads wait here (row id -> values in ``_HEAD_ORDER``) to be
        # inserted together before anything else is; ``_new_heads``: how many the request
        # may still make (a bound, for the ids drawn from PostgreSQL's sequence).
        self._bulk_ids = _RowIds(connection) if bulk else None
        self._pending_heads: dict[int, list[Any]] = {}
        self._new_heads = 0
        # Versions and search tokens are written in one executemany each at the end:
        # nothing in the transaction reads them back before it commits.
        # Rows in ``_VERSION_ORDER``: a dict per version cost as much as inserting it.
        self._versions: list[tuple[Any, ...]] = []
        self._tokens: dict[int, set[bytes]] = {}
        self._dates: dict[int, list[dict[str, Any]]] = {}
        self._kin: dict[int, list[dict[str, Any]]] = {}
        # Kinship tokens an update or deletion of a Patient took away (rows of
        # ``patient_kin_replaced``): none for a new patient, so a bulk load adds nothing.
        self._kin_replaced: list[dict[str, Any]] = []
        #: Directory records written by this request, by type (``directory_written``).
        self._directory: dict[str, list[str]] = {}
        # Heads looked up as reference targets (a patient, a schedule), kept for the rest
        # of the transaction: a seeding batch refers to the same few over and over.
        self._targets: dict[tuple[str, str], Head | None] = {}
        # Keys whose entry in ``_targets`` is current and locked (prefetched or written).
        self._prefetched: set[tuple[str, str]] = set()
        # Pseudonyms and data keys of the request's new patients, made together in one
        # key-store transaction (a bulk load brings hundreds of new patients at once).
        self._new_patients: dict[str, tuple[str, bytes | None]] = {}
        # Every version of the transaction carries the same lastUpdated.
        self._last_updated = fhir_instant(from_micros(now_us))
        # Data keys fetched for the transaction (one key-service call per patient of a
        # batch, not one per record), and blind tokens worked out in it (the codes,
        # statuses and references of a batch repeat record after record). Both die with
        # the transaction.
        self._keys: dict[str, bytes | None] = {}
        self._token_memo: dict[tuple[str, str, str, bool], bytes] = {}
        # A sealer per data key of the transaction (its cipher made once).
        self._sealers: dict[str, Callable[[bytes, bytes], bytes]] = {}
        # The references of each record that say whose it is and where it belongs, by the
        # operation's id (operations live as long as the transaction): read once, not once
        # for the prefetch, once for the patient and once for the clinic.
        self._links: dict[int, tuple[Targets, tuple[Targets, ...]]] = {}

    def _targets_of(self, operation: Put) -> tuple[Targets, tuple[Targets, ...]]:
        """(patient references, clinic references path by path) of ``operation``'s
        resource: as its checking worked them out, or read from it here."""
        found = self._links.get(id(operation))
        if found is None:
            derived = operation.derived
            rt = operation.resource_type
            found = self._links[id(operation)] = (
                (derived.patients, derived.clinics)
                if derived is not None
                else (
                    patient_targets(rt, operation.resource),
                    clinic_targets(rt, operation.resource),
                )
            )
        return found

    def _target(self, resource_type: str, resource_id: str) -> Head | None:
        key = (resource_type, resource_id)
        if key not in self._targets:
            self._flush_heads()
            row = self.connection.execute(
                select(resource_head).where(
                    resource_head.c.resource_type == resource_type,
                    resource_head.c.resource_id == resource_id,
                )
            ).first()
            self._targets[key] = None if row is None else head_from_row(row._mapping)
        return self._targets[key]

    def _flush_heads(self) -> None:
        """Insert the bulk load's waiting heads (before anything reads resource_head)."""
        if self._pending_heads:
            driver_executemany_tuples(
                self.connection,
                _INSERT_HEADS,
                _HEAD_ORDER,
                [tuple(values) for values in self._pending_heads.values()],
            )
            self._pending_heads = {}

    def flush(self) -> None:
        self._flush_heads()
        driver_executemany_tuples(self.connection, _INSERT_VERSION, _VERSION_ORDER, self._versions)
        self._versions = []
        store_tokens(self.connection, self._tokens)
        self._tokens = {}
        dated = [row for rows_of in self._dates.values() for row in rows_of]
        driver_executemany(self.connection, _INSERT_DATE, dated)
        self._dates = {}
        kin = [row for rows_of in self._kin.values() for row in rows_of]
        driver_executemany(self.connection, _INSERT_KIN, kin)
        self._kin = {}
        driver_executemany(self.connection, _INSERT_KIN_REPLACED, self._kin_replaced)
        self._kin_replaced = []
        if self._directory:
            mark_directory(self.connection, self._directory, self.principal, self.now_us)
            self._directory = {}

    def apply(self, operation: Operation) -> WriteResult:
        if isinstance(operation, Delete):
            return self._delete(operation)
        return self._put(operation)

    def prefetch(self, operations: Sequence[Operation]) -> None:
        """Read (and on PostgreSQL lock) the current heads of every resource the request
        writes, a few queries for the whole batch instead of one per resource."""
        wanted: dict[str, set[str]] = {}
        for operation in operations:
            if not (isinstance(operation, Put) and operation.fresh):
                wanted.setdefault(operation.resource_type.name, set()).add(operation.resource_id)
        lock = self.connection.dialect.name == "postgresql"
        for resource_type, ids in wanted.items():
            ordered = sorted(ids)
            found = read_heads(self.connection, resource_type, ordered, lock=lock)
            for resource_id in ordered:
                self._targets[(resource_type, resource_id)] = found.get(resource_id)
                self._prefetched.add((resource_type, resource_id))
        self._prefetch_targets(operations)
        self._make_patient_keys(operations)
        self._prefetch_keys(operations)
        self._new_heads = sum(
            1
            for operation in operations
            if isinstance(operation, Put)
            and (
                operation.fresh
                or self._targets.get((operation.resource_type.name, operation.resource_id)) is None
            )
        )

    def _prefetch_targets(self, operations: Sequence[Operation]) -> None:
        """The heads the batch's records refer to for their patient and clinic, read
        together (what ``_target`` would otherwise read one query per record)."""
        wanted: dict[str, set[str]] = {}
        for operation in operations:
            if not isinstance(operation, Put):
                continue
            patients, clinics = self._targets_of(operation)
            for target_type, target_id in (*patients, *(pair for path in clinics for pair in path)):
                if target_type in ("Organization", "Practitioner"):
                    continue
                if (target_type, target_id) not in self._targets:
                    wanted.setdefault(target_type, set()).add(target_id)
        for resource_type, ids in wanted.items():
            ordered = sorted(ids)
            found = read_heads(self.connection, resource_type, ordered)
            for resource_id in ordered:
                self._targets[(resource_type, resource_id)] = found.get(resource_id)

    def _prefetch_keys(self, operations: Sequence[Operation]) -> None:
        """The data keys of the stored patients (and of the directory) the request's records
        are sealed under, unwrapped in one key-service call: one read of the wrapped keys
        and one unwrap-log commit for the batch, not one of each per patient (a bulk load
        of one type after another meets every patient again in every file)."""
        vault = self.vault
        if not vault.envelope.encrypted or vault.keys is None:
            return
        wanted: set[str] = set()
        for operation in operations:
            if not isinstance(operation, Put):
                continue
            rt = operation.resource_type
            if rt.is_patient:
                stored = self._targets.get(("Patient", operation.resource_id))
                if stored is not None and stored.patient_pseudonym:
                    wanted.add(vault.key_id_for(stored.patient_pseudonym))
                continue
            patient: Head | None = None
            named = False
            for target_type, target_id in self._targets_of(operation)[0]:
                if target_type == "Patient":
                    patient = self._targets.get(("Patient", target_id))
                    named = True
                    break
            if not named:
                wanted.add(vault.key_id_for(None))
            elif patient is not None and not patient.deleted and patient.patient_pseudonym:
                wanted.add(vault.key_id_for(patient.patient_pseudonym))
        missing = sorted(wanted - self._keys.keys())
        if not missing:
            return
        try:
            self._keys.update(
                vault.data_keys(missing, principal=self.principal, purpose=self.purpose)
            )
        except Erased:
            # A patient's key was shredded: each record asks for its own key as it is
            # written, and only the erased patient's records are refused.
            return

    def _make_patient_keys(self, operations: Sequence[Operation]) -> None:
        new = {
            operation.resource_id
            for operation in operations
            if isinstance(operation, Put)
            and operation.resource_type.is_patient
            and (operation.fresh or self._targets.get(("Patient", operation.resource_id)) is None)
        }
        if len(new) < 2:
            return
        # Random, never derived from identity: the ledger names patients by it.
        pseudonyms = {resource_id: secrets.token_hex(16) for resource_id in sorted(new)}
        vault = self.vault
        keys: dict[str, bytes] = {}
        if vault.envelope.encrypted and vault.keys is not None:
            key_ids = [vault.key_id_for(pseudonym) for pseudonym in pseudonyms.values()]
            self.created_keys.extend(key_ids)
            keys = vault.keys.create_data_keys(key_ids, "patient")
        for resource_id, pseudonym in pseudonyms.items():
            key = keys.get(vault.key_id_for(pseudonym))
            self._new_patients[resource_id] = (pseudonym, key)
            if key is not None:
                self._keys[vault.key_id_for(pseudonym)] = key

    def _current(self, resource_type: str, resource_id: str) -> Head | None:
        key = (resource_type, resource_id)
        if key in self._prefetched:
            return self._targets.get(key)
        self._flush_heads()
        statement = select(resource_head).where(
            resource_head.c.resource_type == resource_type,
            resource_head.c.resource_id == resource_id,
        )
        if self.connection.dialect.name == "postgresql":
            statement = statement.with_for_update()
        row = self.connection.execute(statement).first()
        return None if row is None else head_from_row(row._mapping)

    def _put(self, operation: Put) -> WriteResult:
        rt = operation.resource_type
        current = None if operation.fresh else self._current(rt.name, operation.resource_id)
        version = 1 if current is None else current.version_id + 1
        made = (
            self._new_patients.pop(operation.resource_id, None)
            if rt.is_patient and current is None
            else None
        )
        patients, clinics = self._targets_of(operation)
        pseudonym = made[0] if made is not None else self._pseudonym(rt, patients, current)
        placed_by: tuple[str, str] | None = None
        clinic_id = operation.clinic_id
        if clinic_id is None:
            clinic_id, placed_by = self._clinic(rt, clinics, operation.resource_id)
        if self.authorize is not None:
            self.authorize(
                self.connection,
                operation,
                Head(
                    row_id=current.row_id if current else 0,
                    resource_type=rt.name,
                    resource_id=operation.resource_id,
                    version_id=version,
                    last_updated_us=self.now_us,
                    deleted=False,
                    patient_pseudonym=pseudonym,
                    clinic_id=clinic_id,
                    status=None,
                ),
                # A deleted record is still someone's: writing it again is judged against
                # what was stored (its patient and clinic), as any update is, since the
                # version written keeps the deleted record's patient (a Patient its
                # pseudonym, registrations and history).
                current,
            )
        # After the write is allowed: a caller who may not write the record must not
        # learn its current version from which If-Match is refused (412) and which not.
        _check_version(current, operation.if_match, rt.name, operation.resource_id)
        _check_not_current(current, operation.if_none_match, rt.name, operation.resource_id)
        key_id = self.vault.key_id_for(pseudonym)
        body = _with_meta(operation.resource, operation.resource_id, version, self._last_updated)
        sealer = self._sealers.get(key_id)
        if sealer is None:
            sealer = self._sealers[key_id] = self.vault.envelope.sealer(
                made[1]
                if made is not None
                else self._key(key_id, new_patient=rt.is_patient and current is None),
                form=RECORD_FORM,
            )
        # Bound to the patient and clinic stored beside it in the clear (what the gate
        # decides on): a database writer moving it by those columns gets a record that
        # does not open (adversary round 69).
        sealed = sealer(
            record_aad(rt.name, operation.resource_id, version, key_id, pseudonym, clinic_id),
            body,
        )
        status = operation.resource.get("status")
        values: dict[str, Any] = {
            "version_id": version,
            "last_updated_us": self.now_us,
            "deleted": False,
            "patient_pseudonym": pseudonym,
            "clinic_id": clinic_id,
            "status": status if isinstance(status, str) else None,
        }
        row_id = self._store_head(rt.name, operation.resource_id, current, values)
        if pseudonym is None and rt.name not in _NOT_PLACES:
            self._directory.setdefault(rt.name, []).append(operation.resource_id)
        method = operation.method or (Method.POST if current is None else Method.PUT)
        self._store_version(
            rt.name,
            operation.resource_id,
            version,
            False,
            key_id,
            sealed,
            pseudonym,
            clinic_id,
            method,
        )
        self._replace_tokens(
            rt,
            row_id,
            operation.resource,
            pseudonym,
            had_tokens=current is not None,
            derived=operation.derived,
        )
        head = Head(
            row_id=row_id, resource_type=rt.name, resource_id=operation.resource_id, **values
        )
        self._targets[(rt.name, operation.resource_id)] = head
        return WriteResult(
            head=head,
            created=current is None or current.deleted,
            body=body,
            resource=operation.resource,
            placed_by=placed_by if pseudonym is not None else None,
        )

    def _delete(self, operation: Delete) -> WriteResult:
        rt = operation.resource_type
        current = self._current(rt.name, operation.resource_id)
        if current is None:
            raise not_known(rt.name, operation.resource_id)
        if self.authorize is not None:
            self.authorize(
                self.connection, operation, current, None if current.deleted else current
            )
        _check_version(current, operation.if_match, rt.name, operation.resource_id)
        _check_not_current(current, operation.if_none_match, rt.name, operation.resource_id)
        if current.deleted:
            return WriteResult(head=current, created=False, body=None)
        self._flush_heads()
        if rt.is_patient and self._patient_still_referenced(current.patient_pseudonym):
            raise ReferenceConflict(
                f"Patient/{operation.resource_id} still has records; delete those first"
            )
        version = current.version_id + 1
        values = {"version_id": version, "last_updated_us": self.now_us, "deleted": True}
        self.connection.execute(
            update(resource_head).where(resource_head.c.row_id == current.row_id).values(**values)
        )
        self._store_version(
            rt.name,
            operation.resource_id,
            version,
            True,
            None,
            None,
            current.patient_pseudonym,
            current.clinic_id,
            Method.DELETE,
        )
        drop_tokens(self.connection, [current.row_id])
        self.connection.execute(delete(search_date).where(search_date.c.row_id == current.row_id))
        if rt.is_patient:
            # Deleted, it carries none: every token it held is replaced.
            held = self._held_kin(current.row_id, stored=True)
            self._note_replaced(current.patient_pseudonym, held, [])
        self._tokens.pop(current.row_id, None)
        self._dates.pop(current.row_id, None)
        self._kin.pop(current.row_id, None)
        head = Head(
            row_id=current.row_id,
            resource_type=rt.name,
            resource_id=operation.resource_id,
            version_id=version,
            last_updated_us=self.now_us,
            deleted=True,
            patient_pseudonym=current.patient_pseudonym,
            clinic_id=current.clinic_id,
            status=current.status,
        )
        self._targets[(rt.name, operation.resource_id)] = head
        return WriteResult(head=head, created=False, body=None)

    def _patient_still_referenced(self, pseudonym: str | None) -> bool:
        return (
            self.connection.execute(
                select(resource_head.c.row_id)
                .where(
                    resource_head.c.patient_pseudonym == pseudonym,
                    resource_head.c.resource_type != "Patient",
                    resource_head.c.deleted.is_(False),
                )
                .limit(1)
            ).first()
            is not None
        )

    def _pseudonym(self, rt: ResourceType, patients: Targets, current: Head | None) -> str | None:
        if rt.is_patient:
            if current is not None and current.patient_pseudonym:
                return current.patient_pseudonym
            # Random, never derived from identity: the ledger names patients by it.
            return secrets.token_hex(16)
        for target_type, target_id in patients:
            if target_type != "Patient":
                continue
            patient = self._target("Patient", target_id)
            if patient is None or patient.deleted:
                raise MissingReference(
                    f"{rt.name} refers to Patient/{target_id}, which does not exist"
                )
            return patient.patient_pseudonym
        return None

    def _key(self, key_id: str, *, new_patient: bool) -> bytes | None:
        vault = self.vault
        if not vault.envelope.encrypted or vault.keys is None:
            return None
        if new_patient:
            self.created_keys.append(key_id)
            made = self._keys[key_id] = vault.keys.create_data_key(key_id, "patient")
            return made
        if key_id not in self._keys:
            keys = vault.data_keys([key_id], principal=self.principal, purpose=self.purpose)
            self._keys[key_id] = keys[key_id]
        return self._keys[key_id]

    def _clinic(
        self, rt: ResourceType, clinics: tuple[Targets, ...], resource_id: str
    ) -> tuple[str | None, tuple[str, str] | None]:
        """The record's clinic, and the directory record (a room, a role) that placed it
        there when it names its clinic only through one (None: it names the clinic, or a
        record of its patient does)."""
        for path, targets in zip(rt.clinic_paths, clinics, strict=True):
            if path == "id":
                return resource_id, None
            for target_type, target_id in targets:
                if target_type == "Organization":
                    return target_id, None
                if target_type in ("Patient", "Practitioner"):
                    continue
                found = self._target(target_type, target_id)
                # A patient's deleted record (a visit) places nothing, as an id never
                # used does not: its clinic would refuse the write (403 where an unknown
                # id is written), telling who may not read it (a read answers 404) that
                # the id was a record, and another clinic's (adversary round 54). A
                # deleted directory record (a Location) is no one's secret: it places.
                if found is None or (found.deleted and found.patient_pseudonym is not None):
                    continue
                if found.clinic_id:
                    directory = found.patient_pseudonym is None
                    return found.clinic_id, (target_type, target_id) if directory else None
        return None, None

    def _store_head(
        self, resource_type: str, resource_id: str, current: Head | None, values: dict[str, Any]
    ) -> int:
        if current is not None:
            waiting = self._pending_heads.get(current.row_id)
            if waiting is not None:
                # Written earlier in this same bulk load, not inserted yet.
                waiting[3:] = [values[name] for name in _HEAD_COLUMNS]
                return current.row_id
            self.connection.execute(_UPDATE_HEAD, {"head_row_id": current.row_id, **values})
            return current.row_id
        if self._bulk_ids is not None:
            row_id = self._bulk_ids.take(self._new_heads)
            self._new_heads -= 1
            # The values looked up in C (``map``): a generator over the names cost more
            # than the list (a head for every record of a bulk load).
            self._pending_heads[row_id] = [
                row_id,
                resource_type,
                resource_id,
                *map(values.__getitem__, _HEAD_COLUMNS),
            ]
            return row_id
        inserted = driver_scalar(
            self.connection,
            _INSERT_HEAD,
            {"resource_type": resource_type, "resource_id": resource_id, **values},
        )
        return int(inserted)

    def _store_version(
        self,
        resource_type: str,
        resource_id: str,
        version: int,
        deleted: bool,
        key_id: str | None,
        sealed: bytes | None,
        pseudonym: str | None,
        clinic_id: str | None,
        method: Method,
    ) -> None:
        self._versions.append(
            (
                resource_type,
                resource_id,
                version,
                self.now_us,
                deleted,
                key_id,
                sealed,
                pseudonym,
                clinic_id,
                method.value,
            )
        )

    def _replace_tokens(
        self,
        rt: ResourceType,
        row_id: int,
        resource: dict[str, Any],
        pseudonym: str | None,
        *,
        had_tokens: bool,
        derived: Derived | None = None,
    ) -> None:
        # A row whose tokens wait here was made, or had its stored ones removed, earlier
        # in this transaction: the store holds none of its tokens, dates or kin.
        stored = had_tokens and row_id not in self._tokens
        if stored:
            drop_tokens(self.connection, [row_id])
            self.connection.execute(delete(search_date).where(search_date.c.row_id == row_id))
        self._tokens[row_id] = search_tokens(
            self.vault, rt, resource, self._token_memo, derived=derived
        )
        self._dates[row_id] = date_rows(self.vault, rt, row_id, resource, derived=derived)
        if rt.is_patient:
            held = self._held_kin(row_id, stored=stored)
            self._kin[row_id] = kin_rows(self.vault, row_id, pseudonym, resource)
            self._note_replaced(pseudonym, held, self._kin[row_id])

    def _held_kin(self, row_id: int, *, stored: bool) -> list[tuple[str, bytes]]:
        """The kinship tokens the Patient in ``row_id`` carries until this write: those
        written earlier in this transaction (still waiting) and, if ``stored``, those of the
        store, removed here."""
        held = [(str(row["kind"]), bytes(row["token"])) for row in self._kin.get(row_id, ())]
        if stored:
            removed = self.connection.execute(_DELETE_KIN, {"kin_row_id": row_id})
            held.extend((str(kind), bytes(token)) for kind, token in removed)
        return held

    def _note_replaced(
        self, pseudonym: str | None, held: list[tuple[str, bytes]], kept: list[dict[str, Any]]
    ) -> None:
        """Keep the tokens of ``held`` that the new version (``kept``: its kin rows) no
        longer carries, with the time of this write: the detectors still relate the
        patient to them for their window (``detect.kin``)."""
        if not pseudonym or not held:
            return
        carried = {(row["kind"], row["token"]) for row in kept}
        self._kin_replaced.extend(
            {
                "patient_pseudonym": pseudonym,
                "kind": kind,
                "token": token,
                "replaced_us": self.now_us,
            }
            for kind, token in held
            if (kind, token) not in carried
        )


#: Records of no patient that place nothing by themselves: an organization is the clinic
#: (a record naming one is placed where it names), a practitioner works at several.
_NOT_PLACES = frozenset({"Organization", "Practitioner"})
#: The system's own principals (``system:import``, ``system:seed``): its loads are the
#: group's directory.
_SYSTEM = "system:"


def mark_directory(
    connection: Connection, written: dict[str, list[str]], principal: str, now_us: int
) -> None:
    """Record who wrote the directory records ``written`` (ids by type): a member of staff
    or a client app is kept (``directory_written``); the system's own load clears what
    was kept, its version being the group's directory's."""
    table = directory_written.c
    for resource_type, ids in written.items():
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            connection.execute(
                delete(directory_written).where(
                    table.resource_type == resource_type, table.resource_id.in_(chunk)
                )
            )
            if not principal.startswith(_SYSTEM):
                connection.execute(
                    insert(directory_written),
                    [
                        {
                            "resource_type": resource_type,
                            "resource_id": ident,
                            "principal": principal[:200],
                            "written_us": now_us,
                        }
                        for ident in chunk
                    ],
                )


def written_by_others(
    connection: Connection, targets: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of the directory records ``targets`` whose current version a member of
    staff or a client app wrote (``mark_directory``)."""
    table = directory_written.c
    by_type: dict[str, list[str]] = {}
    for resource_type, ident in set(targets):
        by_type.setdefault(resource_type, []).append(ident)
    found: set[tuple[str, str]] = set()
    for resource_type, ids in by_type.items():
        for start in range(0, len(ids), 500):
            rows = connection.execute(
                select(table.resource_id).where(
                    table.resource_type == resource_type,
                    table.resource_id.in_(ids[start : start + 500]),
                )
            )
            found.update((resource_type, str(row[0])) for row in rows)
    return found


def store_tokens(connection: Connection, tokens: dict[int, set[bytes]]) -> None:
    """Insert rows' search tokens (``tokens``: by row) and each row's list of them: what
    ``drop_tokens`` removes together."""
    # In the index's order: the B-tree takes them page by page rather than at random
    # (blind tokens are uniformly spread), which a batch of thousands feels.
    # Sorted by the token alone, stably, after the rows: the same (token, row_id)
    # order at half the cost (tuples compared element by element cost a bulk load
    # 27 ms a batch of 2,000 records, 14 µs a record; this 15 ms).
    pairs = [(token, row_id) for row_id in sorted(tokens) for token in tokens[row_id]]
    pairs.sort(key=itemgetter(0))
    driver_executemany_tuples(connection, _INSERT_TOKEN, ("token", "row_id"), pairs)
    driver_executemany_tuples(
        connection,
        _INSERT_TOKEN_LIST,
        ("row_id", "tokens"),
        [(row_id, pack(held)) for row_id, held in tokens.items() if held],
    )


def drop_tokens(connection: Connection, row_ids: Collection[int]) -> None:
    """Remove the stored search tokens of ``row_ids`` and their lists (not those still
    waiting in a writer). PostgreSQL deletes them through its index by row; SQLite has
    none (records_0023) and deletes each by the primary key its row's list gives.

    On PostgreSQL the caller holds the rows' heads locked (``FOR UPDATE``), as the writer
    and reindexing do: two transactions replacing one row's tokens at once would each
    keep a list the other's commit made stale."""
    if not row_ids:
        return
    lists = search_token_list.c
    ids = list(row_ids)
    if connection.dialect.name == "postgresql":
        connection.execute(delete(search_token).where(search_token.c.row_id.in_(ids)))
        connection.execute(delete(search_token_list).where(lists.row_id.in_(ids)))
        return
    found = connection.execute(
        delete(search_token_list).where(lists.row_id.in_(ids)).returning(lists.row_id, lists.tokens)
    ).all()
    pairs = [(token, int(row_id)) for row_id, packed in found for token in unpack(packed)]
    driver_executemany_tuples(connection, _DELETE_TOKEN, ("token", "row_id"), pairs)


def search_tokens(
    vault: Vault,
    rt: ResourceType,
    resource: dict[str, Any],
    memo: dict[tuple[str, str, str, bool], bytes] | None = None,
    *,
    derived: Derived | None = None,
) -> set[bytes]:
    """The search tokens of a resource (blind, or clear where DESIGN.md allows), and the
    blind marker of a health record's sensitivity (fhir/indexing.py). ``memo``: tokens
    already worked out in this transaction, by (type, parameter, term, clear).
    ``derived``: the resource's terms and marker, worked out already (``fhir/derived.py``)."""
    if memo is None:
        memo = {}
    tokens: set[bytes] = set()
    name = rt.name
    terms = derived.terms if derived is not None else index_term_rows(rt, resource, vault.zone)
    for param_name, term, clear in terms:
        key = (name, param_name, term, clear)
        token = memo.get(key)
        if token is None:
            token = memo[key] = vault.token(name, param_name, term, clear=clear)
        tokens.add(token)
    marker = derived.marker if derived is not None else sensitivity_term(rt, resource)
    if marker is not None:
        key = (name, SENSITIVITY, marker, False)
        token = memo.get(key)
        if token is None:
            token = memo[key] = vault.token(name, SENSITIVITY, marker)
        tokens.add(token)
    return tokens


def kin_rows(
    vault: Vault, row_id: int, pseudonym: str | None, resource: dict[str, Any]
) -> list[dict[str, Any]]:
    """The kinship tokens of a Patient (``carevault.fhir.kinship``), as ``patient_kin`` rows."""
    if not pseudonym:
        return []
    return [
        {
            "row_id": row_id,
            "kind": kind,
            "token": kin_token(vault, kind, term),
            "patient_pseudonym": pseudonym,
        }
        for kind, term in sorted(patient_terms(resource))
    ]


def kin_token(vault: Vault, kind: str, term: str) -> bytes:
    """The blind token of a kinship term: the same for a patient and a member of staff."""
    return vault.token("Patient", f"kin-{kind}", term)


def date_rows(
    vault: Vault,
    rt: ResourceType,
    row_id: int,
    resource: dict[str, Any],
    *,
    derived: Derived | None = None,
) -> list[dict[str, Any]]:
    """The clear date rows of a resource that is not patient data (none for patient data).
    ``derived``: the resource's values, worked out already (``fhir/derived.py``)."""
    values = (
        derived.dates
        if derived is not None
        else clear_date_values(rt, resource, vault.zone)
        if not rt.is_patient_data
        else ()
    )
    return [
        {"row_id": row_id, "param": name, "low_us": low, "high_us": high}
        for name, low, high in values
    ]


def _check_version(
    current: Head | None, if_match: IfMatch | None, resource_type: str, resource_id: str
) -> None:
    if if_match is None:
        return
    if current is None or current.deleted or not names_current(if_match, current.version_id):
        raise version_conflict(resource_type, resource_id, if_match)


def _check_not_current(
    current: Head | None, if_none_match: frozenset[int] | None, resource_type: str, resource_id: str
) -> None:
    """``If-None-Match`` of a write: false where the current version is one it names, or
    any version for ``*`` (RFC 9110 13.1.2: "*" is false if a current representation
    exists), so a PUT meant to create never overwrites. Checked after the write is
    allowed, as If-Match is."""
    if not if_none_match or current is None or current.deleted:
        return
    if ANY_VERSION in if_none_match or current.version_id in if_none_match:
        raise current_conflict(resource_type, resource_id)


def current_conflict(resource_type: str, resource_id: str) -> VersionConflict:
    """The refusal of a write whose If-None-Match names the current version (412)."""
    return VersionConflict(
        f"{resource_type}/{resource_id}: If-None-Match names the current version"
    )


def version_conflict(resource_type: str, resource_id: str, if_match: IfMatch) -> VersionConflict:
    """The refusal of a write whose If-Match does not name the current version (412)."""
    if isinstance(if_match, frozenset):
        named = ", ".join(str(version) for version in sorted(if_match))
        return VersionConflict(
            f"{resource_type}/{resource_id}: If-Match names versions {named}, "
            "none of them the current version"
        )
    if if_match == ANY_VERSION:
        return VersionConflict(
            f"{resource_type}/{resource_id}: If-Match is *, and there is no current version"
        )
    return VersionConflict(
        f"{resource_type}/{resource_id}: If-Match names version {if_match}, "
        "which is not the current version"
    )


def _with_meta(
    resource: dict[str, Any], resource_id: str, version: int, last_updated: str
) -> bytes:
    """The stored JSON: the resource with the server's id and meta (version, lastUpdated)."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated
    # The three first, then the rest in the resource's order (a merge in C, not a loop).
    stored = {"resourceType": None, "id": None, "meta": None, **resource}
    stored["resourceType"] = resource["resourceType"]
    stored["id"] = resource_id
    stored["meta"] = meta
    return jsonio.dumps(stored)
