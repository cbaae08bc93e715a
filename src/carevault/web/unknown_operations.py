"""Operations this server does not define: one answer, whatever the level or method.

R4 (http.html) answers ``404 Not Found`` for what is "not a FHIR end-point" here and
``405`` only for a method an end-point does not take. An unknown operation is no
end-point: ``GET Patient/x/$nonsense``, ``POST $nonsense`` and ``POST Patient/$nonsense``
all answer 404 with an OperationOutcome (``not-supported``), whatever the record's
existence (the id is never looked at: no oracle). They answered 404, 400 (the name read
as an id) or 405 (the name read as an id, whose path takes no POST) by the shape of the
path. A known operation asked with a method it does not take still answers 405 with
``Allow`` (``GET /fhir/Patient/$register``): these routes come after every known
operation's, so they are reached only when none took the request, and they allow
nothing themselves.

A compartment search (R4 http.html: ``GET [base]/Patient/[id]/Observation``, what
fhir-kit-client's ``search({compartment})`` sends) is not offered either (the
CapabilityStatement lists no ``compartment``). It answered Starlette's bare 404
(``not-found``, "Not Found"), which a client reads as "no such patient"; it answers 404
``not-supported`` naming what to search instead, the id never looked at.

Nor is a search across all types (R4 ``GET [base]?_type=...``, ``POST [base]/_search``;
the CapabilityStatement lists no ``search-system``): ``POST [base]/_search`` was read as
a create of a type named ``_search`` (415 "send application/fhir+json" for the form a
search sends), and ``GET [base]?...`` as Starlette's 405 "Method Not Allowed". The first
answers 404 ``not-supported`` and the second keeps its 405 with ``Allow: POST`` (the
base is an end-point, of batches and transactions), both in the same words, naming what
to search instead.

Every other refusal of the router under the FHIR base had kept Starlette's words too:
"Not Found" for a path no route serves, "Method Not Allowed" for a method a path does
not take. They say what the server serves and what the path takes
(``routing_refused``), naming no segment of the path; and a write of an end-point that
takes none (``DELETE /fhir/metadata``), read as a conditional write of a type of that
name, answers the 405 its ``OPTIONS`` promised (``refuse_other_method``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.query import safe_name
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.rest import operations
from carevault.web.allowed import METHODS, REFUSING_ENDPOINTS, allowed_methods


class _OperationName(Convertor[str]):
    """A path segment naming an operation: ``$`` and a name (R4 operations.html)."""

    regex = r"\$[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhir_operation", _OperationName())

#: The paths of an operation at each level (R4 operations.html: system, type, instance).
SYSTEM_PATH = "/{operation:fhir_operation}"
TYPE_PATH = "/{type_name:fhir_type}/{operation:fhir_operation}"
INSTANCE_PATH = "/{type_name:fhir_type}/{resource_id}/{operation:fhir_operation}"
#: The FHIR base: the paths under it are FHIR end-points, refused in FHIR's words.
FHIR_BASE = "/fhir"
#: What a path under the base that no route serves is told (R4 http.html: 404, "not a
#: FHIR end-point"); it names no part of the path asked, which may carry an id.
NO_END_POINT = (
    "this server has no FHIR end-point at this path: it serves [type], [type]/[id], "
    "[type]/[id]/_history[/[vid]], [type]/_history and the operations listed in "
    "its CapabilityStatement (metadata)"
)
#: A search across all types by POST (R4 http.html#search); its GET is the base's 405.
SYSTEM_SEARCH_PATH = "/_search"
#: What a search across all types is told, by either path.
NO_SYSTEM_SEARCH = (
    "this server offers no search across all types: search each type, [type]?[parameters]"
)
#: A search of one compartment (R4 http.html#search), by GET or by POST to ``_search``.
COMPARTMENT_PATHS = (
    "/{compartment:fhir_type}/{resource_id}/{type_name:fhir_type}",
    "/{compartment:fhir_type}/{resource_id}/{type_name:fhir_type}/_search",
)


async def unknown_operation(request: Request) -> Response:
    """404 for an operation no route defines; 405 (with ``Allow``, by the 405 handler)
    for a known one asked with a method it does not take."""
    if allowed_methods(request.app.router.routes, request.scope):
        raise StarletteHTTPException(405)
    raise operations.unknown_operation(str(request.path_params["operation"]))


def refuse_other_method(request: Request, type_name: str) -> None:
    """405 (with ``Allow``, by the 405 handler) for a generic FHIR route reached with a
    name that is no type served here at a path other routes serve with other methods
    (``DELETE /fhir/metadata``, ``PUT /fhir/AuditEvent/[id]``): what ``OPTIONS`` of the
    path already said. These answered 404 "resource type 'metadata' is not supported",
    or 415 asking for a patch body, of an end-point that is there. Called once the caller
    is known (a 401 stays first) and before the body or any record is read; a name no
    route serves returns here and is refused as before (404 ``not-supported``)."""
    if type_name in RESOURCE_TYPES:
        return
    if allowed_methods(request.app.router.routes, request.scope):
        raise StarletteHTTPException(405)


async def compartment_search(request: Request) -> Response:
    """404 ``not-supported`` for a compartment search, whatever the method, the
    compartment's id or whether its record exists (nothing is read: no oracle)."""
    raise FhirError(
        404,
        [
            Issue(
                "not-supported",
                "this server offers no compartment search ([compartment]/[id]/[type]): "
                f"search {safe_name(str(request.path_params['type_name']))} itself, "
                "by its patient or subject parameter",
            )
        ],
    )


