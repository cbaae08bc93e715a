"""Routes under /fhir: parse the HTTP request, call one interaction, answer FHIR."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Collection
from concurrent.futures import Future
from contextlib import suppress
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from carevault.clock import read_http_date, to_micros
from carevault.db import on_the_loop
from carevault.fhir import jsonio, mediatype
from carevault.fhir.content import has_control_characters
from carevault.fhir.outcome import FhirError, Issue
from carevault.fhir.parameters import NotParameters, Part, parts
from carevault.fhir.query import VIEW_PARAMS, safe_name
from carevault.gate import Caller, WouldBlock
from carevault.ledger.trail import AuditUnavailable
from carevault.rest import (
    answers,
    conditional,
    everything_body,
    operations,
    patching,
    transaction,
    validating,
)
from carevault.rest.bundles import dumps
from carevault.rest.capability import (
    CAPABILITY_MODES,
    capability_statement,
    terminology_capabilities,
)
from carevault.rest.errors import translated
from carevault.rest.interactions import LAYOUT_PARAMS, FhirResponse
from carevault.vault.records import Opened
from carevault.web import unknown_operations
from carevault.web.prefer import prefer_header, strict_handling
from carevault.web.responses import fhir_response
from carevault.web.security import CallerDep, ServicesDep, authenticate, caller, services

router = APIRouter(prefix="/fhir")


class _TypeName(Convertor[str]):
    """A resource type's name as FHIR spells them (an upper-case letter, then letters):
    what tells a read by id from the other paths of two segments under /fhir (the SMART
    discovery document's ``/fhir/.well-known/...``)."""

    regex = "[A-Z][A-Za-z]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fhir_type", _TypeName())


class _ResourceId(_TypeName):
    """A resource id as FHIR allows them (``[A-Za-z0-9\\-\\.]{1,64}``): never an operation
    such as ``$export`` (``/fhir/Patient/$export``), whose router comes later."""

    regex = "[A-Za-z0-9.-]{1,64}"


register_url_convertor("fhir_id", _ResourceId())

#: The read by id, routed before every router (``web.app``): most requests are reads,
#: and FastAPI tries routes one by one, each costing a few microseconds. The generic
#: route below stays for paths this one does not take (they answer as before).
READ_PATH = "/fhir/{type_name:fhir_type}/{resource_id:fhir_id}"


def base_url(request: Request) -> str:
    """The FHIR base every link is built on: from configuration when it is set (the
    Host header is then never used); otherwise a loopback Host the guard let through."""
    configured: str | None = request.app.state.services.settings.public_base_url
    if configured:
        return f"{configured}/fhir"
    # What ``request.url`` would give (its netloc is the Host header when there is one),
    # without parsing the whole URL: that cost a read by id more than its policy check.
    host = request.headers.get("host")
    if host:
        return f"{request.scope.get('scheme', 'http')}://{host}/fhir"
    return f"{request.url.scheme}://{request.url.netloc}/fhir"


def query_params(request: Request) -> list[tuple[str, str]]:
    return parse_qsl(request.url.query, keep_blank_values=True)


def view_params(request: Request) -> list[tuple[str, str]]:
    """A read's ``_summary`` and ``_elements`` (``rest.interactions.read_view``); the query
    is parsed only when there is one, which a plain read by id does not have."""
    if not request.scope.get("query_string"):
        return []
    return [(name, value) for name, value in query_params(request) if name in VIEW_PARAMS]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 before it is read if it is over ``limit``, and
    with 415 if it is sent with a content coding: nothing here decodes one (a gzip bomb
    is not ours to open), and read as it came a compressed body was taken as text (an
    ``$import`` of gzip bytes was queued, then every "line" refused as not UTF-8)."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding not in ("", "identity"):
        raise FhirError(
            415,
            [
                Issue(
                    "not-supported",
                    f"Content-Encoding '{safe_name(coding[:40])}' is not accepted:"
                    " send the body uncompressed",
                )
            ],
        )
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise FhirError(413, [Issue("too-long", f"the body is over the limit of {limit} bytes")])
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(
                413, [Issue("too-long", f"the body is over the limit of {limit} bytes")]
            )
        chunks.append(chunk)
    return b"".join(chunks)


