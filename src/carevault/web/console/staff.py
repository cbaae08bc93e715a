"""Staff and sessions: who is signed in, from where, since when; suspend, reinstate,
new authenticator, end a session; client apps and their revocation.

Privacy officer: everyone, every action, each action but ending a session confirmed
with a fresh code (suspension is the containment mode ``account-suspended``, so it
shows on the containment page and its release reinstates). A new authenticator is never
issued here for a privacy officer: one officer holding another's secret could sign as
both on a two-person decision. An officer moves to a new authenticator themselves
(``/console/account``, with their current one), or, having lost it, through the
operator on the host (``carevault staff reset-totp``, ledgered); either ends every
session of the account. Clinic manager: the staff of their own clinics below them (not
privacy officers, not other managers), and ending their sessions (a lost phone, a
shared screen). Every action goes through ``Administration`` or ``ContainmentService``,
as the CLI's; a refusal is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.access.accounts import Account, AccountError
from carevault.access.clients import ClientApp, ClientError
from carevault.console.sessions import StepUpRefused, Viewer
from carevault.containment.service import ContainmentRefused, Officer
from carevault.containment.state import Containment, Mode
from carevault.domain.roles import Role
from carevault.web.console.guard import (
    FormDep,
    ManagerDep,
    NotForYou,
    OfficerDep,
    caller_for,
    origin,
    record_refusal,
    services,
)
from carevault.web.console.qr import enrolment_qr, grouped
from carevault.web.console.render import is_htmx, page, translator
from carevault.web.security import client_address

router = APIRouter()
SHOWN = 50


#: Whom a clinic manager may never act on: those with as much power as theirs, or more.
_ABOVE_MANAGERS = frozenset({Role.PRIVACY_OFFICER, Role.CLINIC_MANAGER})


def reaches(viewer: Viewer, account: Account) -> bool:
    """Whether ``viewer`` may see and act on ``account``'s sessions: an officer everyone;
    a manager themselves, and the staff of their clinics below them."""
    if viewer.role is Role.PRIVACY_OFFICER or account.account_id == viewer.account_id:
        return True
    return account.role not in _ABOVE_MANAGERS and bool(viewer.clinic_ids & account.clinic_ids)


def containment_shown(
    viewer: Viewer,
    items: Iterable[Containment],
    accounts: Iterable[Account],
    clients: Iterable[ClientApp] = (),
) -> list[Containment]:
    """The containment ``viewer`` may see of ``items``: an officer every one; a manager
    what names no one and no clinic, and what names their own clinics or the staff they
    reach (``reaches``), and the revocation of an app that reaches their clinics: another
    clinic's suspended desk, with the officer's reason for it, its lock or its app's
    revocation is not theirs to read, as its staff are not on their staff page.
    Every page that lists containment (the dashboard, the containment page) asks here."""
    if viewer.role is Role.PRIVACY_OFFICER:
        return list(items)
    by_username = {account.username: account for account in accounts}
    by_client = {app.client_id.casefold(): app for app in clients}

    def shown(item: Containment) -> bool:
        if item.mode is Mode.ACCOUNT_SUSPENDED:
            account = by_username.get(item.target or "")
            return account is not None and reaches(viewer, account)
        if item.mode is Mode.CLINIC_LOCK:
            return item.target in viewer.clinic_ids
        if item.mode is Mode.CLIENT_REVOKED:
            # Another clinic's app, and the officer's reason for revoking it, are not
            # theirs to read either (adversary round 58); an app reaching every clinic is.
            app = by_client.get((item.target or "").strip().casefold())
            return app is not None and (
                not app.clinic_ids or bool(app.clinic_ids & viewer.clinic_ids)
            )
        return True

    return [item for item in items if shown(item)]


def _refuse(request: Request, viewer: Viewer, reason: str) -> NotForYou:
    """Record a refused staff action (who asked, what, why); the caller raises what
    this returns (a 403 page)."""
    record_refusal(request, viewer, reason)
    return NotForYou(str(viewer.role))


def _done(request: Request) -> str | None:
    done = request.query_params.get("done", "")
    known = {"suspended", "reinstated", "ended", "revoked", "refused", "invalid"}
    return done if done in known else None


@router.get("/console/staff")
async def staff(request: Request, viewer: ManagerDep) -> Response:
    svc = services(request)
    wanted = request.query_params.get("q", "").strip().casefold()[:64]

    def gather() -> dict[str, Any]:
        people = [item for item in svc.accounts.all() if reaches(viewer, item)]
        by_id = {item.account_id: item for item in people}
        live = [item for item in svc.sessions.live() if item.account_id in by_id]
        seen = svc.console.last_seen([item.session_id for item in live])
        suspensions = {
            item.target: item.containment_id
            for item in svc.containment.refresh().active
            if item.mode is Mode.ACCOUNT_SUSPENDED
        }
        matching = [
            item
            for item in people
            if not wanted or wanted in item.username or wanted in item.display_name.casefold()
        ]
        return {
            "signed_in": [(item, by_id[item.account_id or ""]) for item in live],
            "last_seen": seen,
            "people": matching[:SHOWN],
            "matching": len(matching),
            "total": len(people),
            "suspensions": suspensions,
            "clients": svc.clients.all() if viewer.is_officer else [],
        }

    context = await run_in_threadpool(gather)
    return page(
        request,
        "console/staff.html",
        {"title_key": "staff.title", "q": wanted, "done": _done(request), **context},
        current="/console/staff",
    )


@router.get("/console/staff/{username}")
async def person(request: Request, username: str, viewer: ManagerDep) -> Response:
    """One staff member: their account, where they are signed in, and (for the privacy
    officer) suspend or reinstate and a new authenticator, each with a fresh code."""
    svc = services(request)

    def gather() -> dict[str, Any] | None:
        account = svc.accounts.find(username[:64])
        if account is None or not reaches(viewer, account):
            return None
        return {
            "person": account,
            "sessions": svc.sessions.list_for(account.account_id),
            "clinics": request.app.state.console_clinics.get(caller_for(viewer, request)),
        }

    context = await run_in_threadpool(gather)
    if context is None:
        return page(
            request,
            "console/error.html",
            {"title_key": "error.not_found_title", "body_key": "staff.unknown"},
            status=404,
            current="/console/staff",
        )
    return page(
        request,
        "console/staff_person.html",
        {"title_key": "staff.title", **context},
        current="/console/staff",
    )


def _back(done: str) -> Response:
    return RedirectResponse(f"/console/staff?done={done}", status_code=303)


@router.post("/console/staff/{username}/suspend")
async def suspend(request: Request, username: str, viewer: OfficerDep, values: FormDep) -> Response:
    svc = services(request)
    officer = Officer(viewer.username, values.get("totp", ""), client_address(request))
    try:
        await run_in_threadpool(
            svc.contain.start,
            officer,
            Mode.ACCOUNT_SUSPENDED,
            username[:64],
            values.get("reason", "")[:500],
        )
    except ContainmentRefused:
        return _back("refused")
    except (ValueError, AccountError):
        return _back("invalid")
    return _back("suspended")


@router.post("/console/staff/{username}/reinstate")
async def reinstate(
    request: Request, username: str, viewer: OfficerDep, values: FormDep
) -> Response:
    """Release the suspension (the containment that made it), or lift one made elsewhere
    (``carevault staff suspend``) after a fresh code."""
    svc = services(request)
    code = values.get("totp", "")
    reason = values.get("reason", "")[:500] or "reinstated from the console"
    # The account as sign-in finds it (casefolded, stripped), and its suspension by that
    # name: matched as the URL spelt it, ``DOCTOR1`` found no containment and lifted the
    # suspension while the containment stayed on record (adversary round 58).
    account = await run_in_threadpool(svc.accounts.find, username[:64])
    named = account.username if account is not None else username
    active = [
        item
        for item in svc.containment.refresh().active
        if item.mode is Mode.ACCOUNT_SUSPENDED
        and (item.target or "").strip().casefold() == named.strip().casefold()
    ]
    if not active and await run_in_threadpool(
        svc.accounts.same_person, viewer.username, username[:64]
    ):
        # As a containment's release is (round 56): a suspension made on the host is
        # lifted by another officer, never by a login of the suspended one's person.
        raise await run_in_threadpool(
            _refuse, request, viewer, f"reinstate {username[:64]}: it is about them"
        )
    try:
        if active:
            officer = Officer(viewer.username, code, client_address(request))
            await run_in_threadpool(svc.contain.release, officer, active[0].containment_id, reason)
        else:
            await run_in_threadpool(
                svc.console.confirm_code, viewer, code, f"reinstate {username}", origin(request)
            )
            await run_in_threadpool(svc.admin.reinstate, viewer.principal, username[:64])
    except (ContainmentRefused, StepUpRefused):
        return _back("refused")
    except (ValueError, AccountError):
        return _back("invalid")
    return _back("reinstated")


@router.post("/console/staff/{username}/authenticator")
async def new_authenticator(
    request: Request, username: str, viewer: OfficerDep, values: FormDep
) -> Response:
    """A new TOTP secret for someone who lost their phone: shown once, to the officer,
    to hand over in person; every session of that account ends. Never for a privacy
    officer (this officer included: ``/console/account``), see the module's note."""
    svc = services(request)
    target = await run_in_threadpool(svc.accounts.find, username[:64])
    if target is not None and target.role is Role.PRIVACY_OFFICER:
        raise await run_in_threadpool(
            _refuse,
            request,
            viewer,
            f"new authenticator for {target.username}: a privacy officer's is reset by"
            " themselves or by the operator on the host (carevault staff reset-totp)",
        )
    try:
        await run_in_threadpool(
            svc.console.confirm_code,
            viewer,
            values.get("totp", ""),
            f"new authenticator for {username}",
            origin(request),
        )
        account, secret = await run_in_threadpool(
            svc.admin.reset_totp, viewer.principal, username[:64]
        )
    except StepUpRefused:
        return _back("refused")
    except AccountError:
        return _back("invalid")
    t = translator(request, viewer)
    return page(
        request,
        "console/enrol.html",
        {
            "title_key": "enrol.title",
            "qr": enrolment_qr(secret, account.username, t("enrol.qr_title")),
            "secret": grouped(secret),
            "for_self": account.account_id == viewer.account_id,
            "person": account.display_name,
        },
        current="/console/staff",
    )


