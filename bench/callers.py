"""Staff and system callers made in process, as the web layer makes them per request,
and the parts of what a staff read adds, each timed on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from bench.serving import Login, Seeded, patient_pseudonyms
from carevault.access.ratelimit import RequestLimits, TokenBuckets
from carevault.bootstrap import Services
from carevault.domain.policy import decide
from carevault.domain.roles import Right
from carevault.fhir import jsonio
from carevault.fhir.categories import possible_categories
from carevault.fhir.registry import RESOURCE_TYPES
from carevault.fhir.subsetting import subset
from carevault.gate import Caller
from carevault.sim.loader import DEMO_CLIENT_ID
from carevault.web.guard import RequestGuard

PATIENT = RESOURCE_TYPES["Patient"]
SYSTEM = Caller(principal="system:bench", purpose="TREAT")


def bearer_for(services: Services, login: Login) -> str:
    """An access token for ``login``, opened as the token endpoint opens one."""
    pair = services.sessions.open(
        subject=login.account_id,
        account_id=login.account_id,
        client_id=DEMO_CLIENT_ID,
        scope="user/*.rs",
        with_refresh=False,
        source_address="127.0.0.1",
        user_agent="carevault-bench",
    )
    return pair.access_token


def staff_caller(services: Services, bearer: str) -> Caller:
    """What ``carevault.web.security.authenticate`` makes of a bearer token."""
    who = services.access.authenticate(bearer)
    return Caller(
        principal=who.actor.principal,
        source_address="127.0.0.1",
        user_agent="carevault-bench",
        actor=who.actor,
        session_id=who.session_id,
        client_id=who.client_id,
        scopes=who.scopes,
    )


def cared_for(services: Services, login: Login) -> list[str]:
    """Patients ``login`` (a clinician) has a care relationship with now."""
    by_pseudonym = {pseudonym: pid for pid, pseudonym in patient_pseudonyms(services).items()}
    query = services.access.care.patients(
        login.clinic_ids, login.practitioner_id, services.now_us()
    )
    with services.engine.connect() as connection:
        found = set(connection.execute(select(query.subquery())).scalars())
    return sorted(by_pseudonym[p] for p in found if p in by_pseudonym)


Part = tuple[str, float, float]


def parts(
    services: Services, seeded: Seeded, physician: Login, patients: list[str], repeat: int
) -> list[Part]:
    """Wall and CPU microseconds of each part of what a staff read adds, timed alone."""
    officer = staff_caller(services, bearer_for(services, seeded.login("privacy_officer")))
    doctor = staff_caller(services, bearer_for(services, physician))
    assert officer.actor is not None and doctor.actor is not None
    bearer = bearer_for(services, seeded.login("privacy_officer"))
    heads = [services.vault.locate("Patient", pid).head for pid in patients]
    body = services.gate.read(SYSTEM, PATIENT, patients[0]).body or b"{}"
    categories = possible_categories(PATIENT)
    target = services.access.target(officer.actor, heads[0], services.now_us())
    granted = decide(officer.actor, Right.READ, categories, target).granted

    def each(name: str, action: Callable[[int], object]) -> Part:
        action(0)
        began, cpu_began = time.perf_counter(), time.process_time()
        for i in range(repeat):
            action(i)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        return name, wall / repeat * 1e6, cpu / repeat * 1e6

    def verify(_: int) -> object:
        return services.access.signer.verify(bearer)

    def authenticate(_: int) -> object:
        return services.access.authenticate(bearer)

    def officer_facts(i: int) -> object:
        assert officer.actor is not None
        return services.access.target(officer.actor, heads[i % len(heads)], services.now_us())

    def doctor_facts(i: int) -> object:
        assert doctor.actor is not None
        return services.access.target(doctor.actor, heads[i % len(heads)], services.now_us())

    def decision(_: int) -> object:
        assert officer.actor is not None
        return decide(officer.actor, Right.READ, categories, target)

    def subsetting(_: int) -> object:
        return jsonio.dumps(subset(PATIENT, jsonio.load(body), granted))

    def system_read(i: int) -> object:
        return services.gate.read(SYSTEM, PATIENT, patients[i % len(patients)])

    def account_limit(_: int) -> object:
        return buckets.take("staff:bench")

    buckets = TokenBuckets(1e9, 10**9)
    return [
        each("TokenSigner.verify (PyJWT, EdDSA)", verify),
        each("access.authenticate (verify + session state)", authenticate),
        guard_part(services, repeat),
        each("account rate limit (token bucket)", account_limit),
        each("access.target, privacy officer (home-clinic query)", officer_facts),
        each("access.target, physician (+ care-relationship query)", doctor_facts),
        each("policy.decide", decision),
        each("subset (jsonio.load + subset + jsonio.dumps)", subsetting),
        each("whole read, system caller (for scale)", system_read),
    ]


def guard_part(services: Services, repeat: int) -> Part:
    """The door every HTTP request passes (Host check, source rate limits), as an ASGI
    layer around an app that does nothing; limits on, whatever the deployment says."""

    async def nothing(_scope: Any, _receive: Any, _send: Any) -> None:
        return None

    guard = RequestGuard(nothing, services)
    guard.limits = RequestLimits(TokenBuckets(1e9, 10**9), None, TokenBuckets(1e9, 10**9))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/fhir/Patient/pat-1",
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer x"),
            (b"accept", b"application/fhir+json"),
        ],
    }

    async def run() -> None:
        for _ in range(repeat):
            await guard(scope, _no_receive, _no_send)

    asyncio.run(run())
    began, cpu_began = time.perf_counter(), time.process_time()
    asyncio.run(run())
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return "request guard (Host + source limits, ASGI)", wall / repeat * 1e6, cpu / repeat * 1e6


async def _no_receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _no_send(_message: Any) -> None:
    return None
