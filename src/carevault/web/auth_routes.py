"""Sign-in and tokens: SMART configuration, the authorize page, token and revocation."""

from __future__ import annotations

import secrets
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, RedirectResponse, Response

from carevault.access.accounts import SignInFailed
from carevault.access.oauth import AuthorizeRequest, OAuthError, Origin
from carevault.config import browser_origin
from carevault.fhir.outcome import FhirError
from carevault.fhir.query import safe_name
from carevault.rest.launch import PatientChoice, PatientPicker, picker_caller
from carevault.web.cookies import on_https
from carevault.web.fhir_routes import read_body
from carevault.web.officers import require_whole_account
from carevault.web.responses import NO_STORE, request_id_of
from carevault.web.security import CallerDep, ServicesDep, client_address

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

_CSRF_COOKIE = "cv_csrf"
_AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "launch",
)
#: The login page must not be framed (clickjacking) nor cached.
_PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def _form_page_headers(redirect_uri: str) -> dict[str, str]:
    """The headers of a sign-in form page of a checked authorize request: those above,
    with ``form-action`` also allowing the origin of the request's (registered) redirect
    URI. A browser applies form-action to the redirects that follow a post as well (CSP
    Level 3), and each of these forms ends in a 302 to the app with its code or error:
    under ``'self'`` alone Chromium blocked that redirect, and no browser app ever got
    its code. Only that one origin is added, never a wildcard."""
    origin = browser_origin(redirect_uri)
    if origin is None:
        return dict(_PAGE_HEADERS)
    return {
        **_PAGE_HEADERS,
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; "
            f"form-action 'self' {origin}; frame-ancestors 'none'"
        ),
    }


def _origin(request: Request) -> Origin:
    return Origin(client_address(request), request.headers.get("user-agent"))


def base_url(request: Request, svc: Any) -> str:
    configured: str | None = svc.settings.public_base_url
    return configured or f"{request.url.scheme}://{request.url.netloc}"


def endpoints(base: str) -> dict[str, str]:
    return {
        "authorize": f"{base}/auth/authorize",
        "token": f"{base}/auth/token",
        "revoke": f"{base}/auth/revoke",
        "jwks": f"{base}/.well-known/jwks.json",
    }


async def _form(request: Request, limit: int = 64 * 1024) -> dict[str, str]:
    """The token or revocation request's parameters; OAuthError (RFC 6749 5.2, never a
    FHIR OperationOutcome, which an OAuth client reads as no error) for a body that is
    not a form, too large, sent compressed, or that gives a parameter twice (RFC 6749
    3.1, 3.2: the last of two was taken, which one the client meant is not ours to
    guess)."""
    from urllib.parse import parse_qsl

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send application/x-www-form-urlencoded")
    try:
        body = await read_body(request, limit)
    except FhirError as error:
        raise OAuthError("invalid_request", _first_message(error)) from None
    form: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if name in form:
            raise OAuthError(
                "invalid_request", f"the parameter '{safe_name(name)}' is given more than once"
            )
        form[name] = value
    return form


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="carevault"'
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status if error.status in (400, 401) else 400,
        headers=headers,
    )


def _form_page(
    request: Request,
    template: str,
    params: dict[str, str],
    context: dict[str, Any],
    *,
    csrf: str,
    status: int,
    redirect_uri: str,
) -> Response:
    """A sign-in form page (login, patient picker): never framed nor cached, with its
    CSRF token in the page and in a strict cookie the post is checked against."""
    response = templates.TemplateResponse(
        request,
        template,
        {
            **context,
            "csrf": csrf,
            "hidden": [(name, params[name]) for name in _AUTHORIZE_FIELDS if name in params],
        },
        status_code=status,
        headers=_form_page_headers(redirect_uri),
    )
    response.set_cookie(
        _CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        # Behind a proxy that ends TLS the request is plain http, but the browser is on
        # the https public URL (web/cookies.py, as for the console's cookies).
        secure=on_https(request),
        path="/auth",
    )
    return response


