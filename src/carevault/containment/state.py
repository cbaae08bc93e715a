"""The containment state every server process obeys, read from the database.

Each process re-reads the active modes at most every ``refresh_seconds`` (default
0.5 s), so a mode started from the CLI or another process takes effect everywhere
within a second, without restarts and without a message bus.

The rows are sealed (an HMAC under a key derived from the index key, which the database
does not hold): someone who may write to the database but holds no key, who releases
PHI-offline or a suspension by editing its row, does not lift it. A process keeps a mode
on that it saw on and that ended with no sealed release, or whose row was deleted, and at
start keeps on every mode whose release is not sealed (adversary round 69); each is
reported once (``altered``), for the ledger and an officer. A process started after the
edit learns of a row deleted outright, or an active row's columns edited, from the
measures' register beside the keyring (``keys.measures``, adversary round 70): each
measure is written there when it starts and when it is released, and one there with no
sealed release in the database is kept on as the register names it. Rows from before sealing
began are sealed as they stand at the first start after it (``seal_unsealed``), noted
beside the keyring (``all_sealed``); a store without that note takes an unsealed row
older than every sealed one for a row from before.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from carevault.containment.tables import containment
from carevault.db import read_transaction, refuse_on_the_loop, write_transaction
from carevault.keys.anchors import seal_fields, seal_unsealed
from carevault.keys.measures import Measure, MeasureRegister
from carevault.keys.words import SealedWords

log = logging.getLogger("carevault.containment")


class Mode(StrEnum):
    PHI_OFFLINE = "phi-offline"
    READ_ONLY = "read-only"
    KEY_LOCKDOWN = "key-lockdown"
    CLINIC_LOCK = "clinic-lock"
    BLOCK_ADDRESS = "block-address"
    ACCOUNT_SUSPENDED = "account-suspended"
    CLIENT_REVOKED = "client-revoked"


#: What a measure's reason is sealed as (``keys.words.officer_words``).
CONTAINMENT_WORDS = "carevault-containment-reason/1"

#: Modes that name what they act on.
TARGETED = frozenset(
    {Mode.CLINIC_LOCK, Mode.BLOCK_ADDRESS, Mode.ACCOUNT_SUSPENDED, Mode.CLIENT_REVOKED}
)


class ContainmentActive(Exception):
    """Refused because of an active containment mode (a 503 for the caller)."""


@dataclass(frozen=True)
class Containment:
    containment_id: int
    mode: Mode
    target: str | None
    #: The reason as stored: sealed (``keys.words``), or as typed when stored before
    #: reasons were sealed or with encryption off. ``reason`` gives the words.
    stored_reason: str
    started_us: int
    started_by: str
    released_us: int | None = None
    released_by: str | None = None
    #: Opens ``stored_reason`` for a page or a listing (``SealedWords.shown``); only
    #: asked when the reason is read, never by the gate's checks of the state.
    opener: Callable[[Containment], str] | None = field(default=None, compare=False, repr=False)

    @property
    def active(self) -> bool:
        return self.released_us is None

    @property
    def reason(self) -> str:
        """The officer's (or the detectors') words, opened."""
        return self.opener(self) if self.opener is not None else self.stored_reason

    @property
    def binding(self) -> str:
        """What the reason is sealed bound to: a reason moved to another row does not
        open."""
        return reason_binding(self.started_us, self.mode, self.target)


def reason_binding(started_us: int, mode: Mode, target: str | None) -> str:
    return f"{started_us}|{mode.value}|{target or ''}"


def release_binding(containment_id: int, released_us: int | None) -> str:
    """What a release's reason (kept in its ledger entry only) is sealed bound to."""
    return f"release|{containment_id}|{released_us}"


