"""The app factory: ``create_app(settings)`` builds the services and mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route

from carevault import __version__, logsafe
from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.fhir.outcome import FhirError
from carevault.web import (
    admin_routes,
    alert_routes,
    audit_routes,
    auth_routes,
    console,
    discovery_routes,
    export_routes,
    fhir_routes,
    import_routes,
    incident_routes,
    step_up_routes,
    verify_routes,
)
from carevault.web.accounting import RefusalRecords
from carevault.web.cors import CrossOrigin
from carevault.web.fhir_format import FhirFormat
from carevault.web.guard import RequestGuard
from carevault.web.head import HeadAsGet
from carevault.web.health import Readiness
from carevault.web.responses import (
    UnexpectedErrors,
    on_fhir_error,
    on_http_error,
    on_validation_error,
)
from carevault.web.routers import App, include


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app; services are built now (failing fast on bad settings), closed on shutdown."""
    built = services or build_services(settings)
    # A server answers sign-ins: the unknown-username decoy is made before the first one.
    built.accounts.passwords.warm()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if services is None:
            built.start_background()
        try:
            yield
        finally:
            if services is None:
                built.close()

    app = App(
        title="CareVault",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # FastAPI's own OpenTelemetry hooks: unused (no provider is configured), yet
        # asked on every request; and an exporter switched on from the environment
        # would send request paths (resource ids) to a collector. Off.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.services = built
    logsafe.install("uvicorn", "uvicorn.error")
    logsafe.install_tree("carevault")
    # JSON only: a FHIR request that accepts no JSON is answered 406 (inside the refusal
    # records, so a signed-in caller's 406 is in the ledger like any refusal).
    app.add_middleware(FhirFormat)
    # A refused answer to a signed-in caller that nothing else recorded is recorded.
    app.add_middleware(RefusalRecords, services=built)
    app.add_middleware(admin_routes.BlockedAddresses, services=built)
    # Browser SMART apps: inside the door (Host, rate limits), before anything answers.
    app.add_middleware(CrossOrigin, services=built)
    # Outermost: a wrong Host or a flooding address is turned away before anything runs.
    app.add_middleware(RequestGuard, services=built)
    app.add_middleware(UnexpectedErrors)  # it answers what the others raise
    # Outermost: a HEAD of a FHIR read is the GET to everything inside (guard, gate,
    # ledger), and no answer to it, refusals and errors included, carries a body.
    app.add_middleware(HeadAsGet)
    app.add_exception_handler(FhirError, on_fhir_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    # The read by id before any router (see fhir_routes.READ_PATH), as a plain Starlette
    # route: it takes only the Request, so FastAPI's per-request dependency solving and
    # endpoint wrapping (a tenth of the event loop's work on a read) do nothing for it.
    # GET only, as the FastAPI route was (a Starlette route would add HEAD by itself).
    definition_route = Route(
        import_routes.DEFINITION_PATH, import_routes.import_definition_route, methods=["GET"]
    )
    definition_route.methods = {"GET"}
    app.router.routes.append(definition_route)
    read_route = Route(fhir_routes.READ_PATH, fhir_routes.read, methods=["GET"])
    read_route.methods = {"GET"}
    app.router.routes.append(read_route)
    # The audit routes first: /fhir/AuditEvent is not one of the generic FHIR types; so
    # are the other routers with paths under /fhir (admin's $emergency-access, the SMART
    # discovery document). Then the generic FHIR routes, tried early because they serve
    # most requests (routes are tried in order), and the routers with no /fhir path.
    include(
        app,
        audit_routes.router,
        admin_routes.router,
        discovery_routes.router,
        # Before the generic FHIR routes, which would read /fhir/Patient/$export as a read.
        export_routes.router,
        import_routes.router,
        fhir_routes.router,
        alert_routes.router,
        incident_routes.router,
        auth_routes.router,
        step_up_routes.router,
    )
    console.install(app, built)
    verify_routes.install(app, built)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    readiness = Readiness(built)

    @app.get("/readyz", include_in_schema=False)
    async def ready() -> JSONResponse:
        return await readiness.respond()

    return app