def _login_page(
    request: Request,
    params: dict[str, str],
    checked: AuthorizeRequest,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "client_name": checked.client.name,
        "scope": checked.scope.text(),
        "error": error,
        "action": "/auth/authorize",
    }
    return _form_page(
        request,
        "login.html",
        params,
        context,
        csrf=secrets.token_urlsafe(24),
        status=status,
        redirect_uri=checked.redirect_uri,
    )


def _picker_page(
    request: Request,
    params: dict[str, str],
    checked: AuthorizeRequest,
    ticket: str,
    choices: list[PatientChoice],
    *,
    query: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "client_name": checked.client.name,
        "scope": checked.scope.text(),
        "error": error,
        "ticket": ticket,
        "query": query,
        "choices": choices,
        "action": "/auth/launch",
    }
    csrf = request.cookies.get(_CSRF_COOKIE) or secrets.token_urlsafe(24)
    return _form_page(
        request,
        "patient_picker.html",
        params,
        context,
        csrf=csrf,
        status=status,
        redirect_uri=checked.redirect_uri,
    )


def _refuse_page(request: Request, message: str) -> Response:
    return templates.TemplateResponse(
        request,
        "authorize_error.html",
        {"message": message},
        status_code=400,
        headers=_PAGE_HEADERS,
    )


async def _checked(
    request: Request, svc: Any, params: dict[str, str]
) -> AuthorizeRequest | Response:
    """The authorize request ``params`` checked, or what answers a bad one: a redirect
    back to the app where its redirect URI may be trusted, a page otherwise."""
    try:
        checked: AuthorizeRequest = await run_in_threadpool(
            svc.oauth.check_authorize, params, base_url(request, svc) + "/fhir", _origin(request)
        )
    except OAuthError as error:
        if error.status == 302:
            return RedirectResponse(svc.oauth.error_redirect(params, error), status_code=302)
        return _refuse_page(request, error.description)
    return checked


async def _posted(request: Request, expired: str) -> dict[str, str] | Response:
    """A sign-in form's fields, or the page refusing it: not a form, or its CSRF token
    is not the cookie's (``expired`` says so)."""
    try:
        form = await _form(request)
    except OAuthError as error:
        return _refuse_page(request, error.description)
    cookie = request.cookies.get(_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "")):
        return _refuse_page(request, expired)
    return form


@router.get("/auth/authorize")
async def authorize_page(request: Request, svc: ServicesDep) -> Response:
    params = dict(request.query_params)
    checked = await _checked(request, svc, params)
    if isinstance(checked, Response):
        return checked
    return _login_page(request, params, checked)


@router.post("/auth/authorize")
async def authorize_submit(request: Request, svc: ServicesDep) -> Response:
    form = await _posted(request, "the sign-in form expired; start again from the app")
    if isinstance(form, Response):
        return form
    params = {name: form[name] for name in _AUTHORIZE_FIELDS if name in form}
    checked = await _checked(request, svc, params)
    if isinstance(checked, Response):
        return checked
    if form.get("cancel"):
        # The user declined to sign in: the app is told so (RFC 6749 4.1.2.1), rather
        # than left waiting for a browser that never comes back.
        return RedirectResponse(
            svc.oauth.declined(checked), status_code=302, headers={"Cache-Control": "no-store"}
        )
    try:
        approved = await run_in_threadpool(
            svc.oauth.approve,
            checked,
            form.get("username", ""),
            form.get("password", ""),
            form.get("totp", ""),
            _origin(request),
        )
    except SignInFailed as failure:
        return _login_page(request, params, checked, error=str(failure), status=401)
    if approved.redirect is not None:
        return RedirectResponse(
            approved.redirect, status_code=302, headers={"Cache-Control": "no-store"}
        )
    return await _pick(request, svc, params, checked, approved.code, {})


@router.post("/auth/launch")
async def launch_submit(request: Request, svc: ServicesDep) -> Response:
    """The patient picker of a patient launch: find patients, or choose one."""
    form = await _posted(request, "the form expired; start again from the app")
    if isinstance(form, Response):
        return form
    params = {name: form[name] for name in _AUTHORIZE_FIELDS if name in form}
    checked = await _checked(request, svc, params)
    if isinstance(checked, Response):
        return checked
    return await _pick(request, svc, params, checked, form.get("ticket", ""), form)


