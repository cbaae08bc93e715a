"""The break-the-glass review queue (privacy officer only).

Each grant not yet reviewed, with who asked, when, the reason they picked and the
words they wrote (unsealed for the reviewer, as ``carevault break-glass queue``
does), and what they opened under it, from the ledger. The review goes through
``BreakGlassReview``, the CLI's service, and is recorded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from carevault.access.accounts import Account
from carevault.access.breakglass import BreakGlassError, Grant
from carevault.bootstrap import Services
from carevault.console.sessions import StepUpRefused
from carevault.ledger.audit import AuditQuery, matching
from carevault.ledger.events import AuditEvent, Tag
from carevault.web.console.guard import FormDep, OfficerDep, origin, services
from carevault.web.console.render import is_htmx, page, translator
from carevault.web.security import client_address

router = APIRouter()
OPENED_SHOWN = 50


@dataclass(frozen=True)
class QueuedGrant:
    grant: Grant
    person: Account | None
    words: str
    patient_id: str | None
    opened: list[AuditEvent]


def _queued(svc: Services, grant: Grant, people: dict[str, Account], words: str) -> QueuedGrant:
    person = people.get(grant.account_id)
    events: list[AuditEvent] = []
    if person is not None:
        query = AuditQuery(
            patient_pseudonym=grant.patient_pseudonym,
            principal=f"staff:{person.username}",
            count=OPENED_SHOWN,
        )
        events = [event for _, event, _ in matching(svc.audit_ledger, query)]
    patient_id = next(
        (
            event.resource_id
            for event in events
            if event.tag in (Tag.ACCESS_BREAK_GLASS, Tag.EMERGENCY_REQUESTED)
        ),
        None,
    )
    opened = [
        event
        for event in events
        if event.tag not in (Tag.ACCESS_BREAK_GLASS, Tag.EMERGENCY_REQUESTED)
        and event.at_us <= grant.expires_us
    ]
    return QueuedGrant(grant, person, words, patient_id, opened)


@router.get("/console/break-glass")
async def queue(request: Request, viewer: OfficerDep) -> Response:
    svc = services(request)

    def gather() -> dict[str, Any]:
        people = {account.account_id: account for account in svc.accounts.all()}
        waiting = svc.break_glass.queue()
        words = svc.glass_review.words_shown(
            waiting,
            principal=viewer.principal,
            role=str(viewer.role),
            session_id=viewer.session_id,
            source_address=client_address(request),
        )
        return {"queue": [_queued(svc, grant, people, words[grant.grant_id]) for grant in waiting]}

    context = await run_in_threadpool(gather)
    done = request.query_params.get("done")
    return page(
        request,
        "console/glass.html",
        {
            "title_key": "glass.title",
            "done": done if done in ("justified", "unjustified", "invalid", "refused") else None,
            **context,
        },
        current="/console/break-glass",
    )


@router.post("/console/break-glass/{grant_id}/review")
async def review(request: Request, grant_id: str, viewer: OfficerDep, values: FormDep) -> Response:
    """A finding is final, so it takes the officer's fresh TOTP code, as dismissing an
    alert does: a console cookie alone (a shared screen, a stolen cookie) clears nothing."""
    svc = services(request)
    outcome = values.get("outcome", "")
    try:
        await run_in_threadpool(
            svc.console.confirm_code,
            viewer,
            values.get("totp", ""),
            f"break-the-glass finding on {grant_id[:40]}",
            origin(request),
        )
        await run_in_threadpool(
            lambda: svc.glass_review.review(
                viewer.username,
                grant_id[:40],
                outcome,
                source_address=client_address(request),
            )
        )
        done = outcome
    except StepUpRefused:
        done = "refused"
    except BreakGlassError:
        done = "invalid"
    if is_htmx(request):
        t = translator(request, viewer)
        return page(request, "console/reviewed.html", {"text": t(f"glass.done.{done}")})
    return RedirectResponse(f"/console/break-glass?done={done}", status_code=303)
