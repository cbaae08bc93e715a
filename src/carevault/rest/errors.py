"""Mapping domain errors to FHIR errors: one table, used by every interaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from carevault.access.breakglass import BreakGlassError, TooManyGrants
from carevault.access.registrations import TooManyAttempts
from carevault.containment.state import ContainmentActive
from carevault.db import WritesInFlight
from carevault.detect.budget import ReleaseRefused
from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.query import SearchError
from carevault.gate import (
    AccessDenied,
    ChangedMeanwhile,
    ClinicRequired,
    MatchedMeanwhile,
    PatientRequired,
    ScopeDenied,
    SubsetWouldErase,
    UnseenMatch,
)
from carevault.gate.registration import RegistrationInvalid
from carevault.keys.envelope import RecordIntegrityError
from carevault.keys.provider import KeyIntegrityError, KeyProviderUnavailable
from carevault.keys.service import UnwrapLogUnavailable
from carevault.ledger.trail import AuditUnavailable
from carevault.vault.records import (
    Erased,
    Gone,
    MissingReference,
    NotFound,
    ReferenceConflict,
    SearchTooCostly,
    VersionConflict,
)

#: RFC 6750 3.1: a token whose scopes do not allow the request is answered 403 with this
#: challenge, so a client knows more scope (not another account) would help.
INSUFFICIENT_SCOPE = 'Bearer realm="carevault", error="insufficient_scope"'

_STATUS: list[tuple[type[Exception], int, str]] = [
    (UnseenMatch, 409, "duplicate"),
    (AccessDenied, 403, "forbidden"),
    (TooManyGrants, 429, "throttled"),
    (BreakGlassError, 400, "invalid"),
    (RegistrationInvalid, 400, "invalid"),
    (TooManyAttempts, 429, "throttled"),
    (ReleaseRefused, 429, "throttled"),
    (AuditUnavailable, 503, "transient"),
    (ContainmentActive, 503, "transient"),
    (WritesInFlight, 503, "transient"),
    (NotFound, 404, "not-found"),
    (Gone, 410, "deleted"),
    (Erased, 410, "deleted"),
    (VersionConflict, 412, "conflict"),
    (ReferenceConflict, 409, "conflict"),
    (ChangedMeanwhile, 409, "conflict"),
    (MatchedMeanwhile, 409, "conflict"),
    (MissingReference, 422, "processing"),
    (ClinicRequired, 422, "processing"),
    (PatientRequired, 422, "processing"),
    (SubsetWouldErase, 422, "business-rule"),
    (SearchTooCostly, 400, "too-costly"),
    (SearchError, 400, "invalid"),
    (RecordIntegrityError, 500, "security"),
    (KeyIntegrityError, 500, "security"),
    (KeyProviderUnavailable, 503, "transient"),
    (UnwrapLogUnavailable, 503, "transient"),
]


def to_fhir_error(error: Exception) -> FhirError | None:
    for kind, status, code in _STATUS:
        if isinstance(error, kind):
            headers: dict[str, str] = {}
            if isinstance(error, TooManyAttempts):
                headers["Retry-After"] = str(error.retry_after)
            elif isinstance(error, ScopeDenied):
                headers["WWW-Authenticate"] = INSUFFICIENT_SCOPE
            return FhirError(status, [Issue(code, str(error))], headers)
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise known domain errors as the FhirError a client should see."""
    try:
        yield
    except FhirError:
        raise
    except Exception as error:
        mapped = to_fhir_error(error)
        if mapped is None:
            raise
        raise mapped from error
