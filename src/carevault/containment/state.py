"""The containment state every server process obeys, read from the database.

Each process re-reads the active modes at most every ``refresh_seconds`` (default
0.5 s), so a mode started from the CLI or another process takes effect everywhere
within a second, without restarts and without a message bus.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import Engine, insert, select, update

from carevault.containment.tables import containment
from carevault.db import read_transaction, refuse_on_the_loop, write_transaction
from carevault.keys.words import SealedWords


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
    def __init__(
        self,
        engine: Engine,
        now_us: Callable[[], int],
        refresh_seconds: float = 0.5,
        words: SealedWords | None = None,
    ) -> None:
        """``words`` seals each measure's reason at rest (``containment.words``); None
        keeps reasons as typed (encryption off, or a store that only reads the state)."""
        self.engine = engine
        self.now_us = now_us
        self.refresh_seconds = refresh_seconds
        self.words = words
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
        active = tuple(_row(row, self._open) for row in rows)
        networks = tuple(
            parse_network(item.target)
            for item in active
            if item.mode is Mode.BLOCK_ADDRESS and item.target
        )
        return ContainmentState(active, networks)

    def refresh(self) -> ContainmentState:
        """The active modes read now: no state read before this call is used again."""
        self._not_before = time.monotonic()
        return self.current()

    def _open(self, item: Containment) -> str:
        if self.words is None:
            return item.stored_reason
        return self.words.shown(
            item.binding, item.stored_reason, where=f"containment #{item.containment_id}'s reason"
        )

    def start(self, mode: Mode, target: str | None, reason: str, by: str) -> Containment:
        """Start a measure; its reason is sealed (before the transaction: the key's unwrap
        is logged in a write of its own). The key service out of reach does not stop a
        measure: its reason is then not kept (``SealedWords.kept``)."""
        started_us = self.now_us()
        binding = reason_binding(started_us, mode, target)
        stored = reason if self.words is None else self.words.kept(binding, reason)
        with write_transaction(self.engine) as connection:
            new_id = connection.execute(
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
        self.refresh()
        return self.get(int(new_id))

    def release(self, containment_id: int, by: str) -> Containment:
        with write_transaction(self.engine) as connection:
            changed = connection.execute(
                update(containment)
                .where(
                    containment.c.containment_id == containment_id,
                    containment.c.released_us.is_(None),
                )
                .values(released_us=self.now_us(), released_by=by)
            ).rowcount
        if changed != 1:
            raise ValueError(f"no active containment #{containment_id}")
        self.refresh()
        return self.get(containment_id)

    def get(self, containment_id: int) -> Containment:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(containment).where(containment.c.containment_id == containment_id)
            ).first()
        if row is None:
            raise ValueError(f"no containment #{containment_id}")
        return _row(row, self._open)

    def history(self, limit: int = 100) -> list[Containment]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(containment).order_by(containment.c.containment_id.desc()).limit(limit)
            ).all()
        return [_row(row, self._open) for row in rows]
