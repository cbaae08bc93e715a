"""What a client is told about a background job it asked for (a Bulk Data export, an
``$import``): refused at kick-off, or not known to it. Plain types, no I/O."""

from __future__ import annotations


class JobRefused(Exception):
    """The kick-off is refused with ``status`` (400, 403, 404, 413, 415, 429 when the
    client's previous job is still in progress, 503 when contained)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        insufficient_scope: bool = False,
        logged: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        #: What the audit ledger keeps of the refusal: the message without what the
        #: caller sent, where the message quotes it back (a parameter, a reference): what
        #: is typed there may be a patient's name or number, and the ledger is kept in the
        #: clear for good (adversary round 67).
        self.logged = message if logged is None else logged
        #: A 403 that a token granted more scope would not meet (RFC 6750 3.1's
        #: ``insufficient_scope`` challenge goes with it).
        self.insufficient_scope = insufficient_scope


class JobNotFound(Exception):
    """No such job for this caller (or what it held is gone): 404."""
