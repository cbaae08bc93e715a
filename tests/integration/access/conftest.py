"""Sign-in tests in-process: services on a clock the test can move, the app with no
auth override, a registered app, and staff members who know their TOTP codes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from carevault.access import totp
from carevault.bootstrap import Services, build_services
from carevault.clock import utc_now
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.conftest import make_settings
from tests.integration.access.browser import APP_SCOPES, REDIRECT_URI
from tests.integration.access.group import Group, build_group
from tests.support.client import FhirTestClient

CLINIC = "clinic-a"
APP = "clinic-app"
PASSWORD = "correct horse battery staple"
#: What the in-process app calls itself: TestClient's host.
BASE = "http://testserver"
FHIR_BASE = f"{BASE}/fhir"


@dataclass
class MovableClock:
    """The wall clock plus an offset the test moves forward (back-off, lockout); frozen,
    it stands still between moves, so that a one-second wait cannot run out while a slow
    machine answers."""

    offset: timedelta = field(default_factory=timedelta)
    frozen: datetime | None = None

    def __call__(self) -> datetime:
        return (self.frozen or utc_now()) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)

    def freeze(self) -> None:
        self.frozen = utc_now()

    def thaw(self) -> None:
        """Back to the wall clock, with no offset (tokens are checked against it)."""
        self.frozen, self.offset = None, timedelta()


@dataclass
class Staff:
    """A staff member with their authenticator: codes follow the services' clock."""

    username: str
    account_id: str
    totp_secret: str
    clock: MovableClock
    password: str = PASSWORD
    last_step: int | None = None

    def _step_now(self) -> int:
        return int(self.clock().timestamp() // totp.STEP_SECONDS)

    def code(self) -> str:
        """A code the server has not seen: this step's, or the next one's (in its window)."""
        current = self._step_now()
        step = current if self.last_step is None else max(current, self.last_step + 1)
        assert step <= current + 1, "a third sign-in in one 30 s step: use another account"
        self.last_step = step
        return totp.code_at(self.totp_secret, step)

    def used_code(self) -> str:
        assert self.last_step is not None
        return totp.code_at(self.totp_secret, self.last_step)

    def wrong_code(self) -> str:
        """Six digits that are none of the codes the server would accept now."""
        current = self._step_now()
        valid = {totp.code_at(self.totp_secret, step) for step in range(current - 1, current + 2)}
        return next(code for code in (f"{n}" * 6 for n in range(10)) if code not in valid)

    def grant(self, scope: str = "user/*.cruds", *, code: str | None = None) -> dict[str, str]:
        """The direct-grant form for this staff member."""
        return {
            "grant_type": "password",
            "client_id": APP,
            "username": self.username,
            "password": self.password,
            "totp": self.code() if code is None else code,
            "scope": scope,
        }


NewStaff = Callable[..., Staff]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def direct_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings with the direct (password + TOTP) grant on, as scripts and the demo use."""
    url = request.getfixturevalue("pg_schema") if backend == "postgres" else None
    return make_settings(tmp_path / "home", url, direct_grant=True)


@pytest.fixture
def auth_services(direct_settings: Settings, clock: MovableClock) -> Iterator[Services]:
    built = build_services(direct_settings, create_keys=True, migrate=True, clock=clock)
    built.clients.add(
        APP, "Clinic app", confidential=False, scopes=APP_SCOPES, redirect_uris=[REDIRECT_URI]
    )
    yield built
    built.close()


@pytest.fixture
def web(auth_services: Services) -> Iterator[FhirTestClient]:
    """The app as a deployment runs it: every FHIR request needs a bearer token."""
    with FhirTestClient(create_app(auth_services.settings, auth_services)) as client:
        yield client


FromAddress = Callable[[str], FhirTestClient]


@pytest.fixture
def web_from(auth_services: Services) -> Iterator[FromAddress]:
    """Clients of one app that call from the address they are given (a stranger's, an
    office's), all sharing the services' rate limits and throttle."""
    app = create_app(auth_services.settings, auth_services)
    made: list[FhirTestClient] = []

    def make(address: str) -> FhirTestClient:
        client = FhirTestClient(app, client=(address, 50000))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def new_staff(auth_services: Services, clock: MovableClock) -> NewStaff:
    numbers = itertools.count(1)

    def make(role: Role = Role.PHYSICIAN, clinics: Sequence[str] = (CLINIC,)) -> Staff:
        username = f"{role.value.replace('_', '')}{next(numbers)}"
        account, secret = auth_services.accounts.add(
            username, f"Test {role.value}", role, list(clinics), PASSWORD
        )
        return Staff(username, account.account_id, secret, clock)

    return make


@pytest.fixture
def group(services: Services, api: FhirTestClient) -> Iterator[Group]:
    """Two clinics (TM, TW), a desk and a doctor at each, an officer, a patient at each
    (``group.build_group``); a module with its own ``group`` makes it its own way."""
    yield from build_group(services, api)


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    """A backend service's own key pair (``backend_service.register`` registers its
    public half): one a test module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
