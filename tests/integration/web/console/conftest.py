"""The console in-process: services on a clock the test moves, a small clinic group,
staff of each role, and browsers (cookie jars) to sign them in with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from starlette.testclient import TestClient

from carevault.bootstrap import Services, build_services
from carevault.config import Settings
from carevault.domain.roles import Role
from carevault.web.app import create_app
from tests.support.console import (
    CLINIC_A,
    CLINIC_B,
    MovableClock,
    Person,
    add_person,
    seed_clinics,
    sign_in,
)

Browser = Callable[..., TestClient]


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def console_services(settings: Settings, clock: MovableClock) -> Iterator[Services]:
    built = build_services(settings, create_keys=True, migrate=True, clock=clock)
    seed_clinics(built)
    yield built
    built.close()


@pytest.fixture
def officer(console_services: Services, clock: MovableClock) -> Person:
    return add_person(console_services, clock, "officer1", Role.PRIVACY_OFFICER, [CLINIC_A])


@pytest.fixture
def second_officer(console_services: Services, clock: MovableClock) -> Person:
    return add_person(console_services, clock, "officer2", Role.PRIVACY_OFFICER, [CLINIC_B])


@pytest.fixture
def manager(console_services: Services, clock: MovableClock) -> Person:
    return add_person(console_services, clock, "manager1", Role.CLINIC_MANAGER, [CLINIC_A])


@pytest.fixture
def physician(console_services: Services, clock: MovableClock) -> Person:
    return add_person(console_services, clock, "doctor1", Role.PHYSICIAN, [CLINIC_A])


@pytest.fixture
def front_desk_b(console_services: Services, clock: MovableClock) -> Person:
    return add_person(console_services, clock, "desk2", Role.FRONT_DESK, [CLINIC_B])


@pytest.fixture
def browser(console_services: Services) -> Iterator[Browser]:
    """New browsers (each its own cookies) on http://localhost, as a laptop demo runs."""
    app = create_app(console_services.settings, console_services)
    with ExitStack() as stack:

        def open_browser(base_url: str = "http://localhost") -> TestClient:
            return stack.enter_context(TestClient(app, base_url=base_url))

        yield open_browser


@pytest.fixture
def signed_in(browser: Browser) -> Callable[[Person], TestClient]:
    """A browser in which ``person`` has signed in."""

    def open_as(person: Person) -> TestClient:
        client = browser()
        response = sign_in(client, person)
        assert response.status_code == 303, response.text
        return client

    return open_as