@router.post("/console/sessions/{session_id}/end")
async def end_session(
    request: Request, session_id: str, viewer: ManagerDep, _values: FormDep
) -> Response:
    svc = services(request)

    def end() -> bool:
        live = {item.session_id: item for item in svc.sessions.live()}
        found = live.get(session_id)
        account = svc.accounts.get(found.account_id or "") if found else None
        if found is None or account is None:
            return False
        if not reaches(viewer, account):
            raise _refuse(request, viewer, f"end a session of {account.username}")
        return svc.admin.end_session(
            viewer.principal, session_id, reason=f"ended from the console by {viewer.username}"
        )

    ended = await run_in_threadpool(end)
    if is_htmx(request):
        t = translator(request, viewer)
        text = t("staff.session_ended") if ended else t("staff.session_gone")
        return page(request, "console/session_ended.html", {"text": text})
    return _back("ended" if ended else "invalid")


@router.post("/console/clients/{client_id}/revoke")
async def revoke_client(
    request: Request, client_id: str, viewer: OfficerDep, values: FormDep
) -> Response:
    svc = services(request)
    try:
        await run_in_threadpool(
            svc.console.confirm_code,
            viewer,
            values.get("totp", ""),
            f"revoke client {client_id}",
            origin(request),
        )
        await run_in_threadpool(svc.admin.revoke_client, viewer.principal, client_id[:64])
    except StepUpRefused:
        return _back("refused")
    except ClientError:
        return _back("invalid")
    return _back("revoked")