def body_media(request: Request, accepted: Collection[str], wanted: str) -> str:
    """The media type the request body is sent as, refused with 415 (``wanted``: what to
    send instead) unless it is one of ``accepted``, in UTF-8, of no FHIR release but R4:
    a body is never read as what it says it is not (``fhir.mediatype.body_problem``)."""
    content_type = request.headers.get("content-type", "")
    problem = mediatype.body_problem(content_type, accepted, wanted)
    if problem is not None:
        raise FhirError(415, [Issue("not-supported", problem)])
    return mediatype.parse(content_type).name


async def fhir_body(request: Request, limit: int) -> bytes:
    body_media(request, mediatype.JSON_BODIES, "send application/fhir+json")
    return await read_body(request, limit)


async def parameter_parts(request: Request, limit: int = 64 * 1024) -> list[Part]:
    """Every part of a FHIR Parameters body (an operation's input), repeats included, each
    with the type its value came as: the operation decides which it takes and refuses
    the rest (``fhir.parameters``). Text with control characters is refused (422)."""
    return parts_of(await fhir_body(request, limit))


def parts_of(body: bytes) -> list[Part]:
    """``parameter_parts`` of a body read already."""
    try:
        found = parts(jsonio.parse(body))
    except NotParameters as error:
        raise FhirError(400, [Issue("invalid", str(error))]) from None
    except ValueError:
        raise FhirError(400, [Issue("invalid", "send a Parameters resource")]) from None
    for part in found:
        if isinstance(part.value, str) and has_control_characters(part.value):
            where = f"Parameters.parameter({safe_name(part.name)})"
            raise FhirError(
                422,
                [
                    Issue(
                        "value", f"{where}: control characters are not allowed", expression=(where,)
                    )
                ],
            )
    return found


async def parameters_body(request: Request, limit: int = 64 * 1024) -> dict[str, str]:
    """The text values (``valueCode``, ``valueString``) of a FHIR Parameters body, by name:
    for an operation whose every input is text and that refuses what it misses (the
    break-glass reason and words). An operation whose inputs narrow what it releases
    reads ``parameter_parts`` instead, and refuses what it does not take."""
    return {
        part.name: part.value
        for part in await parameter_parts(request, limit)
        if part.value_type in ("valueCode", "valueString") and isinstance(part.value, str)
    }


async def run(call: Callable[..., FhirResponse], *args: Any, **kwargs: Any) -> Response:
    return fhir_response(await run_in_threadpool(call, *args, **kwargs))


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    mode = request.query_params.get("mode", "full")
    if mode not in CAPABILITY_MODES:
        raise FhirError(400, [Issue("invalid", "mode must be full, normative or terminology")])
    if mode == "terminology":
        # R4 terminologycapabilities.html: this mode answers TerminologyCapabilities.
        statement = terminology_capabilities(base_url(request))
    else:
        statement = capability_statement(base_url(request))
    return fhir_response(FhirResponse(200, dumps(statement)))


