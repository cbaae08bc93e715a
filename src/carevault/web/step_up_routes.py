"""``POST /auth/step-up``: a session an alert's response paused presents a fresh TOTP
code (``{"totp": "123456"}``) with its bearer token, and may go on."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from carevault.access.stepup import StepUpRefused, present_step_up
from carevault.web.responses import NO_STORE
from carevault.web.security import ServicesDep, bearer_token, client_address

router = APIRouter()


@router.post("/auth/step-up")
async def step_up(request: Request, svc: ServicesDep) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    code = body.get("totp") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip():
        return JSONResponse(
            {"error": "invalid_request", "error_description": 'send {"totp": "<code>"}'},
            status_code=400,
            headers=NO_STORE,
        )
    try:
        await run_in_threadpool(
            present_step_up,
            svc.access,
            svc.accounts,
            svc.audit,
            bearer_token(request),
            code.strip(),
            client_address(request),
            request.headers.get("user-agent"),
        )
    except StepUpRefused as refused:
        return JSONResponse(
            {"error": "invalid_grant", "error_description": str(refused)},
            status_code=401,
            headers=NO_STORE,
        )
    return JSONResponse({"stepped_up": True}, headers=NO_STORE)
