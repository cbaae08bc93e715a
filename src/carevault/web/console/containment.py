"""Containment: every mode, what it will do, started and released with a fresh code.

Through ``ContainmentService``, as ``carevault contain`` and ``/admin/containment``:
the same checks (a privacy officer, a fresh TOTP code), the same ledger entries and
checkpoints, refusals included. Clinic managers see the state but change nothing, and
of what names staff or a clinic, only their own clinics' (as the staff page shows them):
another clinic's suspended staff, the officer's reasons for it, its lock and its pending
emergency grants are not theirs to read.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.access.breakglass import BreakGlassError
from carevault.containment.service import ContainmentRefused, Officer
from carevault.containment.state import TARGETED, Mode
from carevault.domain.roles import Role
from carevault.web.console.guard import FormDep, ManagerDep, OfficerDep, caller_for, services
from carevault.web.console.render import is_htmx, malformed, page
from carevault.web.console.staff import containment_shown, reaches
from carevault.web.ids import RowId
from carevault.web.security import client_address

router = APIRouter()


def _officer(request: Request, username: str, code: str) -> Officer:
    return Officer(username, code, client_address(request))


@router.get("/console/containment")
async def containment(request: Request, viewer: ManagerDep) -> Response:
    svc = services(request)

    def gather() -> dict[str, Any]:
        pending = svc.break_glass.pending()
        accounts = svc.accounts.all()
        people = {account.account_id: account for account in accounts}

        def ours(account_id: str) -> bool:
            account = people.get(account_id)
            return account is not None and reaches(viewer, account)

        clients = svc.clients.all()
        return {
            "active": containment_shown(
                viewer, svc.containment.refresh().active, accounts, clients
            ),
            "history": containment_shown(
                viewer,
                [item for item in svc.containment.history(30) if not item.active],
                accounts,
                clients,
            ),
            "modes": list(Mode),
            "pending": [
                (grant, people.get(grant.account_id))
                for grant in pending
                if viewer.role is Role.PRIVACY_OFFICER or ours(grant.account_id)
            ],
        }

    context = await run_in_threadpool(gather)
    return page(
        request,
        "console/containment.html",
        {"title_key": "containment.title", "notice": _notice(request), **context},
        current="/console/containment",
    )


#: What the page says after an action, by the ``done`` the action redirected with.
_DONE = {
    "started": "info",
    "released": "info",
    "approved": "info",
    "approval-refused": "error",
    "approval-second": "error",
    "approval-invalid": "error",
}


def _notice(request: Request) -> dict[str, str] | None:
    done = request.query_params.get("done", "")
    name, _, number = done.rpartition("-") if done[-1:].isdigit() else (done, "", "")
    if name not in _DONE:
        return None
    return {"key": f"containment.done.{name}", "kind": _DONE[name], "id": number}


async def _start_form(
    request: Request, mode: Mode, *, error: str | None = None, detail: str = "", status: int = 200
) -> Response:
    svc = services(request)
    viewer = request.state.viewer

    def choices() -> dict[str, Any]:
        if mode is Mode.CLINIC_LOCK:
            names = request.app.state.console_clinics.get(caller_for(viewer, request))
            return {"choices": sorted(names.items(), key=lambda item: item[1])}
        if mode is Mode.CLIENT_REVOKED:
            apps = [app for app in svc.clients.all() if not app.revoked]
            return {"choices": [(app.client_id, f"{app.name} ({app.client_id})") for app in apps]}
        if mode is Mode.ACCOUNT_SUSPENDED:
            people = [item for item in svc.accounts.all() if not item.suspended]
            return {
                "choices": [
                    (item.username, f"{item.display_name} ({item.username})") for item in people
                ]
            }
        return {"choices": None}

    context = await run_in_threadpool(choices)
    return page(
        request,
        "console/containment_start.html" if not is_htmx(request) else "console/start_panel.html",
        {
            "title_key": "containment.start_title",
            "mode": mode,
            "targeted": mode in TARGETED,
            "error": error,
            "detail": detail,
            "preset": request.query_params.get("target", ""),
            **context,
        },
        status=status,
        current="/console/containment",
    )


@router.get("/console/containment/start")
async def start_form(request: Request, viewer: OfficerDep) -> Response:
    try:
        mode = Mode(request.query_params.get("mode", ""))
    except ValueError:
        return malformed(request, "/console/containment")
    return await _start_form(request, mode)


@router.post("/console/containment/start")
async def start(request: Request, viewer: OfficerDep, values: FormDep) -> Response:
    svc = services(request)
    try:
        mode = Mode(values.get("mode", ""))
    except ValueError:
        return malformed(request, "/console/containment")
    target = values.get("target", "").strip()[:200] or None
    try:
        started = await run_in_threadpool(
            svc.contain.start,
            _officer(request, viewer.username, values.get("totp", "")),
            mode,
            target if mode in TARGETED else None,
            values.get("reason", "")[:500],
        )
    except ContainmentRefused:
        return await _start_form(request, mode, error="stepup.refused", status=403)
    except (ValueError, BreakGlassError) as problem:
        return await _start_form(
            request, mode, error="containment.invalid", detail=str(problem), status=400
        )
    return RedirectResponse(
        f"/console/containment?done=started-{started.containment_id}", status_code=303
    )


async def _release_form(
    request: Request, containment_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    svc = services(request)
    try:
        item = await run_in_threadpool(svc.containment.get, containment_id)
    except ValueError:
        return RedirectResponse("/console/containment", status_code=303)
    if not item.active:
        return RedirectResponse("/console/containment", status_code=303)
    return page(
        request,
        "console/containment_release.html",
        {"title_key": "containment.release_title", "item": item, "error": error},
        status=status,
        current="/console/containment",
    )


@router.get("/console/containment/{containment_id}/release")
async def release_form(request: Request, containment_id: RowId, viewer: OfficerDep) -> Response:
    return await _release_form(request, containment_id)


@router.post("/console/containment/{containment_id}/release")
async def release(
    request: Request, containment_id: RowId, viewer: OfficerDep, values: FormDep
) -> Response:
    svc = services(request)
    try:
        await run_in_threadpool(
            svc.contain.release,
            _officer(request, viewer.username, values.get("totp", "")),
            containment_id,
            values.get("reason", "")[:500],
        )
    except ContainmentRefused:
        return await _release_form(request, containment_id, error="stepup.refused", status=403)
    except ValueError:
        return RedirectResponse("/console/containment", status_code=303)
    return RedirectResponse(f"/console/containment?done=released-{containment_id}", status_code=303)


@router.post("/console/emergency/{grant_id}/approve")
async def approve(request: Request, grant_id: str, viewer: OfficerDep, values: FormDep) -> Response:
    """The second privacy officer's approval of a clinician's emergency access."""
    svc = services(request)
    try:
        await run_in_threadpool(
            svc.contain.approve_emergency,
            _officer(request, viewer.username, values.get("totp", "")),
            grant_id[:40],
        )
    except ContainmentRefused as refused:
        second = "second privacy officer" in str(refused)
        outcome = "approval-second" if second else "approval-refused"
        return RedirectResponse(f"/console/containment?done={outcome}", status_code=303)
    except (ValueError, BreakGlassError):
        return RedirectResponse("/console/containment?done=approval-invalid", status_code=303)
    return RedirectResponse("/console/containment?done=approved", status_code=303)