async def system_search(_request: Request) -> Response:
    """404 ``not-supported`` for ``[base]/_search``, whatever the method."""
    raise FhirError(404, [Issue("not-supported", NO_SYSTEM_SEARCH)])


def add(router: APIRouter, path: str) -> None:
    """Serve ``path`` (one of the paths above) as an unknown operation, every method."""
    router.add_api_route(path, unknown_operation, methods=list(METHODS), include_in_schema=False)


def add_compartments(router: APIRouter) -> None:
    """Serve the compartment search paths with their refusal, every method."""
    for path in COMPARTMENT_PATHS:
        router.add_api_route(
            path, compartment_search, methods=list(METHODS), include_in_schema=False
        )


def add_system_search(router: APIRouter) -> None:
    """Serve ``[base]/_search`` with its refusal, every method (before ``/{type_name}``
    reads ``_search`` as a type)."""
    router.add_api_route(
        SYSTEM_SEARCH_PATH, system_search, methods=list(METHODS), include_in_schema=False
    )


def routing_refused(request: Request, status: int, allowed: str) -> Issue | None:
    """What a 404 or 405 of the router says under the FHIR base, where Starlette's bare
    "Not Found" and "Method Not Allowed" told a FHIR client nothing it could act on
    (None elsewhere: the console, sign-in and ``/verify`` keep their answers). Only the
    method and ``allowed`` (the ``Allow`` header sent) are read, never the path's
    segments: an id is neither looked up nor repeated, whether its record exists or not."""
    path = request.url.path
    if path != FHIR_BASE and not path.startswith(FHIR_BASE + "/"):
        return None
    if status == 404:
        return Issue("not-found", NO_END_POINT)
    if status != 405:
        return None
    if path.rstrip("/") == FHIR_BASE and request.method in ("GET", "HEAD"):
        return Issue("not-supported", NO_SYSTEM_SEARCH)
    # A method is a token of the client's choosing: named only if it is one of HTTP's.
    method = request.method if request.method in METHODS else "this method"
    return Issue(
        "not-supported",
        f"{method} is not supported at this path, which takes {allowed or 'no method'}",
    )


REFUSING_ENDPOINTS.update({unknown_operation, compartment_search, system_search})