async def _pick(
    request: Request,
    svc: Any,
    params: dict[str, str],
    checked: AuthorizeRequest,
    ticket: str,
    form: dict[str, str],
) -> Response:
    """List patients the signed-in user may see (through the gate, as them), or put the
    chosen one in context and send the browser back to the app with its code."""
    picker: PatientPicker = svc.picker
    origin = _origin(request)
    try:
        account = await run_in_threadpool(svc.oauth.picking, ticket, checked)
    except OAuthError as error:
        return RedirectResponse(svc.oauth.error_redirect(params, error), status_code=302)
    caller = picker_caller(
        account,
        checked.client.client_id,
        origin.source_address,
        origin.user_agent,
        request_id_of(request.scope),
    )
    if form.get("cancel"):
        try:
            declined = await run_in_threadpool(svc.oauth.decline, ticket, checked)
        except OAuthError as error:
            declined = svc.oauth.error_redirect(params, error)
        return RedirectResponse(declined, status_code=302, headers={"Cache-Control": "no-store"})
    query = form.get("q", "")
    chosen = form.get("patient")
    message: str | None = None
    if chosen:
        try:
            patient = await run_in_threadpool(picker.choose, caller, chosen)
            target = await run_in_threadpool(svc.oauth.pick, ticket, checked, patient, origin)
        except OAuthError as refused:
            return RedirectResponse(svc.oauth.error_redirect(params, refused), status_code=302)
        except FhirError:
            message = "you may not choose that patient"
        else:
            return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})
    try:
        choices = await run_in_threadpool(picker.find, caller, query)
    except FhirError as refused:
        choices = []
        message = message or _first_message(refused)
    return _picker_page(
        request,
        params,
        checked,
        ticket,
        choices,
        query=query,
        error=message,
        status=403 if chosen else 200,
    )


def _first_message(error: FhirError) -> str:
    return error.issues[0].diagnostics if error.issues else "the search was refused"


@router.post("/auth/token")
async def token(request: Request, svc: ServicesDep) -> Response:
    try:
        form = await _form(request)
        base = base_url(request, svc)
        body = await run_in_threadpool(
            partial(svc.oauth.token, audience=endpoints(base)["token"]),
            form,
            request.headers.get("authorization"),
            _origin(request),
            base,
        )
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(body, headers=NO_STORE)


@router.post("/auth/revoke")
async def revoke(request: Request, svc: ServicesDep) -> Response:
    try:
        form = await _form(request)
        await run_in_threadpool(
            partial(svc.oauth.revoke, audience=endpoints(base_url(request, svc))["token"]),
            form,
            request.headers.get("authorization"),
            _origin(request),
        )
    except OAuthError as error:
        return _oauth_error(error)
    return Response(status_code=200, headers=NO_STORE)


@router.get("/auth/sessions")
async def my_sessions(who: CallerDep, svc: ServicesDep) -> JSONResponse:
    require_whole_account(who, "listing the account's sessions")
    account_id = who.actor.account_id if who.actor else None
    if account_id is None:
        return JSONResponse({"sessions": []}, headers=NO_STORE)
    sessions = await run_in_threadpool(svc.sessions.list_for, account_id)
    return JSONResponse(
        {
            "sessions": [
                {
                    "id": item.session_id,
                    "client_id": item.client_id,
                    "created_us": item.created_us,
                    "last_used_us": item.last_used_us,
                    "expires_us": item.expires_us,
                    "source_address": item.source_address,
                    "user_agent": item.user_agent,
                    "current": item.session_id == who.session_id,
                }
                for item in sessions
            ]
        },
        headers=NO_STORE,
    )


@router.delete("/auth/sessions/{session_id}")
async def end_session(
    session_id: str, request: Request, who: CallerDep, svc: ServicesDep
) -> Response:
    require_whole_account(who, "ending the account's sessions")
    account_id = who.actor.account_id if who.actor else None
    ended = account_id is not None and await run_in_threadpool(
        svc.oauth.end_session, account_id, session_id, _origin(request)
    )
    if not ended:
        return JSONResponse({"error": "no such session"}, status_code=404, headers=NO_STORE)
    return Response(status_code=204, headers=NO_STORE)