@dataclass(frozen=True)
class ContainmentState:
    active: tuple[Containment, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=())

    def has(self, mode: Mode) -> bool:
        return any(item.mode is mode for item in self.active)

    @property
    def phi_offline(self) -> bool:
        return self.has(Mode.PHI_OFFLINE)

    @property
    def read_only(self) -> bool:
        return self.has(Mode.READ_ONLY)

    @property
    def key_lockdown(self) -> bool:
        return self.has(Mode.KEY_LOCKDOWN)

    @property
    def locked_clinics(self) -> frozenset[str]:
        return frozenset(
            item.target for item in self.active if item.mode is Mode.CLINIC_LOCK and item.target
        )

    def blocked(self, address: str | None) -> bool:
        if not self.networks or not address:
            return False
        ip = source_address(address)
        return ip is not None and any(ip in network for network in self.networks)


def _row(row: object, opener: Callable[[Containment], str] | None = None) -> Containment:
    m = row._mapping  # type: ignore[attr-defined]
    return Containment(
        int(m["containment_id"]),
        Mode(m["mode"]),
        m["target"],
        m["reason"],
        int(m["started_us"]),
        m["started_by"],
        m["released_us"],
        m["released_by"],
        opener,
    )


def row_seal(key: bytes, item: Containment) -> bytes:
    """The seal of ``item`` as stored: an HMAC-SHA256 of every column but the seal."""
    fields: list[object] = [
        item.containment_id,
        item.mode.value,
        item.target,
        item.stored_reason,
        item.started_us,
        item.started_by,
        item.released_us,
        item.released_by,
    ]
    return seal_fields(key, "carevault-containment/1", fields)


def _still_on(item: Containment) -> Containment:
    return replace(item, released_us=None, released_by=None)


#: The reason of a measure kept on from the register (``keys.measures``), which holds no
#: officer's words; its row, if any, is what was altered.
FROM_REGISTER = "kept on from the measures' register: its row was altered in the database"


def _measure(item: Containment) -> Measure:
    return Measure(
        item.containment_id, item.mode.value, item.target, item.started_us, item.started_by
    )


def _is(row: Any, measure: Measure) -> bool:
    """Whether ``row`` is the row of ``measure`` (an id given again is another measure)."""
    m = row._mapping
    return (
        m["mode"] == measure.mode
        and m["target"] == measure.target
        and int(m["started_us"]) == measure.started_us
        and m["started_by"] == measure.started_by
    )


#: Why a mode is kept on though its row says otherwise (``ContainmentStore.altered``).
DELETED = "deleted"
RELEASED_UNSEALED = "released without a sealed release"
ALTERED = "altered"


