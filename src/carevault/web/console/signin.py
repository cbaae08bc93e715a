"""Signing in and out of the console, and the signed-in person's own account: language,
sessions, and enrolling a new authenticator."""

from __future__ import annotations

import contextlib
import hmac
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.access.accounts import SignInFailed
from carevault.console.sessions import ConsoleRefused, StepUpRefused
from carevault.web.console.guard import (
    FormDep,
    ViewerDep,
    cookie_name,
    form,
    origin,
    services,
)
from carevault.web.console.qr import enrolment_qr, grouped
from carevault.web.console.render import page, translator
from carevault.web.cookies import secure_cookie

router = APIRouter()

#: A sign-in form's own CSRF token (there is no session yet): a double-submit cookie.
SIGN_IN_COOKIE = "carevault-console-signin"
#: The same over https: a ``__Host-`` cookie (Secure, Path=/, no Domain), which a sibling
#: host or a plain-http answer cannot plant with a token of its choosing (login CSRF).
SECURE_SIGN_IN_COOKIE = "__Host-carevault-console-signin"


def _sign_in_cookie(request: Request) -> tuple[str, str]:
    """The sign-in token cookie's name and path for this request."""
    if secure_cookie(request):
        return SECURE_SIGN_IN_COOKIE, "/"
    return SIGN_IN_COOKIE, "/console/sign-in"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if value and value.startswith("/console/") and not value.startswith("/console//"):
        return value
    return "/console/dashboard"


def _sign_in_page(
    request: Request,
    *,
    message: str | None = None,
    kind: str = "error",
    username: str = "",
    next_path: str = "/console/dashboard",
    status: int = 200,
) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "console/sign_in.html",
        {
            "title_key": "signin.title",
            "message": message,
            "message_kind": kind,
            "username": username,
            "next": next_path,
            "signin_token": token,
        },
        status=status,
    )
    name, path = _sign_in_cookie(request)
    response.set_cookie(
        name, token, httponly=True, samesite="strict", secure=secure_cookie(request), path=path
    )
    return response


@router.get("/console")
@router.get("/console/")
async def home() -> Response:
    return RedirectResponse("/console/dashboard", status_code=303)


@router.get("/console/sign-in")
async def sign_in_page(request: Request) -> Response:
    reason = request.query_params.get("why")
    messages = {
        "idle": ("signin.timed_out", "info"),
        "out": ("signin.signed_out", "info"),
        "reset": ("signin.after_reset", "info"),
        "required": ("signin.required", "info"),
    }
    message, kind = messages.get(reason or "", (None, "error"))
    return _sign_in_page(
        request,
        message=message,
        kind=kind,
        next_path=safe_next(request.query_params.get("next")),
    )


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    values = await form(request)
    svc = services(request)
    next_path = safe_next(values.get("next"))
    username = values.get("username", "")[:64]
    cookie, cookie_path = _sign_in_cookie(request)
    expected = request.cookies.get(cookie, "")
    sent = values.get("csrf", "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        return _sign_in_page(request, message="signin.expired", next_path=next_path, status=400)
    try:
        secret = await run_in_threadpool(
            svc.console.sign_in,
            username,
            values.get("password", ""),
            values.get("totp", ""),
            origin(request),
        )
    except SignInFailed:
        return _sign_in_page(
            request, message="signin.failed", username=username, next_path=next_path, status=401
        )
    except ConsoleRefused:
        return _sign_in_page(request, message="signin.not_for_role", status=403)
    held = request.cookies.get(cookie_name(request), "")
    if held:
        await run_in_threadpool(svc.console.end_replaced, held, origin(request))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        cookie_name(request),
        secret,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
        path="/",
    )
    response.delete_cookie(
        cookie, path=cookie_path, secure=secure_cookie(request), httponly=True, samesite="strict"
    )
    return response


def signed_out(request: Request, why: str) -> Response:
    response = RedirectResponse(f"/console/sign-in?why={quote(why)}", status_code=303)
    response.delete_cookie(
        cookie_name(request), path="/", secure=secure_cookie(request), httponly=True
    )
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request, viewer: ViewerDep, _form: FormDep) -> Response:
    svc = services(request)
    await run_in_threadpool(svc.console.sign_out, request.state.secret, viewer, origin(request))
    return signed_out(request, "out")


@router.get("/console/account")
async def account(request: Request, viewer: ViewerDep) -> Response:
    svc = services(request)
    own = await run_in_threadpool(svc.sessions.list_for, viewer.account_id)
    return page(
        request,
        "console/account.html",
        {"title_key": "account.title", "sessions": own, "message": None},
        current="/console/account",
    )


@router.post("/console/account/language")
async def language(request: Request, viewer: ViewerDep, values: FormDep) -> Response:
    svc = services(request)
    with contextlib.suppress(ValueError):
        await run_in_threadpool(
            svc.console.set_language, viewer.account_id, values.get("language", "")
        )
    return RedirectResponse(safe_next(values.get("back")), status_code=303)


@router.post("/console/account/authenticator")
async def new_authenticator(request: Request, viewer: ViewerDep, values: FormDep) -> Response:
    """Enrol a new authenticator: confirmed with a code from the current one; every
    session of the account then ends, this one too, and the new QR code is shown once."""
    svc = services(request)
    try:
        await run_in_threadpool(
            svc.console.confirm_code,
            viewer,
            values.get("totp", ""),
            "enrol a new authenticator",
            origin(request),
        )
    except StepUpRefused:
        own = await run_in_threadpool(svc.sessions.list_for, viewer.account_id)
        return page(
            request,
            "console/account.html",
            {"title_key": "account.title", "sessions": own, "message": "stepup.refused"},
            status=403,
            current="/console/account",
        )
    _, secret = await run_in_threadpool(svc.admin.reset_totp, viewer.principal, viewer.username)
    t = translator(request, viewer)
    # The session has just ended: the page is shown as to someone signed out.
    request.state.viewer = None
    request.state.csrf = ""
    request.state.language = viewer.language
    response = page(
        request,
        "console/enrol.html",
        {
            "title_key": "enrol.title",
            "qr": enrolment_qr(secret, viewer.username, t("enrol.qr_title")),
            "secret": grouped(secret),
            "for_self": True,
            "person": viewer.display_name,
        },
    )
    response.delete_cookie(
        cookie_name(request), path="/", secure=secure_cookie(request), httponly=True
    )
    return response
