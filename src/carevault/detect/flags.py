"""Flags a privacy officer sets on patients: VIP, and decoy (honeytoken) patients and
contact details. Read by the detectors (cached for a second or two)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, insert, select

from carevault.access.tables import staff_account
from carevault.db import read_transaction, write_transaction
from carevault.detect.budget import holder
from carevault.detect.tables import detect_flag

KINDS = ("vip", "decoy", "throttle", "decoy-contact", "vip-off", "decoy-off")
#: A patient's flag an officer asked to switch off, until another officer confirms
#: (``desk.AlertDesk.flag``): the kind of the pending request for each patient flag.
SWITCH_OFF = {"vip": "vip-off", "decoy": "decoy-off"}


@dataclass(frozen=True)
class FlagSet:
    decoys: frozenset[str] = frozenset()
    vips: frozenset[str] = frozenset()
    throttled: frozenset[str] = frozenset()
    #: "<email|phone>:<hex of the keyed blind token>" of each decoy contact detail.
    decoy_contacts: frozenset[str] = frozenset()
    #: principal → when the account was created (µs).
    created_us: dict[str, int] = field(default_factory=dict)
    #: "staff-account:<id>" (how refused sign-ins are recorded) → "staff:<username>".
    names: dict[str, str] = field(default_factory=dict)
    #: The person (``budget.holder``) of each throttled login that names a practitioner:
    #: the release budget counts a person, so a throttle holds every login of theirs
    #: (adversary round 56: their second login read on at the full rate).
    throttled_people: frozenset[str] = frozenset()


class Flags:
    def __init__(self, engine: Engine, now_us: Callable[[], int], refresh_seconds: float = 2.0):
        self.engine = engine
        self.now_us = now_us
        self.refresh_seconds = refresh_seconds
        self._read_at = float("-inf")
        self._value = FlagSet()
        self._lock = threading.Lock()

    def current(self) -> FlagSet:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                self._value = self._load()
                self._read_at = time.monotonic()
            return self._value

    def _load(self) -> FlagSet:
        with read_transaction(self.engine) as connection:
            flags = connection.execute(select(detect_flag.c.kind, detect_flag.c.subject)).all()
            accounts = connection.execute(
                select(
                    staff_account.c.username,
                    staff_account.c.created_us,
                    staff_account.c.account_id,
                    staff_account.c.practitioner_id,
                )
            ).all()

        def of(wanted: str) -> frozenset[str]:
            return frozenset(subject for kind, subject in flags if kind == wanted)

        throttled = of("throttle")
        people = frozenset(
            holder(f"staff:{name}", practitioner)
            for name, _, _, practitioner in accounts
            if practitioner and f"staff:{name}" in throttled
        )
        return FlagSet(
            of("decoy"),
            of("vip"),
            throttled,
            of("decoy-contact"),
            {f"staff:{name}": int(at) for name, at, _, _ in accounts},
            {f"staff-account:{ident}": f"staff:{name}" for name, _, ident, _ in accounts},
            people,
        )

    def throttled(self) -> frozenset[str]:
        """Who the release budget holds to a throttled share: each throttled login, and
        the person of each that names a practitioner (their every login)."""
        current = self.current()
        return current.throttled | current.throttled_people

    def set(self, kind: str, subject: str, by: str, *, on: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"flag must be one of {', '.join(KINDS)}")
        with write_transaction(self.engine) as connection:
            connection.execute(
                delete(detect_flag).where(
                    detect_flag.c.kind == kind, detect_flag.c.subject == subject
                )
            )
            if on:
                connection.execute(
                    insert(detect_flag).values(
                        kind=kind, subject=subject, set_by=by, set_us=self.now_us()
                    )
                )
        self._read_at = float("-inf")

    def held(self, kind: str, subject: str) -> tuple[str, int] | None:
        """Who set ``kind`` on ``subject`` and when (µs), if it is set."""
        with read_transaction(self.engine) as connection:
            found = connection.execute(
                select(detect_flag.c.set_by, detect_flag.c.set_us).where(
                    detect_flag.c.kind == kind, detect_flag.c.subject == subject
                )
            ).first()
        return None if found is None else (str(found[0]), int(found[1]))

    def listed(self, kind: str) -> list[str]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(detect_flag.c.subject).where(detect_flag.c.kind == kind)
            ).all()
        return sorted(subject for (subject,) in rows)
