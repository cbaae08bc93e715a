"""The key service: data keys, wrapped by the key provider, and the unwrap log.

Security contract:
* a data key leaves this service only after its unwrap has been durably
  recorded (principal, key id — a patient pseudonym, never an identity —,
  purpose, time): if the record cannot be written, no key is returned;
* unwrapped keys are cached only briefly and in bounded number (``DataKeyCache``);
* a shredded key is gone: its records can never be decrypted again, in any server
  process (``SHRED_CHECK_SECONDS``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from carevault.clock import Clock, to_micros, utc_now
from carevault.db import WouldBlock, read_transaction, refuse_on_the_loop, write_transaction
from carevault.keys.cache import DataKeyCache
from carevault.keys.provider import (
    KeyIntegrityError,
    KeyProvider,
    KeyProviderUnavailable,
    WrappedKey,
)
from carevault.keys.shreds import ShredRegister
from carevault.keys.tables import data_key

DATA_KEY_BYTES = 32

#: How long a process hands out cached keys before it looks for keys shredded since (by
#: any process: an erasure through another worker, or the CLI), and forgets them: as
#: stale as containment's and sessions' state may be. A cached key used to outlive its
#: shredding in every other process for as long as the cache kept it (a minute by
#: default; adversary round 66).
SHRED_CHECK_SECONDS = 0.5
#: Shreds stamped this long before the newest one seen are looked for again: one
#: committed after a later one was stamped, or stamped by a host whose clock is behind.
SHRED_MARGIN_US = 60_000_000

#: Key ids of the keys that are not a patient's.
DIRECTORY_KEY_ID = "directory"
#: The key that seals staff TOTP secrets: key lockdown spares it, so that a privacy
#: officer can still sign in with a fresh code, to release the lockdown.
CREDENTIALS_KEY_ID = "credentials"
#: The key that seals what privacy officers type about containment, staff and alerts
#: (``keys.words``): key lockdown spares it too, so that an officer can still contain
#: (suspend an account, block an address) and see why each measure is on, while no
#: patient's key is released.
OFFICER_WORDS_KEY_ID = "officer-words"
LOCKDOWN_EXEMPT = frozenset({CREDENTIALS_KEY_ID, OFFICER_WORDS_KEY_ID})
ROTATION_PRINCIPAL = "system:kek-rotation"
INDEX_KEY_ID = "index"
#: The kind of a patient's data key (``data_key.kind``); every other kind is a key of
#: CareVault's own (the directory, credentials, the blind index, an incident's or an
#: erasure's sealed words, an export's or an import's files, the break-glass log).
PATIENT_KIND = "patient"


def not_patients_keys(engine: Engine, key_ids: Collection[str]) -> set[str]:
    """Those of ``key_ids`` stored as another kind than a patient's (``engine``: the key
    store's). An id the store does not hold is not among them: whatever it was, it is
    not known to be no patient's, so it counts as one (an erased patient's key is kept,
    shredded, with its kind). Integrator round 68: the unwraps of the incident words'
    key (stop 54) were read as a patient's, by the gate-bypass detector (a high alert at
    every incident declared) and by a scope with the host or key service compromised (a
    "patient" ``incident-words`` in the decrypted tier, counted as a person)."""
    wanted = sorted(set(key_ids))
    found: set[str] = set()
    with read_transaction(engine) as connection:
        for start in range(0, len(wanted), 500):
            rows = connection.execute(
                select(data_key.c.key_id).where(
                    data_key.c.key_id.in_(wanted[start : start + 500]),
                    data_key.c.kind != PATIENT_KIND,
                )
            ).all()
            found.update(str(row[0]) for row in rows)
    return found


class DataKeyError(RuntimeError):
    """A data key is missing or unusable."""


class DataKeyShredded(DataKeyError):
    """The data key was destroyed on an erasure request: its records are unreadable for good."""


class KeyLockdown(KeyProviderUnavailable):
    """Key lockdown is on: no data key is unwrapped or created for anyone."""


class ShredUndone(KeyIntegrityError):
    """A data key an erasure shredded (``ShredRegister``) has a wrapped key in the
    database again: put back from a copy by someone who may write to it (round 69)."""


class UnwrapLogUnavailable(DataKeyError):
    """The unwrap could not be recorded, so the key is withheld (fail closed)."""


@dataclass(frozen=True)
class UnwrapEvent:
    at_us: int
    principal: str
    key_id: str
    purpose: str
    kek_version: int


class UnwrapRecorder(Protocol):
    """Durably records unwraps; returns only once they are on disk."""

    def record(self, events: Sequence[UnwrapEvent]) -> None: ...


class KeyService:
    def __init__(
        self,
        engine: Engine,
        provider: KeyProvider,
        cache: DataKeyCache,
        recorder: UnwrapRecorder,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.provider = provider
        self._cache = cache
        self._recorder = recorder
        self._clock = clock
        self._create_lock = threading.Lock()
        #: Set by the composition root to the containment state's key-lockdown switch.
        self.locked: Callable[[], bool] = lambda: False
        #: How often this process looks for keys shredded elsewhere (the composition root
        #: sets containment's refresh).
        self.shred_check_seconds = SHRED_CHECK_SECONDS
        #: When this process last looked for shredded keys (``time.monotonic()``, when the
        #: look was sent), and the newest shredding it saw (its ``shredded_us``).
        self._shreds_read_at = float("-inf")
        self._newest_shred_us = 0
        self._shreds_lock = threading.Lock()
        #: The erasures' register beside the keyring (the composition root sets it; None
        #: where there is no home, in tests of the service alone).
        self.register: ShredRegister | None = None

    def _check_lockdown(self, key_ids: Collection[str] = ()) -> None:
        if key_ids and all(key_id in LOCKDOWN_EXEMPT for key_id in key_ids):
            return
        if self.locked():
            self._cache.clear()
            raise KeyLockdown("key lockdown is on: no data key is released")

    def create_data_key(self, key_id: str, kind: str) -> bytes:
        """Generate a data key, wrap it, and store it; the caller already holds it."""
        self._check_lockdown((key_id,))
        key = secrets.token_bytes(DATA_KEY_BYTES)
        wrapped = self.provider.wrap(key_id, key)
        with write_transaction(self.engine) as connection:
            connection.execute(
                insert(data_key).values(
                    key_id=key_id,
                    kind=kind,
                    kek_version=wrapped.kek_version,
                    wrapped=wrapped.blob,
                    created_us=to_micros(self._clock()),
                )
            )
        self._cache.put(key_id, key)
        return key

    def create_data_keys(self, key_ids: Sequence[str], kind: str) -> dict[str, bytes]:
        """``create_data_key`` for many keys in one transaction (one fsync): a bulk load
        makes a key for every new patient it writes. Stored before the caller uses them."""
        self._check_lockdown()
        if not key_ids:
            return {}
        made = {key_id: secrets.token_bytes(DATA_KEY_BYTES) for key_id in key_ids}
        created_us = to_micros(self._clock())
        rows = []
        for key_id, key in made.items():
            wrapped = self.provider.wrap(key_id, key)
            rows.append(
                {
                    "key_id": key_id,
                    "kind": kind,
                    "kek_version": wrapped.kek_version,
                    "wrapped": wrapped.blob,
                    "created_us": created_us,
                }
            )
        with write_transaction(self.engine) as connection:
            connection.execute(insert(data_key), rows)
        for key_id, key in made.items():
            self._cache.put(key_id, key)
        return made

    def discard_unused(self, key_ids: Sequence[str]) -> None:
        """Remove patient keys just created for records that were then rolled back."""
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(data_key).where(
                    data_key.c.key_id.in_(list(key_ids)), data_key.c.kind == PATIENT_KIND
                )
            )
        for key_id in key_ids:
            self._cache.discard(key_id)

    def ensure_data_key(self, key_id: str, kind: str, *, principal: str, purpose: str) -> bytes:
        """The key ``key_id``, created on first use (for the shared directory and index keys).
        Another server process may create it at the same moment: the key it stored is the
        key (the first break-the-glass grants through two workers at once answered one of
        them 500; adversary round 66)."""
        with self._create_lock:
            found = self._wrapped([key_id])
            if key_id not in found:
                try:
                    return self.create_data_key(key_id, kind)
                except IntegrityError:
                    pass  # stored by another process meanwhile: unwrapped below
        return self.data_keys([key_id], principal=principal, purpose=purpose)[key_id]

    def at_hand(self, key_ids: Collection[str]) -> bool:
        """Whether ``data_keys`` would give every one of ``key_ids`` from the cache, without
        an unwrap (whose log entry is a durable write the caller would wait for), nor a
        look for keys shredded elsewhere (due every ``SHRED_CHECK_SECONDS``)."""
        if self._shreds_due():
            return False
        return all(self._cache.get(key_id) is not None for key_id in key_ids)

    def _shreds_due(self) -> bool:
        return time.monotonic() - self._shreds_read_at >= self.shred_check_seconds

    def _forget_shredded(self) -> None:
        """Take out of the cache every key shredded since this process last looked, by
        whichever process shredded it, if that was ``shred_check_seconds`` ago or more.
        On the event loop it does not look: ``at_hand`` has just said no look was due
        (it sends the request to a worker thread otherwise)."""
        if not self._shreds_due():
            return
        try:
            refuse_on_the_loop("keys shredded elsewhere")
        except WouldBlock:
            return
        with self._shreds_lock:
            if not self._shreds_due():
                return
            asked = time.monotonic()
            since = max(0, self._newest_shred_us - SHRED_MARGIN_US)
            with read_transaction(self.engine) as connection:
                rows = connection.execute(
                    select(data_key.c.key_id, data_key.c.shredded_us).where(
                        data_key.c.shredded_us >= since
                    )
                ).all()
            for row in rows:
                self._cache.discard(row.key_id)
                self._newest_shred_us = max(self._newest_shred_us, int(row.shredded_us))
            self._shreds_read_at = asked

    def data_keys(
        self, key_ids: Collection[str], *, principal: str, purpose: str
    ) -> dict[str, bytes]:
        """Unwrapped keys for ``key_ids``; misses are unwrapped and logged in one write."""
        self._check_lockdown(key_ids)
        self._forget_shredded()
        keys: dict[str, bytes] = {}
        missing: list[str] = []
        for key_id in set(key_ids):
            cached = self._cache.get(key_id)
            if cached is None:
                missing.append(key_id)
            else:
                keys[key_id] = cached
        if not missing:
            return keys
        wrapped = self._wrapped(missing)
        unknown = [key_id for key_id in missing if key_id not in wrapped]
        if unknown:
            raise DataKeyError(f"no data key {unknown[0]}")
        erased = self.register.holds(missing) if self.register is not None else set()
        if any(wrapped[key_id] is not None for key_id in erased):
            # Never the key id in the words: they reach the caller.
            raise ShredUndone(
                "a data key shredded on an erasure has a wrapped key in the database again"
            )
        if erased:
            raise DataKeyShredded("a data key was shredded")
        now = to_micros(self._clock())
        unwrapped: dict[str, bytes] = {}
        events: list[UnwrapEvent] = []
        for key_id, found in wrapped.items():
            if found is None:
                raise DataKeyShredded(f"data key {key_id} was shredded")
            unwrapped[key_id] = self.provider.unwrap(key_id, found)
            events.append(UnwrapEvent(now, principal, key_id, purpose, found.kek_version))
        try:
            self._recorder.record(events)
        except Exception as error:
            raise UnwrapLogUnavailable("the unwrap log could not be written") from error
        for key_id, key in unwrapped.items():
            self._cache.put(key_id, key)
        keys.update(unwrapped)
        return keys

    def _wrapped(self, key_ids: Iterable[str]) -> dict[str, WrappedKey | None]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(data_key.c.key_id, data_key.c.kek_version, data_key.c.wrapped).where(
                    data_key.c.key_id.in_(list(key_ids))
                )
            ).all()
        return {
            row.key_id: None
            if row.wrapped is None
            else WrappedKey(kek_version=row.kek_version, blob=row.wrapped)
            for row in rows
        }

    # --- key-encryption-key rotation ---------------------------------------------------------

    def pending_rewrap(self) -> int:
        """Live data keys still wrapped by an older KEK version than the active one."""
        active = self.provider.active_version()
        with read_transaction(self.engine) as connection:
            count = connection.execute(
                select(func.count())
                .select_from(data_key)
                .where(data_key.c.wrapped.is_not(None), data_key.c.kek_version != active)
            ).scalar_one()
        return int(count)

    def rewrap_batch(self, limit: int = 200) -> int:
        """Re-wrap up to ``limit`` data keys under the active KEK; returns how many.

        Each batch commits on its own, so a rotation stopped at any point resumes from
        where it was; reads go on throughout, since both versions are held until the
        old one is destroyed. Every unwrap is logged, as any other is.
        """
        self._check_lockdown()
        active = self.provider.active_version()
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(data_key.c.key_id, data_key.c.kek_version, data_key.c.wrapped)
                .where(data_key.c.wrapped.is_not(None), data_key.c.kek_version != active)
                .order_by(data_key.c.key_id)
                .limit(limit)
            ).all()
        if not rows:
            return 0
        if self.register is not None and self.register.holds([row.key_id for row in rows]):
            # Re-wrapped, a key put back would pass for one never shredded: stop here.
            raise ShredUndone(
                "a data key shredded on an erasure has a wrapped key in the database again"
            )
        now = to_micros(self._clock())
        rewrapped: list[tuple[str, int, WrappedKey]] = []
        events: list[UnwrapEvent] = []
        for row in rows:
            old = WrappedKey(kek_version=row.kek_version, blob=row.wrapped)
            key = self.provider.unwrap(row.key_id, old)
            rewrapped.append((row.key_id, row.kek_version, self.provider.wrap(row.key_id, key)))
            events.append(
                UnwrapEvent(now, ROTATION_PRINCIPAL, row.key_id, "kek-rotation", old.kek_version)
            )
        try:
            self._recorder.record(events)
        except Exception as error:
            raise UnwrapLogUnavailable("the unwrap log could not be written") from error
        with write_transaction(self.engine) as connection:
            for key_id, old_version, new in rewrapped:
                connection.execute(
                    update(data_key)
                    .where(data_key.c.key_id == key_id, data_key.c.kek_version == old_version)
                    .values(kek_version=new.kek_version, wrapped=new.blob)
                )
        return len(rewrapped)

    def destroy_kek_version(self, version: int) -> None:
        """Destroy an old KEK version once no live data key depends on it; from then on a
        backup taken before an erasure cannot bring the erased patient's key back."""
        if version == self.provider.active_version():
            raise DataKeyError("the active key-encryption key cannot be destroyed; rotate first")
        with read_transaction(self.engine) as connection:
            still = connection.execute(
                select(func.count())
                .select_from(data_key)
                .where(data_key.c.wrapped.is_not(None), data_key.c.kek_version == version)
            ).scalar_one()
        if still:
            raise DataKeyError(
                f"{still} data keys are still wrapped by version {version}: finish the re-wrap"
            )
        self.provider.destroy_version(version)

    def shred(self, key_id: str) -> None:
        """Destroy a data key for good (crypto-shredding on an erasure request).

        On SQLite the wrapped key would stay on disk after the update: in the key store's
        file as its page stood before (until the next checkpoint), in the old frames of
        its -wal file, in the bytes the update freed. Whoever later held those files and
        the keyring (whose KEK no erasure rotates) would unwrap it and read the erased
        patient's records, whose ciphertext stays (adversary round 67). So the freed
        bytes are zeroed (``secure_delete``) and the WAL is folded into the file and
        emptied at once (its TRUNCATE checkpoint waits, within the busy timeout, for
        readers of older snapshots)."""
        if self.register is not None:
            # First, outside the database: a copy of the row put back later is refused.
            self.register.add(key_id)
        sqlite = self.engine.dialect.name == "sqlite"
        with write_transaction(self.engine) as connection:
            if sqlite:
                connection.exec_driver_sql("PRAGMA secure_delete=ON")
            connection.execute(
                update(data_key)
                .where(data_key.c.key_id == key_id)
                .values(wrapped=None, kek_version=None, shredded_us=to_micros(self._clock()))
            )
        if sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self._cache.discard(key_id)

    def shredded(self, key_ids: Collection[str]) -> set[str]:
        """Which of ``key_ids`` were shredded (their records can never be read again)."""
        wanted = sorted(set(key_ids))
        found: set[str] = set()
        with read_transaction(self.engine) as connection:
            for start in range(0, len(wanted), 500):
                rows = connection.execute(
                    select(data_key.c.key_id).where(
                        data_key.c.key_id.in_(wanted[start : start + 500]),
                        data_key.c.wrapped.is_(None),
                    )
                ).all()
                found.update(str(row.key_id) for row in rows)
        return found

    def forget_cached(self) -> None:
        self._cache.clear()