def source_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A request's source address as ranges are matched against it, or None if it is not
    one. An IPv4 address mapped into IPv6 (``::ffff:203.0.113.9``: what one socket
    listening on ``::`` for several workers sees of an IPv4 client) is that IPv4 address,
    or a block or an incident naming ``203.0.113.0/24`` would miss it."""
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an address or range (e.g. 203.0.113.0/24)") from None


class ContainmentStore:
    """The containment table, and the state read from it.

    ``seal_key`` (None with encryption off): the rows are sealed with it and checked
    against it. ``altered`` is told, once a process, of each mode kept on because its
    row was edited, released or deleted without the key: (the mode, why)."""

    def __init__(
        self,
        engine: Engine,
        now_us: Callable[[], int],
        refresh_seconds: float = 0.5,
        words: SealedWords | None = None,
        seal_key: bytes | None = None,
    ) -> None:
        """``words`` seals each measure's reason at rest (``keys.words``); None keeps
        reasons as typed (encryption off, or a store that only reads the state)."""
        self.words = words
        self.engine = engine
        self.now_us = now_us
        self.refresh_seconds = refresh_seconds
        self.seal_key = seal_key
        self.altered: Callable[[Containment, str], None] | None = None
        #: The measures' register beside the keyring (``keys.measures``; the composition
        #: root sets it where rows are sealed): written at each start and release, and
        #: read at each load, so a measure whose row went is known to every process.
        self.register: MeasureRegister | None = None
        #: Modes kept on against what the table says, by id (``_load``).
        self._held: dict[int, Containment] = {}
        self._reported: set[tuple[int, str]] = set()
        #: The oldest sealed row's id: a row after it with no seal had its seal taken
        #: away. None until a sealed row is seen; read whole at the first load.
        self._sealed_from: int | None = None
        #: Every row has been sealed (the composition root's note beside the keyring,
        #: ``keys.anchors``): a row without a seal had it taken away, whatever its id.
        self.all_sealed = False
        self._scanned = False
        self._state = ContainmentState()
        #: When the held state's read was sent (``time.monotonic()``): a state is as old
        #: as its snapshot, not as the moment a slow read came back.
        self._read_at = float("-inf")
        #: A state read before this is not used (``refresh``: a mode started or released
        #: here, after a read already under way in another thread took its snapshot).
        self._not_before = float("-inf")
        self._lock = threading.Lock()

    def _fresh(self) -> bool:
        read_at = self._read_at
        return read_at >= self._not_before and time.monotonic() - read_at < self.refresh_seconds

    def current(self) -> ContainmentState:
        """The active modes, read at most ``refresh_seconds`` ago, and after any mode this
        process started or released."""
        if self._fresh():
            return self._state
        refuse_on_the_loop("the containment state")
        with self._lock:
            if not self._fresh():
                asked = time.monotonic()
                self._state = self._load()
                self._read_at = asked
            return self._state

    def _load(self) -> ContainmentState:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(containment)
                .where(containment.c.released_us.is_(None))
                .order_by(containment.c.containment_id)
            ).all()
            if self.seal_key is not None:
                self._check(connection, rows)
                self._check_register(connection, rows)
        stored = [self._item(row) for row in rows]
        held = [item for item in self._held.values() if item not in stored]
        active = tuple(sorted((*stored, *held), key=lambda item: item.containment_id))
        networks = tuple(
            parse_network(item.target)
            for item in active
            if item.mode is Mode.BLOCK_ADDRESS and item.target
        )
        return ContainmentState(active, networks)

    def _genuine(self, row: Any) -> bool:
        """Whether ``row`` is as this store (or another with the same key) wrote it: its
        seal matches, or it has none and is older than every sealed row."""
        assert self.seal_key is not None  # noqa: S101 - only called when sealing
        seal = row._mapping["seal"]
        if seal is None:
            if self.all_sealed:
                return False
            return self._sealed_from is None or int(row.containment_id) < self._sealed_from
        return hmac.compare_digest(bytes(seal), row_seal(self.seal_key, _row(row)))

    def _check(self, connection: Connection, active_rows: Sequence[Any]) -> None:
        """Hold on every mode whose end was not sealed: at the first load, each released
        row (the whole table, once); after, each mode seen on that the table no longer
        has on (another process's release is sealed, and passes)."""
        released = (
            []
            if self._scanned
            else list(
                connection.execute(
                    select(containment).where(containment.c.released_us.is_not(None))
                ).all()
            )
        )
        sealed = [
            int(row.containment_id) for row in (*active_rows, *released) if row.seal is not None
        ]
        if self._sealed_from is not None:
            sealed.append(self._sealed_from)
        if sealed:
            self._sealed_from = min(sealed)
        seen = {item.containment_id: item for item in self._state.active}
        seen.update(self._held)
        for row in active_rows:
            if not self._genuine(row):
                # On is the safe side; what it said before the edit is held on too.
                self._report(self._item(row), ALTERED)
                before = seen.get(int(row.containment_id))
                if before is not None and before != self._item(row):
                    self._held[before.containment_id] = before
        for row in released:
            if not self._genuine(row):
                self._hold(_still_on(self._item(row)), RELEASED_UNSEALED)
        self._scanned = True
        on = {int(row.containment_id) for row in active_rows}
        gone = [key for key in seen if key not in on]
        if not gone:
            return
        ended = {
            int(row.containment_id): row
            for row in connection.execute(
                select(containment).where(containment.c.containment_id.in_(gone))
            ).all()
        }
        for key in gone:
            row = ended.get(key)
            if row is None:
                self._hold(seen[key], DELETED)
            elif not self._genuine(row):
                self._hold(seen[key], RELEASED_UNSEALED)
            else:
                self._held.pop(key, None)  # released with a sealed release

    def _check_register(self, connection: Connection, active_rows: Sequence[Any]) -> None:
        """Hold on every measure the register names as started and not released whose row
        is not there as it was started, active or with a sealed release: deleted, edited,
        or released unsealed, before this process ever saw it (left open by the review of
        round 69; adversary round 70)."""
        if self.register is None:
            return
        measures = [
            measure
            for measure in self.register.open_measures()
            if measure.containment_id not in self._held
        ]
        if not measures:
            return
        rows = {int(row.containment_id): row for row in active_rows}
        unseen = [
            measure.containment_id for measure in measures if measure.containment_id not in rows
        ]
        if unseen:
            rows.update(
                (int(row.containment_id), row)
                for row in connection.execute(
                    select(containment).where(containment.c.containment_id.in_(unseen))
                ).all()
            )
        for measure in measures:
            row = rows.get(measure.containment_id)
            if row is not None and _is(row, measure) and self._genuine(row):
                continue  # on as it stands, or released with a sealed release
            if row is None or not _is(row, measure):
                why = DELETED
            else:
                why = ALTERED if row.released_us is None else RELEASED_UNSEALED
            item = Containment(
                measure.containment_id,
                Mode(measure.mode),
                measure.target,
                FROM_REGISTER,
                measure.started_us,
                measure.started_by,
                opener=self._open,
            )
            self._hold(item, why)

    def _hold(self, item: Containment, why: str) -> None:
        self._held[item.containment_id] = item
        self._report(item, why)

    def _report(self, item: Containment, why: str) -> None:
        if (item.containment_id, why) in self._reported:
            return
        self._reported.add((item.containment_id, why))
        log.error(
            "containment #%d (%s) was %s in the database: kept on",
            item.containment_id,
            item.mode.value,
            why,
        )
        if self.altered is not None:
            try:
                self.altered(item, why)
            except Exception as error:  # noqa: BLE001 - the mode is held on regardless
                log.error("containment #%d: not reported: %s", item.containment_id, error)

    def seal_unsealed(self) -> int:
        """Seal every row that has no seal, as it stands (once, when sealing begins);
        returns how many."""
        key = self.seal_key
        if key is None:
            return 0
        return seal_unsealed(
            self.engine,
            containment,
            [containment.c.containment_id],
            lambda row: row_seal(key, _row(row)),
        )

    def _item(self, row: object) -> Containment:
        return _row(row, self._open)

    def _open(self, item: Containment) -> str:
        if self.words is None:
            return item.stored_reason
        return self.words.shown(
            item.binding, item.stored_reason, where=f"containment #{item.containment_id}'s reason"
        )

    def refresh(self) -> ContainmentState:
        """The active modes read now: no state read before this call is used again."""
        self._not_before = time.monotonic()
        return self.current()

    def start(self, mode: Mode, target: str | None, reason: str, by: str) -> Containment:
        """Start a measure; its reason is sealed (before the transaction: the key's unwrap
        is logged in a write of its own). The key service out of reach does not stop a
        measure: its reason is then not kept (``SealedWords.kept``)."""
        started_us = self.now_us()
        binding = reason_binding(started_us, mode, target)
        stored = reason if self.words is None else self.words.kept(binding, reason)
        with write_transaction(self.engine) as connection:
            new_id = int(
                connection.execute(
                    insert(containment)
                    .values(
                        mode=mode.value,
                        target=target,
                        reason=stored,
                        started_us=started_us,
                        started_by=by,
                    )
                    .returning(containment.c.containment_id)
                ).scalar_one()
            )
            if self.seal_key is not None:
                made = Containment(new_id, mode, target, stored, started_us, by)
                connection.execute(
                    update(containment)
                    .where(containment.c.containment_id == new_id)
                    .values(seal=row_seal(self.seal_key, made))
                )
                if self._sealed_from is None or new_id < self._sealed_from:
                    self._sealed_from = new_id
        self._record(
            lambda register: register.started(Measure(new_id, mode.value, target, started_us, by)),
            new_id,
        )
        self.refresh()
        return self.get(new_id)

    def _record(self, write: Callable[[MeasureRegister], None], containment_id: int) -> None:
        """Write to the register; a register out of reach does not stop a measure nor its
        release (the row, sealed, says it), and is told in the log."""
        if self.register is None:
            return
        try:
            write(self.register)
        except OSError as error:
            log.error(
                "containment #%d: not written to the measures' register: %s",
                containment_id,
                error.strerror or type(error).__name__,
            )

    def record_active(self) -> int:
        """Write every active measure whose row is genuine to the register (once, when
        the register begins: the measures started before it); returns how many."""
        if self.register is None or self.seal_key is None:
            return 0
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(containment).where(containment.c.released_us.is_(None))
            ).all()
        written = {measure.key for measure in self.register.open_measures()}
        items = [_row(row) for row in rows if self._genuine(row)]
        for item in items:
            if (item.containment_id, item.started_us) not in written:
                self.register.started(_measure(item))
        return len(items)

    def release(self, containment_id: int, by: str) -> Containment:
        """End a mode: its row released and sealed so. A mode this process holds on
        against its row (``_load``) is released too: its row is written back as it was,
        released by ``by``."""
        held = self._held.get(containment_id)
        released_us = self.now_us()
        try:
            ended = self._write_release(containment_id, held, released_us, by)
        except IntegrityError:
            # Two officers releasing a mode held on after its row was deleted: the second
            # finds it written back, released, by the first.
            raise ValueError(f"no active containment #{containment_id}") from None
        self._record(
            lambda register: register.released(containment_id, ended.started_us, released_us),
            containment_id,
        )
        self._held.pop(containment_id, None)
        self.refresh()
        return self.get(containment_id)

    def _write_release(
        self, containment_id: int, held: Containment | None, released_us: int, by: str
    ) -> Containment:
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(containment).where(containment.c.containment_id == containment_id)
            ).first()
            if held is None and (row is None or row.released_us is not None):
                raise ValueError(f"no active containment #{containment_id}")
            item = held if held is not None else self._item(row)
            ended = replace(item, released_us=released_us, released_by=by)
            values = {
                "mode": ended.mode.value,
                "target": ended.target,
                "reason": ended.stored_reason,
                "started_us": ended.started_us,
                "started_by": ended.started_by,
                "released_us": released_us,
                "released_by": by,
                "seal": None if self.seal_key is None else row_seal(self.seal_key, ended),
            }
            if row is None:
                connection.execute(
                    insert(containment).values(containment_id=containment_id, **values)
                )
            else:
                statement = update(containment).where(
                    containment.c.containment_id == containment_id
                )
                if held is None:
                    # Two officers releasing at once: the second is told it was not on.
                    statement = statement.where(containment.c.released_us.is_(None))
                if connection.execute(statement.values(**values)).rowcount != 1:
                    raise ValueError(f"no active containment #{containment_id}")
        return ended

    def get(self, containment_id: int) -> Containment:
        """A mode as this process obeys it: one it holds on against its row (``_load``)
        as it was before the row was altered."""
        held = self._held.get(containment_id)
        if held is not None:
            return held
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(containment).where(containment.c.containment_id == containment_id)
            ).first()
        if row is None:
            raise ValueError(f"no containment #{containment_id}")
        return self._item(row)

    def history(self, limit: int = 100) -> list[Containment]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(containment).order_by(containment.c.containment_id.desc()).limit(limit)
            ).all()
        return [self._item(row) for row in rows]
