"""Who may see a console page, and the checks every console request passes.

* The session: a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` except over
  plain http on loopback) naming a live console session; none, and the page sends
  the browser to sign in, having done nothing.
* CSRF: every form and every htmx request carries a token derived from the
  session's secret (HMAC-SHA256), compared in constant time; another session's
  token, or none, is refused (403) and recorded, and nothing changes.
* Roles: each page names the roles it serves (see ``PAGES``); a role not listed
  gets 403.
* Activity: a request the person makes holds off the idle timeout; one a page makes
  by itself on a timer (``polling_viewer``) or one refused as made by another site
  does not.
* Headers: a strict Content-Security-Policy (scripts and styles from this origin
  only, no inline script, no framing), no caching, no referrer, no sniffing: those of
  every page a browser shows, /verify's too (``carevault.web.headers``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Collection
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from carevault.access.oauth import Origin
from carevault.bootstrap import Services
from carevault.console.sessions import ConsoleSessionEnded, Viewer
from carevault.domain.policy import Actor
from carevault.domain.roles import Role
from carevault.gate import Caller
from carevault.ledger.events import AuditEvent, Outcome, Tag
from carevault.web.cookies import secure_cookie
from carevault.web.fhir_routes import read_body
from carevault.web.paths import logged_path
from carevault.web.responses import request_id_of
from carevault.web.security import client_address

PREFIX = "/console"
SECURE_COOKIE = "__Host-carevault-console"
LOOPBACK_COOKIE = "carevault-console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
FORM_LIMIT = 16 * 1024

OFFICER = frozenset({Role.PRIVACY_OFFICER})
MANAGERS = frozenset({Role.PRIVACY_OFFICER, Role.CLINIC_MANAGER})


class SignInRequired(Exception):
    """No live console session: the browser is sent to sign in; nothing was done."""

    def __init__(self, timed_out: bool = False) -> None:
        super().__init__("sign in")
        self.timed_out = timed_out


class NotForYou(Exception):
    """The signed-in role has no business on this page (403)."""


class CsrfRefused(Exception):
    """The form's token is missing or belongs to another session (403); nothing done."""


class ForeignRequest(Exception):
    """A request the browser says another site made (Fetch Metadata): refused (403) and
    recorded, before anything is read or done; the session is left as it was."""


#: ``Sec-Fetch-Site`` of a request another site made. ``SameSite=Strict`` keeps the
#: cookie from other *sites* only: a page on another port of the host, or on a sibling
#: name of the group's domain, is the same site, and its link or ``<img>`` carried the
#: cookie (adversary round 61). The console's own pages send ``same-origin``; an address
#: typed or a bookmark ``none``; a browser without Fetch Metadata sends nothing, and the
#: cookie's ``SameSite`` is then the defence.
FOREIGN_SITES = frozenset({"same-site", "cross-site"})


def from_elsewhere(request: Request) -> bool:
    return request.headers.get("sec-fetch-site", "").strip().lower() in FOREIGN_SITES


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def cookie_name(request: Request) -> str:
    return SECURE_COOKIE if secure_cookie(request) else LOOPBACK_COOKIE


def csrf_token(secret: str) -> str:
    digest = hmac.new(secret.encode(), b"carevault-console-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def origin(request: Request) -> Origin:
    return Origin(client_address(request), request.headers.get("user-agent"))


async def form(request: Request) -> dict[str, str]:
    """The urlencoded form of a console POST (small; anything else is an empty form)."""
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    values: dict[str, str] = {}
    if media == "application/x-www-form-urlencoded":
        text = (await read_body(request, FORM_LIMIT)).decode("utf-8", "replace")
        values = dict(parse_qsl(text, keep_blank_values=True))
    request.state.form = values
    return values


async def _viewer(request: Request, *, activity: bool) -> Viewer:
    """The viewer of a live session; the request counts as their activity (it holds off
    the idle timeout) if ``activity`` and the browser says the console's own page or
    the person made it."""
    svc = services(request)
    secret = request.cookies.get(cookie_name(request), "")
    foreign = from_elsewhere(request)
    touch = activity and not foreign
    try:
        found = await run_in_threadpool(svc.console.resolve, secret, touch=touch)
    except ConsoleSessionEnded:
        raise SignInRequired(timed_out=True) from None
    if found is None:
        raise SignInRequired()
    if foreign:
        # Whose browser was used, and from where: the officer may be the target.
        await run_in_threadpool(
            record_refusal, request, found, "request made by another site (Sec-Fetch-Site)"
        )
        raise ForeignRequest()
    request.state.viewer = found
    request.state.csrf = csrf_token(secret)
    request.state.secret = secret
    return found


async def current_viewer(request: Request) -> Viewer:
    """The viewer of a request the person made (a page, a form, a click)."""
    return await _viewer(request, activity=True)


async def polling_viewer(request: Request) -> Viewer:
    """The viewer of a request a page makes by itself on a timer (htmx's ``every``): it
    needs a live session as any request does, and an idle-expired one gets the sign-in
    answer, but it is not the person's activity. Counted, the notice panel's poll every
    two seconds kept an unattended screen on the incident page signed in for as long as
    the notices were being sent (adversary round 61, left open then)."""
    return await _viewer(request, activity=False)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]
