"""How a notice leaves: the channel port and its failures.

A channel either returns (the message was accepted), raises ``Bounced`` (the address
will never work: the notice falls back to the next channel and the address is
marked), or raises ``TryLater`` (a failure that may pass: retried with back-off).
``Unreachable`` means the channel itself is down (no connection at all): the job
waits and tries again without charging it to any one notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from carevault.notify.contacts import Recipient
from carevault.notify.notice import Rendered


class Bounced(Exception):
    """The address was refused for good (SMTP 5xx, a DSN, a gateway's 4xx)."""


class TryLater(Exception):
    """The message was not accepted this time; it may be next time."""


class Unreachable(TryLater):
    """The channel's server could not be reached or dropped the connection."""


@dataclass(frozen=True)
class Outgoing:
    """One notice ready to go: its key (the idempotency key of every try), its rendered
    text, and where it goes."""

    notice_key: str
    recipient: Recipient
    rendered: Rendered
    incident_id: str


class Channel(Protocol):
    """Sends one notice; returns only once the far end has accepted it."""

    name: str

    def send(self, outgoing: Outgoing) -> None: ...

    def close(self) -> None: ...