@router.post("")
@router.post("/")
async def bundle(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    body = await fhir_body(request, svc.settings.max_body_bytes)
    return await run(
        transaction.process,
        svc.fhir,
        who,
        body,
        base_url(request),
        prefer=prefer_header(request),
    )


@router.get("/_history")
async def system_history(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    """Versions of every type the caller may search, read as searches read."""
    return await run(svc.fhir.history_of_many, who, None, query_params(request), base_url(request))


async def as_caller(request: Request, call: Callable[[Caller], FhirResponse]) -> Response:
    """``call`` as the request's caller, the token check and the call in one trip to the
    thread pool (``CallerDep`` and ``run`` take two, each a thread hand-off both ways),
    without FastAPI's dependency machinery; the token check is the same ``authenticate``
    every ``CallerDep`` runs. An override of the ``caller`` dependency (the tests'
    in-process client acts as the system itself) replaces it, as FastAPI would."""
    override = request.app.dependency_overrides.get(caller)
    if override is not None:
        who = override()
        if inspect.isawaitable(who):
            who = await who
        return fhir_response(await run_in_threadpool(call, who))
    svc = services(request)

    def answer() -> FhirResponse:
        return call(authenticate(svc, request))

    return fhir_response(await run_in_threadpool(answer))


# An operation no router before defines (``$export``, ``$import`` come earlier): 404,
# before ``/{type_name}`` reads its name as a type.
unknown_operations.add(router, unknown_operations.SYSTEM_PATH)
unknown_operations.add_system_search(router)


@router.get("/{type_name}")
async def search(request: Request) -> Response:
    """Searches are the second most frequent request: see ``as_caller``. The token is
    checked before anything of the query is looked at, as with ``CallerDep``."""
    svc = services(request)
    type_name: str = request.path_params["type_name"]

    def find(who: Caller) -> FhirResponse:
        return svc.fhir.search(
            who,
            type_name,
            query_params(request),
            base_url(request),
            strict=strict_handling(request),
        )

    return await as_caller(request, find)


#: A ``_search`` body: form-encoded parameters (http.html#search).
_FORM = frozenset({"application/x-www-form-urlencoded"})


@router.post("/{type_name}/_search")
async def search_post(
    type_name: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    if request.headers.get("content-type") is None and _no_content(request):
        # Parameters in the URL alone: a POST with no content needs no Content-Type
        # (RFC 9110 8.3: it goes with content), and R4 http.html#search allows both.
        form = ""
    else:
        body_media(request, _FORM, "_search takes a form-encoded body")
        form = (await read_body(request, svc.settings.max_body_bytes)).decode("utf-8", "replace")
    params = query_params(request) + parse_qsl(form, keep_blank_values=True)
    return await run(
        svc.fhir.search, who, type_name, params, base_url(request), strict=strict_handling(request)
    )


def _no_content(request: Request) -> bool:
    """Whether the request says it has no content: ``Content-Length: 0``, or neither a
    length nor a chunked body (RFC 9112 6.3: then there is none)."""
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() == "0"
    return "transfer-encoding" not in request.headers


def create_criteria(request: Request) -> str | None:
    """A conditional create's criteria: the If-None-Exist header, or search parameters in
    the query (as fhirpy's ``get_or_create`` sends them). Parameters on a create were
    ignored, so such a client made a duplicate patient on every call; never both."""
    header = request.headers.get("if-none-exist")
    criteria = [(name, value) for name, value in query_params(request) if name not in LAYOUT_PARAMS]
    if not criteria:
        return header
    if header is not None:
        raise FhirError(
            400, [Issue("invalid", "give a create's criteria in If-None-Exist or the query")]
        )
    return urlencode(criteria)


@router.post("/{type_name}")
async def create(type_name: str, request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    body = await fhir_body(request, svc.settings.max_body_bytes)
    return await run(
        svc.fhir.create,
        who,
        type_name,
        body,
        base_url(request),
        prefer=prefer_header(request),
        if_none_exist=create_criteria(request),
    )


@router.post("/Patient/$register")
async def register(request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    """Register a patient who is present at one of the caller's clinics (identifier and
    birth date, matched through the blind index)."""
    body = await fhir_body(request, 64 * 1024)
    return await run(operations.register_patient, svc.fhir, who, body, base_url(request))


@router.post("/Patient/{patient_id}/$transfer")
async def transfer(patient_id: str, request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    """Move a patient's home clinic: a privacy officer, or the manager of both clinics."""
    body = await fhir_body(request, 64 * 1024)
    return await run(operations.transfer_patient, svc.fhir, who, patient_id, body)


@router.get("/Patient/{patient_id}/$everything")
async def everything(
    patient_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    return await run(svc.fhir.everything, who, patient_id, query_params(request), base_url(request))


@router.post("/Patient/{patient_id}/$everything")
async def everything_posted(
    patient_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    """R4 operations.html: every operation may be invoked by POST (fhirpy's ``execute``
    does); no body is no parameter, a Parameters body adds its parts to the query's."""
    body = await read_body(request, 64 * 1024)
    posted: list[tuple[str, str]] = []
    if body.strip():
        body_media(request, mediatype.JSON_BODIES, "send application/fhir+json")
        posted = everything_body.body_params(parts_of(body))
    params = [*query_params(request), *posted]
    return await run(svc.fhir.everything, who, patient_id, params, base_url(request))


@router.post("/{type_name:fhir_type}/$validate")
async def validate(type_name: str, request: Request, svc: ServicesDep, who: CallerDep) -> Response:
    """R4 resource-operation-validate, general validation only (``rest/validating.py``):
    fhirpy's ``resource.is_valid()`` posts the resource here. It reads and writes no
    record, but only a signed-in caller (``who``) is answered."""
    body = await fhir_body(request, svc.settings.max_body_bytes)
    return await run(validating.validate, type_name, body, svc.fhir.limits)


# After the operations above, before the routes that read an operation's name as an id.
unknown_operations.add(router, unknown_operations.TYPE_PATH)
unknown_operations.add(router, unknown_operations.INSTANCE_PATH)
unknown_operations.add_compartments(router)


@router.get("/{type_name}/_history")
async def type_history(
    type_name: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    """Versions of one type's records, read as its search reads (before the read by id,
    whose route would take ``_history`` for an id)."""
    return await run(
        svc.fhir.history_of_many, who, type_name, query_params(request), base_url(request)
    )


@router.get("/{type_name}/{resource_id}")
async def read(request: Request) -> Response:
    """The most frequent request of all. On SQLite (in-process, nothing to wait for but
    the CPU) the token check and the read run on the event loop itself, with no trip to
    a worker thread, and the audit entry is queued for the ledger's group commit and
    awaited on the loop: the record is answered only once the entry is durable. What
    would wait on the loop (a refused token or a rate limit to record, a data key to
    unwrap) raises ``WouldBlock`` having recorded and spent nothing, and the read runs
    in a worker thread: the token check and the read in one trip to the thread pool. On
    PostgreSQL the same, once the record and its patient's registrations are read in
    one round trip awaited on the loop (``Gate.prefetch``); a fact the decision needs
    beyond those (a clinician's care relationship) sends the read to the thread. The
    path's two values are taken as they are, without FastAPI's dependency and parameter
    machinery; the token check is the same
    ``authenticate`` every other route's ``CallerDep`` runs."""
    svc = services(request)
    type_name, resource_id = request.path_params["type_name"], request.path_params["resource_id"]
    base = base_url(request)
    asked = view_params(request)
    strict = bool(asked) and strict_handling(request)
    # As FastAPI does for CallerDep: an override of the ``caller`` dependency (the tests'
    # in-process client acts as the system itself) replaces the token check.
    override = request.app.dependency_overrides.get(caller)
    who: Caller | None = None
    if override is not None:
        who = override()
        if inspect.isawaitable(who):
            who = await who
    elif svc.engine.dialect.name == "sqlite":
        # The entry is queued at the end of the loop's turn, with those of the other
        # reads the loop prepares in the same turn: one group commit for all of them.
        gathering = svc.audit.gathering(asyncio.get_running_loop().call_soon)
        pending: Future[Opened] | None = None
        # Run in a worker thread if it would wait; authenticated already (its rate-limit
        # token taken) if ``who`` is set by then.
        with suppress(WouldBlock), gathering, on_the_loop():
            who = authenticate(svc, request, may_block=False)
            view = svc.fhir.read_view(type_name, asked, strict=strict)
            pending = svc.fhir.read_later(who, type_name, resource_id, may_block=False)
        if pending is not None:
            opened = await released(pending, svc.audit.timeout)
            shown = svc.fhir.read_answer(opened, base, view)
            return fhir_response(not_modified(request, shown))
    elif svc.gate.loop_reads is not None:
        # PostgreSQL: the record and its registrations in one round trip awaited on the
        # loop, then decided, cut and queued for the ledger as on SQLite.
        pending = None
        with suppress(WouldBlock), on_the_loop():
            who = authenticate(svc, request, may_block=False)
            view = svc.fhir.read_view(type_name, asked, strict=strict)
            prefetched = await svc.fhir.prefetch(who, type_name, resource_id)
            with svc.audit.gathering(asyncio.get_running_loop().call_soon):
                pending = svc.fhir.read_later(
                    who, type_name, resource_id, may_block=False, prefetched=prefetched
                )
        if pending is not None:
            opened = await released(pending, svc.audit.timeout)
            shown = svc.fhir.read_answer(opened, base, view)
            return fhir_response(not_modified(request, shown))
    known = who

    def answer() -> FhirResponse:
        return svc.fhir.read(
            known or authenticate(svc, request),
            type_name,
            resource_id,
            base,
            asked,
            strict=strict,
        )

    return fhir_response(not_modified(request, await run_in_threadpool(answer)))


async def released(pending: Future[Opened], timeout: float) -> Opened:
    """The record of a read once its audit entry is durable, awaited on the event loop;
    its errors as the FHIR errors to answer with. Past ``timeout`` the ledger is taken
    as unavailable (503), and nothing is answered (fail closed)."""
    with translated():
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(pending)
        except TimeoutError:
            raise AuditUnavailable("the audit ledger could not be written in time") from None


def not_modified(request: Request, result: FhirResponse) -> FhirResponse:
    """304 Not Modified when ``If-None-Match`` names the version read, or, without it,
    when the version was written before ``If-Modified-Since`` (``answers``: the same test
    a Bundle's GET entry makes of its ``ifNoneMatch`` and ``ifModifiedSince``). A date
    given twice, or one that is not an HTTP-date, is ignored (RFC 9110 13.1.3)."""
    if_none_match = request.headers.get("if-none-match")
    dates = request.headers.getlist("if-modified-since")
    since = read_http_date(dates[0]) if len(dates) == 1 else None
    if since is None:
        # Every read passes here: the clock is read only for a date to weigh.
        return answers.not_modified(if_none_match, result)
    now = to_micros(services(request).gate.vault.clock())
    return answers.not_modified(if_none_match, result, since, now)


@router.put("/{type_name}/{resource_id}")
async def update(
    type_name: str, resource_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    body = await fhir_body(request, svc.settings.max_body_bytes)
    return await run(
        svc.fhir.update,
        who,
        type_name,
        resource_id,
        body,
        base_url(request),
        if_match=request.headers.get("if-match"),
        prefer=prefer_header(request),
        if_none_match=request.headers.get("if-none-match"),
    )


async def patch_body(request: Request, limit: int) -> tuple[bytes, str]:
    media = body_media(
        request,
        patching.PATCH_TYPES,
        f"PATCH takes {mediatype.JSON_PATCH} or {mediatype.MERGE_PATCH}",
    )
    return await read_body(request, limit), media


@router.patch("/{type_name}/{resource_id}")
async def patch(
    type_name: str, resource_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    limit = svc.settings.max_body_bytes
    body, media = await patch_body(request, limit)
    return await run(
        patching.patch,
        svc.fhir,
        who,
        type_name,
        resource_id,
        body,
        media,
        base_url(request),
        if_match=request.headers.get("if-match"),
        prefer=prefer_header(request),
        max_bytes=limit,
        if_none_match=request.headers.get("if-none-match"),
    )


@router.put("/{type_name}")
async def conditional_update(
    type_name: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    body = await fhir_body(request, svc.settings.max_body_bytes)
    return await run(
        conditional.update,
        svc.fhir,
        who,
        type_name,
        query_params(request),
        body,
        base_url(request),
        if_match=request.headers.get("if-match"),
        prefer=prefer_header(request),
        if_none_match=request.headers.get("if-none-match"),
    )


@router.patch("/{type_name}")
async def conditional_patch(
    type_name: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    limit = svc.settings.max_body_bytes
    body, media = await patch_body(request, limit)
    return await run(
        conditional.patch,
        svc.fhir,
        who,
        type_name,
        query_params(request),
        body,
        media,
        base_url(request),
        if_match=request.headers.get("if-match"),
        prefer=prefer_header(request),
        max_bytes=limit,
        if_none_match=request.headers.get("if-none-match"),
    )


@router.delete("/{type_name}")
async def conditional_delete(
    type_name: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    return await run(
        conditional.delete,
        svc.fhir,
        who,
        type_name,
        query_params(request),
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )


@router.delete("/{type_name}/{resource_id}")
async def delete(
    type_name: str, resource_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    unknown_operations.refuse_other_method(request, type_name)
    return await run(
        svc.fhir.delete,
        who,
        type_name,
        resource_id,
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
    )


@router.get("/{type_name}/{resource_id}/_history")
async def history(
    type_name: str, resource_id: str, request: Request, svc: ServicesDep, who: CallerDep
) -> Response:
    return await run(
        svc.fhir.history, who, type_name, resource_id, base_url(request), query_params(request)
    )


@router.get("/{type_name}/{resource_id}/_history/{version_id}")
async def vread(
    type_name: str,
    resource_id: str,
    version_id: str,
    request: Request,
    svc: ServicesDep,
    who: CallerDep,
) -> Response:
    read = await run_in_threadpool(
        svc.fhir.vread,
        who,
        type_name,
        resource_id,
        version_id,
        base_url(request),
        view_params(request),
        strict=strict_handling(request),
    )
    # A version is never rewritten: a client holding its ETag holds it (RFC 9110 13.1.2).
    return fhir_response(not_modified(request, read))
