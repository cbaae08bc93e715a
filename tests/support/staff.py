"""Staff members made directly in the services, with a token and their TOTP secret."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from sqlalchemy import func, select

from carevault.access.accounts import Account
from carevault.access.clients import ClientApps
from carevault.access.tables import staff_account
from carevault.bootstrap import Services
from carevault.db import read_transaction
from carevault.domain.roles import Role
from carevault.gate import Caller, DecryptionBudget
from tests.support.auth import Login, fresh_code

TEST_APP = "test-app"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Staff:
    account: Account
    login: Login
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def totp(self) -> str:
        """A code this account has not used yet."""
        return fresh_code(self.login)


def caller_of(services: Services, staff: Staff, budget: int | None = None) -> Caller:
    """The gate's caller for ``staff``'s token, as the web layer makes it (``budget``:
    the records one request may decrypt; none when not given), for tests that call the
    gate directly."""
    who = services.access.authenticate(staff.token)
    return Caller(
        principal=who.actor.principal,
        actor=who.actor,
        session_id=who.session_id,
        client_id=who.client_id,
        scopes=who.scopes,
        budget=None if budget is None else DecryptionBudget(budget),
    )


#: The stores that hold the test app already: looking it up again (its row and seal) for
#: every token was a twentieth of setting up the access group.
_registered: weakref.WeakSet[ClientApps] = weakref.WeakSet()


def register_test_app(services: Services) -> None:
    if services.clients in _registered:
        return
    if services.clients.get(TEST_APP) is None:
        services.clients.add(
            TEST_APP,
            "Test app",
            confidential=False,
            scopes="user/*.cruds",
            redirect_uris=["http://127.0.0.1/callback"],
        )
    _registered.add(services.clients)


#: ``PASSWORD``'s argon2 hash by the settings' (memory, time) cost, made once a process:
#: every test account shares the password, and hashing it for each of a test's five
#: staff was a fifth of setting up the access group (tests/integration/access/group.py).
_hashes: dict[tuple[int, int], str] = {}


def password_hash(services: Services) -> str:
    """``PASSWORD`` hashed with ``services``' argon2 parameters (made once a process)."""
    cost = (services.settings.argon2_memory_kib, services.settings.argon2_time_cost)
    if cost not in _hashes:
        _hashes[cost] = services.accounts.passwords.hash(PASSWORD)
    return _hashes[cost]


def make_staff(
    services: Services, role: Role, clinics: list[str], practitioner_id: str | None = None
) -> Staff:
    username = f"{role.value.replace('_', '')}{_accounts_held(services)}"
    account, secret = services.accounts.add(
        username,
        f"Test {role.value}",
        role,
        clinics,
        PASSWORD,
        practitioner_id,
        password_hash=password_hash(services),
        hash_checked=True,
    )
    login = Login(account.username, str(role), secret, PASSWORD, frozenset(clinics))
    return Staff(account, login, open_token(services, account, "user/*.cruds"))


def _accounts_held(services: Services) -> int:
    """How many staff accounts the store holds: counted, not read (every account read
    and its seal checked, for each new one, was a fiftieth of setting up the group)."""
    with read_transaction(services.accounts.engine) as connection:
        return int(connection.execute(select(func.count()).select_from(staff_account)).scalar_one())


def open_token(services: Services, account: Account, scope: str) -> str:
    """An access token of ``account`` through the test app, granted only ``scope``."""
    register_test_app(services)
    pair = services.sessions.open(
        subject=account.account_id,
        account_id=account.account_id,
        client_id=TEST_APP,
        scope=scope,
        with_refresh=False,
        source_address="127.0.0.1",
        user_agent="tests",
    )
    return pair.access_token


def add_account(services: Services, username: str, role: Role = Role.FRONT_DESK) -> None:
    """A staff account by ``username``, for an incident to name: one that names no account
    is refused (a typo would give an empty scope)."""
    if services.accounts.find(username) is None:
        services.accounts.add(username, username, role, [], PASSWORD, check_password=False)


def add_client(services: Services, client_id: str, clinics: tuple[str, ...] = ("tm",)) -> None:
    """A client app by ``client_id``, for an incident to name: one that names no app is
    refused (a typo would give an empty scope)."""
    if services.clients.get(client_id) is None:
        services.clients.add(client_id, client_id, confidential=True, scopes="system/*.rs",
                             clinic_ids=list(clinics))  # fmt: skip
