"""Failed sign-ins, aggregated per source network, never charged to the account named.

A failed (or throttled) sign-in is an attempt by whoever sent it, not an act of the
account whose username it typed: anyone who knows a username could otherwise open alert
cases against that person (framing them, or pausing their sessions through ``denials``)
and, with a list of usernames or a stream of made-up ones, open cases without end. So
these entries feed no account's state. They are counted per source network (a /24 or a
/64, as ``two-places`` does), with the usernames they named: ``FAILURES`` within
``WINDOW_US`` from one network raise ``sign-in-failures`` on a case of that network
(``case:source:<network>``), one alert a day per network, widened by what follows. Past
``MOST_SOURCES`` networks in a day, every further network's burst widens one alert
(``source:many``). However many addresses and names an attacker uses, failed sign-ins
open at most ``MOST_SOURCES + 1`` alerts a day, all raised only (``respond.RAISE_ONLY``).

The windows are in memory only (rebuilt from the ledger's last day on a restart, like
every window): at most ``TRACKED`` networks are followed at once; when more come, the
quietest are forgotten.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from carevault.detect.model import DAY_US, MINUTE_US, Access, Finding, Severity, network_of

DETECTOR = "sign-in-failures"
FAILURES = 10
WINDOW_US = 10 * MINUTE_US
#: Networks given an alert of their own per day; the rest share one.
MOST_SOURCES = 20
#: Networks followed at once (memory is bounded whatever arrives).
TRACKED = 10_000
#: How many of the usernames a network named are kept to count (not shown).
NAMES_KEPT = 1_000
MANY = "source:many"


@dataclass
class _Source:
    times: deque[tuple[int, int]] = field(default_factory=deque)
    #: Accounts named today (``staff-account:<id>``; unknown usernames are not recorded).
    named: set[str] = field(default_factory=set)
    unknown: int = 0


@dataclass
class SignInFailures:
    """Per-network windows of refused sign-ins, and the networks alerted today."""

    sources: dict[str, _Source] = field(default_factory=dict)
    day: int | None = None
    alerted: set[str] = field(default_factory=set)

    def observe(self, access: Access, offset_us: int, *, live: bool = True) -> list[Finding]:
        """Count ``access`` (a refused sign-in) against its network; a finding when the
        network's burst reaches ``FAILURES`` (``live`` False: count only, as on replay).
        ``offset_us``: the clinics' offset from UTC (days are local days)."""
        day = (access.at_us + offset_us) // DAY_US
        if day != self.day:
            self.day, self.alerted = day, set()
            for earlier in self.sources.values():
                earlier.named.clear()
                earlier.unknown = 0
        network = _network(access.source_address)
        source = self.sources.get(network)
        if source is None:
            if len(self.sources) >= TRACKED:
                self._forget(access.at_us)
            source = self.sources[network] = _Source()
        source.times.append((access.at_us, access.position))
        edge = access.at_us - WINDOW_US
        while source.times and source.times[0][0] <= edge:
            source.times.popleft()
        if access.principal and len(source.named) < NAMES_KEPT:
            source.named.add(access.principal)
        elif not access.principal:
            source.unknown += 1
        if not live or len(source.times) < FAILURES:
            return []
        subject = f"source:{network}"
        if subject not in self.alerted and len(self.alerted) >= MOST_SOURCES:
            subject = MANY
        self.alerted.add(subject)
        where = "from many networks" if subject == MANY else f"from {network}"
        named = f", naming {len(source.named)} account(s)" if source.named else ""
        unknown = " and usernames no one has" if source.unknown else ""
        return [
            Finding(
                DETECTOR,
                Severity.MEDIUM,
                str(day),
                f"{len(source.times)} refused sign-ins in 10 minutes {where}{named}{unknown}:"
                " someone is guessing passwords (the accounts named did nothing)",
                # The case is the source's: no account named is its subject.
                replace(access, principal=subject, role=None, client_id=None, session_id=None),
                (),
                source.times[0][1],
            )
        ]

    def _forget(self, now_us: int) -> None:
        """Make room: drop the networks with nothing in their window, else the half that
        failed least recently."""
        edge = now_us - WINDOW_US
        quiet = [key for key, s in self.sources.items() if not s.times or s.times[-1][0] <= edge]
        if len(quiet) < len(self.sources) // 2:
            by_last = sorted(self.sources, key=lambda k: self.sources[k].times[-1][0])
            quiet = by_last[: len(self.sources) // 2]
        for key in quiet:
            del self.sources[key]


def _network(address: str | None) -> str:
    """The network ``address`` is judged by (``model.network_of``); "unknown" without one."""
    return (network_of(address) if address else None) or "unknown"
