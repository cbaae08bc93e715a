"""Record types shared by the vault's reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import RowMapping

from carevault.fhir.query import SearchError


class VaultError(RuntimeError):
    """Base of the vault's domain errors; messages never carry patient data."""


class NotFound(VaultError):
    """No such resource (404). ``reference``: the record (``Type/id``) said not to be
    known, when it is one record that is not (``not_known``)."""

    def __init__(self, message: str, reference: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference


def not_known(resource_type: str, resource_id: str) -> NotFound:
    """What an id never used is answered, and so a record the caller may not know of."""
    reference = f"{resource_type}/{resource_id}"
    return NotFound(f"{reference} is not known", reference)


class Gone(VaultError):
    """The resource was deleted (410)."""


class VersionConflict(VaultError):
    """If-Match named a version that is not current (412)."""


class ReferenceConflict(VaultError):
    """The write would leave records pointing at nothing: a patient still referenced (409)."""


class MissingReference(VaultError):
    """The resource names a patient that does not exist (422)."""


class Erased(VaultError):
    """The patient's data key was shredded on an erasure request: the record is unreadable."""


class Method(StrEnum):
    """The HTTP method that wrote a version, as a history Bundle's ``request.method``
    says it (R4 http.html#history): what the client did, not what the store did (an
    update that creates a record with a client-chosen id was a PUT)."""

    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Head:
    """The clear metadata of one resource version: what the gate decides on."""

    row_id: int
    resource_type: str
    resource_id: str
    version_id: int
    last_updated_us: int
    deleted: bool
    patient_pseudonym: str | None
    clinic_id: str | None
    status: str | None
    #: Of a version read from history: the method that wrote it (None: a current head,
    #: or a version written before records_0025; see ``method_of``).
    method: Method | None = None
    #: Of a version read from history: it follows a deletion of its record, so the write
    #: that made it (a PUT) brought the record back, which R4's update answers as a
    #: create (201). Known from the version before it, stored in the clear.
    follows_deletion: bool = False

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


def created_by_write(head: Head) -> bool:
    """Whether the write that made this version created its record (as its answer said,
    201): the first version, or the first after a deletion (an update of a deleted
    record is a create, R4 http.html#update)."""
    return not head.deleted and (head.version_id == 1 or head.follows_deletion)


def method_of(head: Head) -> Method:
    """The method that wrote a version: as stored with it or, for a version written
    before records_0025 stored it, inferred: a deletion DELETE, version 1 POST (a
    create), any other PUT (an update; a patch or an update that created is not told)."""
    if head.method is not None:
        return head.method
    if head.deleted:
        return Method.DELETE
    return Method.POST if head.version_id == 1 else Method.PUT


@dataclass(frozen=True)
class VersionKey:
    """Where one version stands in history order (newest first; then type, id, and the
    version newest first): what a history page's cursor holds, so the next page goes on
    after the last version given whatever was written, moved or deleted since."""

    last_updated_us: int
    resource_type: str
    resource_id: str
    version_id: int

    @classmethod
    def of(cls, head: Head) -> VersionKey:
        return cls(head.last_updated_us, head.resource_type, head.resource_id, head.version_id)


@dataclass(frozen=True)
class Sealed:
    """A located version, still sealed: opening it needs the gate."""

    head: Head
    key_id: str | None
    sealed: bytes | None


@dataclass(frozen=True)
class Opened:
    """A version opened through the gate: ``body`` is the resource's JSON (None if deleted)."""

    head: Head
    body: bytes | None


@dataclass(frozen=True)
class WriteResult:
    """A written version. ``resource`` is the plaintext as written, kept in memory only,
    for what must be derived in the same transaction (care relationships, audit)."""

    head: Head
    created: bool
    body: bytes | None
    resource: dict[str, Any] | None = None
    #: A patient's record placed at its clinic only through a directory record (a room,
    #: a role: ``(type, id)``), which anyone of that clinic may have written first.
    placed_by: tuple[str, str] | None = None


def head_from_row(mapping: RowMapping) -> Head:
    return Head(
        row_id=mapping["row_id"],
        resource_type=mapping["resource_type"],
        resource_id=mapping["resource_id"],
        version_id=mapping["version_id"],
        last_updated_us=mapping["last_updated_us"],
        deleted=bool(mapping["deleted"]),
        patient_pseudonym=mapping["patient_pseudonym"],
        clinic_id=mapping["clinic_id"],
        status=mapping["status"],
    )


class SearchTooCostly(SearchError):
    """The search would open more records than allowed; narrow it."""


class RequestTooCostly(SearchTooCostly):
    """The request has decrypted as many records as one request may; narrow it."""
