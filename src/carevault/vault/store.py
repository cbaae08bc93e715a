"""The vault: sealed resource versions and their clear metadata.

Reads come in two steps so the gate can decide before anything is decrypted:
``locate`` returns clear metadata and sealed bytes; ``vault.opening`` decrypts,
and only the gate may import it (an import-linter contract).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection, Iterable, Sequence
from contextlib import nullcontext
from datetime import tzinfo
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, or_, select

from carevault.clock import Clock, utc_now
from carevault.db import driver_all, driver_first, read_transaction
from carevault.fhir import jsonio
from carevault.keys.envelope import Envelope
from carevault.keys.service import (
    DIRECTORY_KEY_ID,
    INDEX_KEY_ID,
    DataKeyShredded,
    KeyService,
)
from carevault.vault.blind import BlindIndex
from carevault.vault.records import (
    Erased,
    Head,
    Method,
    Sealed,
    VersionKey,
    head_from_row,
    not_known,
)
from carevault.vault.tables import resource_head, resource_version, search_token

SYSTEM_PRINCIPAL = "system:carevault"
#: An id no record holds is named in the ledger as this prefix and a keyed digest
#: (``Vault.unknown_id``); the blind index's parameter name the digest is made under.
UNKNOWN_ID_PREFIX = "unknown-"
UNKNOWN_ID_PARAM = "_unknown-id"

#: An extra SQL condition on resource_head that the gate adds to every search
#: (the access policy's reach); None means no restriction.
Restriction = ColumnElement[bool] | None

_HEAD_COLUMNS = (
    resource_head.c.row_id,
    resource_head.c.resource_type,
    resource_head.c.resource_id,
    resource_head.c.version_id,
    resource_head.c.last_updated_us,
    resource_head.c.deleted,
    resource_head.c.patient_pseudonym,
    resource_head.c.clinic_id,
    resource_head.c.status,
)

#: The version before a joined version, to tell whether it was a deletion.
_PREVIOUS = resource_version.alias("previous_version")
#: Whether a joined version follows a deletion of its record (``Head.follows_deletion``):
#: one indexed lookup of the version before it.
_FOLLOWS_DELETION = (
    select(_PREVIOUS.c.version_id)
    .where(
        _PREVIOUS.c.resource_type == resource_version.c.resource_type,
        _PREVIOUS.c.resource_id == resource_version.c.resource_id,
        _PREVIOUS.c.version_id == resource_version.c.version_id - 1,
        _PREVIOUS.c.deleted.is_(True),
    )
    .correlate(resource_version)
    .exists()
    .label("v_follows_deletion")
)

#: A record's head and one of its versions, read in one statement over a join of the
#: two (``_head_and_version`` reads the row).
_HEAD_AND_VERSION = (
    *_HEAD_COLUMNS,
    resource_version.c.version_id.label("v_version_id"),
    resource_version.c.last_updated_us.label("v_last_updated_us"),
    resource_version.c.deleted.label("v_deleted"),
    resource_version.c.patient_pseudonym.label("v_patient_pseudonym"),
    resource_version.c.clinic_id.label("v_clinic_id"),
    resource_version.c.method.label("v_method"),
    resource_version.c.key_id,
    resource_version.c.sealed,
    _FOLLOWS_DELETION,
)


def _head_and_version(row: Any) -> tuple[Head, Sealed]:
    """A row of ``_HEAD_AND_VERSION``: the record's head, and its version (sealed, with
    its own patient and clinic)."""
    current = head_from_row(row._mapping)
    version = _VersionRow(
        row.v_version_id,
        row.v_last_updated_us,
        row.v_deleted,
        row.v_patient_pseudonym,
        row.v_clinic_id,
        row.v_method,
    )
    head = _version_head(current, version, follows_deletion=bool(row.v_follows_deletion))
    return current, Sealed(head, row.key_id, row.sealed)


def _sealed_join() -> Any:
    return resource_head.join(
        resource_version,
        and_(
            resource_version.c.resource_type == resource_head.c.resource_type,
            resource_version.c.resource_id == resource_head.c.resource_id,
            resource_version.c.version_id == resource_head.c.version_id,
        ),
    )


#: Built once and run on the driver: every read by id locates its record, and building
#: and executing the statement through SQLAlchemy cost more than the indexed lookup.
_LOCATE = (
    select(*_HEAD_COLUMNS, resource_version.c.key_id, resource_version.c.sealed)
    .select_from(_sealed_join())
    .where(
        resource_head.c.resource_type == bindparam("located_type"),
        resource_head.c.resource_id == bindparam("located_id"),
    )
)


#: ``locate_rows``' statements, built once for lists of up to so many rows and run on the
#: driver (a search's page, its includes): a list is padded to the next size with its last
#: row, which the ``IN`` list's repeats leave unchanged. Longer lists take the general path.
_ROW_LIST_SIZES = (1, 4, 16, 64, 256)
_LOCATE_ROWS = {
    size: select(*_HEAD_COLUMNS, resource_version.c.key_id, resource_version.c.sealed)
    .select_from(_sealed_join())
    .where(resource_head.c.row_id.in_([bindparam(f"row_{n}") for n in range(size)]))
    for size in _ROW_LIST_SIZES
}


#: ``locate``'s statement (parameters ``located_type``, ``located_id``), for a reader that
#: adds columns to it and runs it on a connection of its own (the gate, on the event loop);
#: ``sealed_of`` turns the row's first columns into what ``locate`` returns.
LOCATE = _LOCATE


def sealed_of(row: Sequence[Any]) -> Sealed:
    """A row of ``LOCATE`` (or of a statement that adds columns after its own)."""
    return _sealed_of(row[:11])


def _sealed_of(row: Sequence[Any]) -> Sealed:
    """A located row as the driver returns it (the prebuilt statements' columns)."""
    (row_id, rt, rid, version, updated, deleted, pseudonym, clinic, status, key_id, sealed) = row
    head = Head(row_id, rt, rid, version, updated, bool(deleted), pseudonym, clinic, status)
    return Sealed(head, key_id, None if sealed is None else bytes(sealed))


#: Date-bucket tokens a vault remembers (``Vault.date_tokens``): some 800 cover one
#: open-ended range of one parameter; 64k hold every bucket a day's searches use.
DATE_TOKEN_MEMO = 65536
#: HKDF info of the history paging key, derived from the index key (separate uses).
PAGING_KEY_INFO = b"carevault history paging cursor v1"
#: HKDF info of the key that rows of policy state are sealed under (``row_seal_key``).
ROW_SEAL_KEY_INFO = b"carevault row seals v1"


#: A head beside the version before it: for a deleted record, the version its deletion
#: ended (what the record is judged on: ``locate_all_ended``, ``_locate_deletions``).
_WITH_ENDED = resource_head.join(
    resource_version,
    and_(
        resource_version.c.resource_type == resource_head.c.resource_type,
        resource_version.c.resource_id == resource_head.c.resource_id,
        resource_version.c.version_id == resource_head.c.version_id - 1,
    ),
)


class Vault:
    def __init__(
        self,
        engine: Engine,
        keys: KeyService | None,
        envelope: Envelope,
        zone: tzinfo,
        clock: Clock = utc_now,
    ) -> None:
        if envelope.encrypted and keys is None:
            raise ValueError("an encrypting vault needs a key service")
        self.engine = engine
        self.keys = keys
        self.envelope = envelope
        self.zone = zone
        self.clock = clock
        self.blind = BlindIndex(None)
        #: Seals type- and system-history cursors (``rest/cursor.py``). Derived from the
        #: index key by ``start``, the same in every process; the unencrypted benchmark
        #: baseline has no index key and makes one for this process.
        self.paging_key = secrets.token_bytes(32)
        self._row_seals: bytes | None = None
        self._date_tokens: dict[tuple[str, str, str], bytes] = {}

    def start(self) -> None:
        """Fetch the blind-index key (an unwrap, logged like any other)."""
        if self.keys is not None and self.envelope.encrypted:
            key = self.keys.ensure_data_key(
                INDEX_KEY_ID, "index", principal=SYSTEM_PRINCIPAL, purpose="blind-index"
            )
            self.blind = BlindIndex(key)
            self.paging_key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=PAGING_KEY_INFO
            ).derive(key)
            self._row_seals = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=ROW_SEAL_KEY_INFO
            ).derive(key)
            self._date_tokens.clear()

    def row_seal_key(self, table: str) -> bytes | None:
        """The key rows of ``table`` are sealed under (an HMAC key), the same in every
        process; None with encryption off. Derived from the index key, which the
        database does not hold, so that someone who may write to the database cannot
        seal a row of policy state (adversary round 69: containment)."""
        if self._row_seals is None:
            return None
        return hmac.new(self._row_seals, table.encode(), hashlib.sha256).digest()

    # --- tokens and keys ---------------------------------------------------------------------

    def token(self, resource_type: str, param: str, term: str, *, clear: bool = False) -> bytes:
        if clear:
            return f"{resource_type}|{param}|{term}".encode()
        return self.blind.token(resource_type, param, term)

    def holding(
        self, connection: Connection, resource_type: str, tokens: Collection[bytes]
    ) -> dict[bytes, list[Head]]:
        """Inside a transaction: the live records of ``resource_type`` whose current
        version the index finds by each of ``tokens`` (nothing is opened)."""
        if not tokens:
            return {}
        rows = connection.execute(
            select(search_token.c.token, resource_head)
            .join(resource_head, resource_head.c.row_id == search_token.c.row_id)
            .where(
                search_token.c.token.in_(list(tokens)),
                resource_head.c.resource_type == resource_type,
                resource_head.c.deleted.is_(False),
            )
        ).mappings()
        found: dict[bytes, list[Head]] = {}
        for row in rows:
            found.setdefault(bytes(row["token"]), []).append(head_from_row(row))
        return found

    def date_tokens(self, resource_type: str, param: str, terms: Iterable[str]) -> list[bytes]:
        """Tokens of date buckets (``p:Y2031``, ``e:D2026-12-02``: bucket names, never a
        record's value), remembered: an open-ended range is covered by hundreds of them,
        mostly the same years search after search, and hashing each anew cost more than the
        rest of a patient's search. At most ``DATE_TOKEN_MEMO`` are kept; then it restarts."""
        memo = self._date_tokens
        found: list[bytes] = []
        for term in terms:
            key = (resource_type, param, term)
            token = memo.get(key)
            if token is None:
                if len(memo) >= DATE_TOKEN_MEMO:
                    memo.clear()
                token = memo[key] = self.blind.token(resource_type, param, term)
            found.append(token)
        return found

    def data_keys(
        self, key_ids: Collection[str | None], *, principal: str, purpose: str
    ) -> dict[str, bytes]:
        if not self.envelope.encrypted or self.keys is None:
            return {}
        wanted = {key_id for key_id in key_ids if key_id is not None}
        if not wanted:
            return {}
        try:
            return self.keys.data_keys(wanted, principal=principal, purpose=purpose)
        except DataKeyShredded as error:
            raise Erased("the patient's records were erased") from error

    def keys_at_hand(self, key_ids: Collection[str | None]) -> bool:
        """Whether opening records of ``key_ids`` needs no data key unwrapped (and logged):
        nothing to wait for but the CPU."""
        if not self.envelope.encrypted or self.keys is None:
            return True
        return self.keys.at_hand([key_id for key_id in key_ids if key_id is not None])

    @staticmethod
    def key_id_for(pseudonym: str | None) -> str:
        return pseudonym or DIRECTORY_KEY_ID

    # --- clear lookups -----------------------------------------------------------------------

    def locate(
        self, resource_type: str, resource_id: str, reading: Connection | None = None
    ) -> Sealed:
        """The current version of a resource, sealed; raises NotFound. ``reading``: a read
        transaction the caller holds (the gate reads the policy's facts in the same one)."""
        params = {"located_type": resource_type, "located_id": resource_id}
        if reading is not None:
            row = driver_first(reading, _LOCATE, params)
        else:
            with read_transaction(self.engine) as connection:
                row = driver_first(connection, _LOCATE, params)
        if row is None:
            raise not_known(resource_type, resource_id)
        return _sealed_of(row)

    def locate_version(
        self, resource_type: str, resource_id: str, version_id: int
    ) -> tuple[Head, Sealed | None]:
        """The current head and one version (its own patient and clinic), sealed; None for
        a version the record does not have (what the caller is told of that is the gate's
        to decide: nothing a read would not tell)."""
        current = self.locate(resource_type, resource_id)
        return current.head, self._version(current.head, version_id)

    def locate_ended(self, deletion: Head) -> Sealed:
        """The version a deletion ended (the one before it: deleting a deleted record writes
        no version), sealed, with its own patient and clinic; NotFound, as for an unknown
        id, if there is none."""
        ended = self._version(deletion, deletion.version_id - 1)
        if ended is None:
            raise not_known(deletion.resource_type, deletion.resource_id)
        return ended

    def _version(self, current: Head, version_id: int) -> Sealed | None:
        """Version ``version_id`` of ``current``'s record (its own patient and clinic),
        sealed; None if it has no such version."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(resource_version).where(
                    resource_version.c.resource_type == current.resource_type,
                    resource_version.c.resource_id == current.resource_id,
                    resource_version.c.version_id == version_id,
                )
            ).first()
        if row is None:
            return None
        return Sealed(_version_head(current, row), row.key_id, row.sealed)

    def locate_all_ended(self, reach: ColumnElement[bool], limit: int) -> list[Sealed]:
        """``locate_ended`` for at most ``limit`` deleted records whose head meets ``reach``
        (over resource_head)."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(*_HEAD_AND_VERSION)
                .select_from(_WITH_ENDED)
                .where(reach, resource_head.c.deleted.is_(True))
                .order_by(resource_head.c.row_id)
                .limit(limit)
            ).all()
        return [_head_and_version(row)[1] for row in rows]

    def locate_history(self, resource_type: str, resource_id: str) -> tuple[Head, list[Sealed]]:
        """The current head, and every version (each with its own patient and clinic),
        newest first."""
        current = self.locate(resource_type, resource_id)
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(resource_version)
                .where(
                    resource_version.c.resource_type == resource_type,
                    resource_version.c.resource_id == resource_id,
                )
                .order_by(resource_version.c.version_id.desc())
            ).all()
        deleted = {row.version_id: bool(row.deleted) for row in rows}
        return current.head, [
            Sealed(
                _version_head(
                    current.head, row, follows_deletion=deleted.get(row.version_id - 1, False)
                ),
                row.key_id,
                row.sealed,
            )
            for row in rows
        ]

    def locate_versions(
        self,
        reach: ColumnElement[bool],
        since_us: int | None,
        offset: int,
        limit: int,
        start: VersionKey | None = None,
    ) -> list[tuple[Head, Sealed]]:
        """Versions of every resource whose current head meets ``reach`` (the gate's
        restriction, over resource_head), newest first, each with its record's current
        head; only versions written at or after ``since_us``, and standing at or after
        ``start`` in that order (None: from the newest); ``limit`` from ``offset``."""
        conditions: list[ColumnElement[bool]] = [reach]
        if since_us is not None:
            conditions.append(resource_version.c.last_updated_us >= since_us)
        if start is not None:
            conditions.append(_at_or_after(start))
        joined = resource_head.join(
            resource_version,
            and_(
                resource_version.c.resource_type == resource_head.c.resource_type,
                resource_version.c.resource_id == resource_head.c.resource_id,
            ),
        )
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(*_HEAD_AND_VERSION)
                .select_from(joined)
                .where(*conditions)
                .order_by(
                    resource_version.c.last_updated_us.desc(),
                    resource_version.c.resource_type,
                    resource_version.c.resource_id,
                    resource_version.c.version_id.desc(),
                )
                .offset(offset)
                .limit(limit)
            ).all()
        return [_head_and_version(row) for row in rows]

    def has_head(self, resource_type: str, pseudonym: str, statuses: Sequence[str]) -> bool:
        """Whether the patient has a live ``resource_type`` with one of ``statuses``."""
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(resource_head.c.row_id)
                .where(
                    resource_head.c.resource_type == resource_type,
                    resource_head.c.patient_pseudonym == pseudonym,
                    resource_head.c.status.in_(list(statuses)),
                    resource_head.c.deleted.is_(False),
                )
                .limit(1)
            ).first()
        return found is not None

    def holds_id(self, resource_type: str, resource_id: str) -> bool:
        """Whether any record of ``resource_type`` (live or deleted) has ``resource_id``."""
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(resource_head.c.row_id)
                .where(
                    resource_head.c.resource_type == resource_type,
                    resource_head.c.resource_id == resource_id,
                )
                .limit(1)
            ).first()
        return found is not None

    def unknown_id(self, resource_type: str, resource_id: str) -> str:
        """How the audit ledger names an id that no record holds: a keyed digest, a valid
        FHIR id, the same for the same id. What a caller typed where an id goes may be a
        name or an HKID number, and the ledger is kept in the clear and for good."""
        token = self.blind.token(resource_type, UNKNOWN_ID_PARAM, resource_id)
        return UNKNOWN_ID_PREFIX + hashlib.sha256(token).hexdigest()[:32]

    def patient_pseudonyms(self, patient_ids: Sequence[str]) -> dict[str, str]:
        """Pseudonym of each live Patient among ``patient_ids``."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(resource_head.c.resource_id, resource_head.c.patient_pseudonym).where(
                    resource_head.c.resource_type == "Patient",
                    resource_head.c.resource_id.in_(list(patient_ids)),
                    resource_head.c.deleted.is_(False),
                )
            ).all()
        return {row.resource_id: row.patient_pseudonym for row in rows}

    def patient_of(self, resource_type: str, resource_id: str) -> tuple[str, str] | None:
        """(Patient id, pseudonym) of the patient whose record ``resource_type/id`` is
        (deleted or not: its accesses are theirs), or None for a record of no patient
        or one never written. A Patient record is its own patient."""
        head = resource_head.c
        with read_transaction(self.engine) as connection:
            pseudonym = connection.execute(
                select(head.patient_pseudonym)
                .where(head.resource_type == resource_type, head.resource_id == resource_id)
                .limit(1)
            ).scalar()
            if pseudonym is None:
                return None
            if resource_type == "Patient":
                return resource_id, str(pseudonym)
            patient = connection.execute(
                select(head.resource_id)
                .where(head.resource_type == "Patient", head.patient_pseudonym == pseudonym)
                .order_by(head.deleted, head.resource_id)
                .limit(1)
            ).scalar()
        return (str(patient), str(pseudonym)) if patient is not None else None

    def locate_compartment(self, pseudonym: str, restrict: Restriction = None) -> list[Sealed]:
        """Every live resource of one patient, sealed, in a stable order."""
        conditions = [
            resource_head.c.patient_pseudonym == pseudonym,
            resource_head.c.deleted.is_(False),
        ]
        if restrict is not None:
            conditions.append(restrict)
        return self._locate_where(conditions)

    def locate_compartments(
        self,
        pseudonyms: Collection[str],
        types: Collection[str] | None = None,
        since_us: int | None = None,
    ) -> list[Sealed]:
        """Every live resource of several patients (a bulk export's batch), sealed, in
        a stable order; only ``types`` if given, only those changed after ``since_us``."""
        if not pseudonyms:
            return []
        conditions: list[ColumnElement[bool]] = [
            resource_head.c.patient_pseudonym.in_(sorted(pseudonyms)),
            resource_head.c.deleted.is_(False),
        ]
        if types is not None:
            conditions.append(resource_head.c.resource_type.in_(sorted(types)))
        if since_us is not None:
            conditions.append(resource_head.c.last_updated_us > since_us)
        return self._locate_where(conditions)

    def locate_directory(self, types: Collection[str], since_us: int | None = None) -> list[Sealed]:
        """Every live resource of ``types`` that is no one's patient data (clinics,
        practitioners, locations...), sealed, in a stable order."""
        if not types:
            return []
        conditions: list[ColumnElement[bool]] = [
            resource_head.c.resource_type.in_(sorted(types)),
            resource_head.c.patient_pseudonym.is_(None),
            resource_head.c.deleted.is_(False),
        ]
        if since_us is not None:
            conditions.append(resource_head.c.last_updated_us > since_us)
        return self._locate_where(conditions)

    def locate_compartment_deletions(
        self,
        pseudonyms: Collection[str],
        types: Collection[str] | None,
        after_us: int,
        until_us: int,
    ) -> list[tuple[Head, Sealed]]:
        """``locate_compartments``' deleted counterpart (a bulk export's ``deleted``): the
        records of several patients, only ``types`` if given, deleted after ``after_us``
        and at or before ``until_us``."""
        if not pseudonyms:
            return []
        conditions: list[ColumnElement[bool]] = [
            resource_head.c.patient_pseudonym.in_(sorted(pseudonyms))
        ]
        if types is not None:
            conditions.append(resource_head.c.resource_type.in_(sorted(types)))
        return self._locate_deletions(conditions, after_us, until_us)

    def locate_directory_deletions(
        self, types: Collection[str], after_us: int, until_us: int
    ) -> list[tuple[Head, Sealed]]:
        """``locate_directory``'s deleted counterpart: records of ``types`` that are no
        one's patient data, deleted after ``after_us`` and at or before ``until_us``."""
        if not types:
            return []
        conditions: list[ColumnElement[bool]] = [
            resource_head.c.resource_type.in_(sorted(types)),
            resource_head.c.patient_pseudonym.is_(None),
        ]
        return self._locate_deletions(conditions, after_us, until_us)

    def _locate_deletions(
        self, conditions: list[ColumnElement[bool]], after_us: int, until_us: int
    ) -> list[tuple[Head, Sealed]]:
        """Each record meeting ``conditions`` whose head is a deletion stamped in
        (``after_us``, ``until_us``]: the deletion's head (its type, id and when), and the
        version it ended, sealed, with its own patient and clinic (``locate_ended``):
        what a deleted record is judged on, as a live one is on its current version. A
        record deleted and written again is live, so not here. In a stable order."""
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(*_HEAD_AND_VERSION)
                .select_from(_WITH_ENDED)
                .where(
                    *conditions,
                    resource_head.c.deleted.is_(True),
                    resource_head.c.last_updated_us > after_us,
                    resource_head.c.last_updated_us <= until_us,
                )
                .order_by(
                    resource_head.c.resource_type,
                    resource_head.c.last_updated_us,
                    resource_head.c.row_id,
                )
            ).all()
        return [_head_and_version(row) for row in rows]

    def locate_many(self, references: Collection[tuple[str, str]]) -> list[Sealed]:
        """The live resources among ``references`` ((type, id) pairs)."""
        by_type: dict[str, list[str]] = {}
        for resource_type, resource_id in references:
            by_type.setdefault(resource_type, []).append(resource_id)
        found: list[Sealed] = []
        for resource_type, ids in sorted(by_type.items()):
            found.extend(
                self._locate_where(
                    [
                        resource_head.c.resource_type == resource_type,
                        resource_head.c.resource_id.in_(ids),
                        resource_head.c.deleted.is_(False),
                    ]
                )
            )
        return found

    def locate_rows(
        self, row_ids: Sequence[int], reading: Connection | None = None
    ) -> list[Sealed]:
        """Current versions of the given rows, in the order given. ``reading``: a read
        transaction the caller holds (a search's page is located in the page's snapshot)."""
        if not row_ids:
            return []
        if len(row_ids) > _ROW_LIST_SIZES[-1]:
            located = self._locate_where([resource_head.c.row_id.in_(list(row_ids))], reading)
        else:
            size = next(size for size in _ROW_LIST_SIZES if size >= len(row_ids))
            padded = [*row_ids, *[row_ids[-1]] * (size - len(row_ids))]
            params = {f"row_{n}": int(row_id) for n, row_id in enumerate(padded)}
            if reading is not None:
                rows = driver_all(reading, _LOCATE_ROWS[size], params)
            else:
                with read_transaction(self.engine) as connection:
                    rows = driver_all(connection, _LOCATE_ROWS[size], params)
            located = [_sealed_of(row) for row in rows]
        found = {item.head.row_id: item for item in located}
        return [found[row_id] for row_id in row_ids if row_id in found]

    def _locate_where(
        self, conditions: list[ColumnElement[bool]], reading: Connection | None = None
    ) -> list[Sealed]:
        held = read_transaction(self.engine) if reading is None else nullcontext(reading)
        with held as connection:
            rows = connection.execute(
                select(*_HEAD_COLUMNS, resource_version.c.key_id, resource_version.c.sealed)
                .select_from(_sealed_join())
                .where(*conditions)
                .order_by(
                    resource_head.c.resource_type,
                    resource_head.c.last_updated_us,
                    resource_head.c.row_id,
                )
            ).all()
        return [Sealed(head_from_row(row._mapping), row.key_id, row.sealed) for row in rows]