PollingViewerDep = Annotated[Viewer, Depends(polling_viewer)]


def allow(viewer: Viewer, roles: Collection[Role]) -> None:
    if viewer.role not in roles:
        raise NotForYou(str(viewer.role))


async def officer(viewer: ViewerDep) -> Viewer:
    allow(viewer, OFFICER)
    return viewer


async def manager(viewer: ViewerDep) -> Viewer:
    allow(viewer, MANAGERS)
    return viewer


async def polling_officer(viewer: PollingViewerDep) -> Viewer:
    allow(viewer, OFFICER)
    return viewer


OfficerDep = Annotated[Viewer, Depends(officer)]
ManagerDep = Annotated[Viewer, Depends(manager)]
#: The officer, on a route a page polls (``polling_viewer``).
PollingOfficerDep = Annotated[Viewer, Depends(polling_officer)]


async def checked_form(request: Request, viewer: ViewerDep) -> dict[str, str]:
    """The form of a state-changing request, once its CSRF token is this session's."""
    values = await form(request)
    sent = request.headers.get(CSRF_HEADER) or values.get(CSRF_FIELD, "")
    expected: str = request.state.csrf
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        await run_in_threadpool(
            record_refusal, request, viewer, "CSRF token missing or not this session's"
        )
        raise CsrfRefused()
    return values


FormDep = Annotated[dict[str, str], Depends(checked_form)]


#: Why the officer opens a patient's data in the console, recorded as the FHIR
#: PurposeOfUse: the patient asked (a data access request), or a compliance review.
#: Nothing else is a reason the console accepts.
PATIENT_PURPOSES = ("PATRQT", "HCOMPL")


def stated_purpose(value: str | None, default: str = "PATRQT") -> str | None:
    """The purpose the officer stated (``default`` if none was), or None if it is not
    one of ``PATIENT_PURPOSES``: the caller answers 400 and opens nothing."""
    if value is None:
        return default
    return value if value in PATIENT_PURPOSES else None


def caller_for(viewer: Viewer, request: Request, purpose: str = "HOPERAT") -> Caller:
    """The viewer as the gate knows any staff member: the same policy, the same ledger."""
    actor = Actor(
        principal=viewer.principal,
        role=viewer.role,
        clinic_ids=viewer.clinic_ids,
        practitioner_id=viewer.practitioner_id,
        account_id=viewer.account_id,
    )
    return Caller(
        principal=viewer.principal,
        purpose=purpose,
        source_address=client_address(request),
        user_agent=request.headers.get("user-agent"),
        actor=actor,
        session_id=viewer.session_id,
        client_id="carevault-console",
        request_id=request_id_of(request.scope),
    )


def record_refusal(request: Request, viewer: Viewer, reason: str) -> None:
    """Record a console request refused to ``viewer`` (who asked, where, why)."""
    svc = services(request)
    svc.audit.record(
        [
            AuditEvent(
                tag=Tag.CONSOLE_REQUEST_REFUSED,
                outcome=Outcome.DENIED,
                at_us=svc.now_us(),
                request_id=request_id_of(request.scope),
                principal=viewer.principal,
                role=str(viewer.role),
                session_id=viewer.session_id,
                source_address=client_address(request),
                reason=reason,
                detail={"path": logged_path(request.scope)},
            )
        ]
    )
