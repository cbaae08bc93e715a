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
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

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


async def unknown_operation(request: Request) -> Response:
    """404 for an operation no route defines; 405 (with ``Allow``, by the 405 handler)
    for a known one asked with a method it does not take."""
    if allowed_methods(request.app.router.routes, request.scope):
        raise StarletteHTTPException(405)
    raise operations.unknown_operation(str(request.path_params["operation"]))


def add(router: APIRouter, path: str) -> None:
    """Serve ``path`` (one of the paths above) as an unknown operation, every method."""
    router.add_api_route(path, unknown_operation, methods=list(METHODS), include_in_schema=False)


REFUSING_ENDPOINTS.add(unknown_operation)