class _VersionRow(NamedTuple):
    """The columns of a version that ``_version_head`` reads, taken from a joined row."""

    version_id: int
    last_updated_us: int
    deleted: bool
    patient_pseudonym: str | None
    clinic_id: str | None
    method: str | None


def _version_head(current: Head, row: Any, *, follows_deletion: bool = False) -> Head:
    """An old version's head: whose and which clinic's it was when it was written, and
    whether it follows a deletion (where the caller read the version before it)."""
    return Head(
        row_id=current.row_id,
        resource_type=current.resource_type,
        resource_id=current.resource_id,
        version_id=row.version_id,
        last_updated_us=row.last_updated_us,
        deleted=bool(row.deleted),
        patient_pseudonym=row.patient_pseudonym,
        clinic_id=row.clinic_id,
        status=current.status,
        method=_method(row.method),
        follows_deletion=follows_deletion,
    )


def _method(stored: str | None) -> Method | None:
    """A version's stored method; None for one written before records_0025."""
    return None if stored is None else Method(stored)


def parse_body(body: bytes) -> dict[str, Any]:
    parsed = jsonio.load(body)
    assert isinstance(parsed, dict)  # noqa: S101 - the vault only stores JSON objects
    return parsed


def _at_or_after(start: VersionKey) -> ColumnElement[bool]:
    """The versions at or after ``start`` in history order (``locate_versions``: last
    updated newest first, then type and id, then version newest first), compared by the
    database as it orders them (its collation for the type and id)."""
    version = resource_version.c
    same_record = and_(
        version.resource_type == start.resource_type, version.resource_id == start.resource_id
    )
    same_moment = or_(
        version.resource_type > start.resource_type,
        and_(
            version.resource_type == start.resource_type,
            version.resource_id > start.resource_id,
        ),
        and_(same_record, version.version_id <= start.version_id),
    )
    return or_(
        version.last_updated_us < start.last_updated_us,
        and_(version.last_updated_us == start.last_updated_us, same_moment),
    )
