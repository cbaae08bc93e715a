"""Signing in as a seeded demo staff member, the way a script would (direct grant)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp

from carevault.sim.loader import DEMO_CLIENT_ID, LOGINS_FILE


@dataclass(frozen=True)
class Login:
    username: str
    role: str
    totp_secret: str
    password: str
    clinics: frozenset[str]
    #: The data directory the login was seeded into: homes copied from one seeded template
    #: share secrets, but each has its own database, so a code used in one is new to another.
    home: str = ""


def demo_logins(home: Path) -> list[Login]:
    """Every login ``carevault seed`` wrote to the data directory."""
    lines = (home / LOGINS_FILE).read_text().splitlines()
    password = next(line for line in lines if line.startswith("# password")).split(": ", 1)[1]
    logins = []
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        username, role, secret, _name, clinics = line.split("\t")
        logins.append(
            Login(username, role, secret, password, frozenset(clinics.split(", ")), str(home))
        )
    return logins


def login_for(home: Path, role: str, index: int = 0, clinic: str | None = None) -> Login:
    """The ``index``-th login of ``role`` (working at ``clinic``, if given)."""
    return [
        login
        for login in demo_logins(home)
        if login.role == role and (clinic is None or clinic in login.clinics)
    ][index]


def colleagues(home: Path, *roles: str) -> tuple[list[Login], str]:
    """One login for each role, all working at the same clinic, and that clinic's name."""
    first = next(
        login for login in demo_logins(home) if login.role == roles[0] and len(login.clinics) == 1
    )
    (clinic,) = first.clinics
    return [first, *(login_for(home, role, clinic=clinic) for role in roles[1:])], clinic


_last_step: dict[tuple[str, str, str], int] = {}


def fresh_code(login: Login) -> str:
    """A TOTP code the server has not seen yet. Codes are single-use: the server accepts
    steps now-1..now+1 above the last one used, so up to three fit in one 30 s step;
    beyond that, wait for the next."""
    key = (login.home, login.username, login.totp_secret)
    last = _last_step.get(key)
    while True:
        moment = time.time()
        now = int(moment // 30)
        # now-1 only early in a step, so the code cannot age out before it is checked.
        earliest = now - 1 if moment % 30 < 25 else now
        step = earliest if last is None else max(last + 1, earliest)
        if step <= now + 1:
            break
        time.sleep(30 - moment % 30 + 0.05)
    _last_step[key] = step
    return pyotp.TOTP(login.totp_secret).at(step * 30)


def token_for(
    base_url: str, login: Login, scope: str = "user/*.cruds", client: httpx.Client | None = None
) -> str:
    form = {
        "grant_type": "password",
        "client_id": DEMO_CLIENT_ID,
        "username": login.username,
        "password": login.password,
        "totp": fresh_code(login),
        "scope": scope,
    }
    if client is None:
        response = httpx.post(f"{base_url}/auth/token", data=form)
    else:
        response = client.post(f"{base_url}/auth/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
