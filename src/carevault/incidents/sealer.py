"""Seals the ledgers' segments as they grow, so that a scope at incident time reads sealed
segments plus an unsealed tail shorter than one segment (and never waits for sealing).

A server runs one ``SegmentSealer`` beside its checkpoint schedule, on the same period
(``checkpoint_seconds``): each round seals every complete segment of the audit and unwrap
ledgers not sealed yet (``Segments.seal_pending``). Several processes may run one: the
manifest's key makes a second seal of the same segment a no-op, and the file of a
segment is the same bytes whoever writes it. ``carevault incident segments`` seals on
demand, and a scope still seals whatever is due before it reads.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from carevault.incidents.segments import Segment, Segments, segments_for
from carevault.logsafe import describe

if TYPE_CHECKING:
    from carevault.bootstrap import Services

log = logging.getLogger("carevault.incidents")

SEALER = "system:segment-sealer"


class SegmentSealer:
    """Seals complete segments every ``seconds`` (a daemon thread)."""

    def __init__(self, segments: Segments, seconds: float, principal: str = SEALER) -> None:
        self.segments = segments
        self.seconds = seconds
        self.principal = principal
        self.sealed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segment-sealer", daemon=True)

    def seal_due(self) -> list[Segment]:
        """One round: seal every complete segment not sealed yet; what was sealed."""
        done = self.segments.seal_pending(self.principal)
        self.sealed += len(done)
        return done

    def start(self) -> None:
        if self.seconds > 0:
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.seal_due()
            except Exception as error:  # noqa: BLE001 - logged; the next round tries again
                # A segment that cannot be sealed (entries missing, a tree that disagrees)
                # is refused by the scope too, by name: nothing is lost by waiting.
                log.error("sealing ledger segments failed: %s", describe(error))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def sealer_for(services: Services) -> SegmentSealer:
    """The sealer of a server: on the checkpoint schedule's period (0: none)."""
    return SegmentSealer(segments_for(services), services.settings.checkpoint_seconds)
