"""What a client is told about a background job it asked for (a Bulk Data export, an
``$import``): refused at kick-off, or not known to it. Plain types, no I/O."""

from __future__ import annotations


class JobRefused(Exception):
    """The kick-off is refused with ``status`` (400, 403, 404, 413, 415, 429 when the
    client's previous job is still in progress, 503 when contained)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class JobNotFound(Exception):
    """No such job for this caller (or what it held is gone): 404."""
