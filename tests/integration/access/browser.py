"""Signing in through the authorize page as a browser does, and the app's side of it.

The browser reads the login form (its CSRF field and the request echoed back as
hidden fields) and posts it with the cookie the page set; the app builds the
request with a PKCE verifier and state, and redeems the code it is sent back.
Works with an ``httpx.Client`` on a real server and with starlette's TestClient.
Also the credentials headers the apps send, and the check that a token stops working.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from carevault.access import pkce

#: The demo app's registration, as ``carevault seed`` makes it.
APP_SCOPES = "openid fhirUser offline_access user/*.cruds patient/*.rs"
REDIRECT_URI = "http://127.0.0.1:8765/callback"


class _LoginForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.visible: list[str] = []
        self.alert: list[str] = []
        self._in_alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action")
        elif tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"] or ""] = values.get("value") or ""
        elif tag == "input":
            self.visible.append(values["name"] or "")
        elif values.get("role") == "alert":
            self._in_alert = True

    def handle_endtag(self, tag: str) -> None:
        self._in_alert = False

    def handle_data(self, data: str) -> None:
        if self._in_alert:
            self.alert.append(data)


@dataclass(frozen=True)
class LoginPage:
    action: str
    hidden: dict[str, str]
    visible: list[str]
    alert: str


def read_login_page(html: str) -> LoginPage:
    parser = _LoginForm()
    parser.feed(html)
    assert parser.action, "no form on the page"
    return LoginPage(parser.action, parser.hidden, parser.visible, "".join(parser.alert).strip())


@dataclass(frozen=True)
class AuthRequest:
    """What an app sends the browser to /auth/authorize with."""

    client_id: str
    aud: str
    scope: str = "openid fhirUser offline_access user/*.cruds"
    redirect_uri: str = REDIRECT_URI
    verifier: str = field(default_factory=pkce.new_verifier)
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def params(self, **changes: str) -> dict[str, str]:
        values = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "aud": self.aud,
            "code_challenge": pkce.challenge_for(self.verifier),
            "code_challenge_method": "S256",
        }
        values.update(changes)
        return {name: value for name, value in values.items() if value}

    def exchange(self, code: str) -> dict[str, str]:
        """The token request that redeems ``code``."""
        return {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.client_id,
            "code_verifier": self.verifier,
        }


def submit_login(
    browser: Any, request: AuthRequest, username: str, password: str, code: str
) -> Any:
    """Open the login page, fill it in and post it; the (not followed) response."""
    page = browser.get("/auth/authorize", params=request.params())
    assert page.status_code == 200, page.text
    form = read_login_page(page.text)
    assert form.visible == ["username", "password", "totp"]
    assert form.hidden["csrf"]
    filled = {**form.hidden, "username": username, "password": password, "totp": code}
    return browser.post(form.action, data=filled, follow_redirects=False)


def code_from(response: Any, request: AuthRequest) -> str:
    """The authorization code in the redirect back to the app (checking where it goes)."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == request.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == [request.state]
    assert "error" not in query
    (code,) = query["code"]
    return code


def error_from(response: Any, request: AuthRequest) -> str:
    """The OAuth error in a redirect back to the app."""
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == request.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == [request.state]
    assert "code" not in query
    (error,) = query["error"]
    return error


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    """HTTP Basic client authentication (client_secret_basic)."""
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"authorization": f"Basic {credentials}"}


def assert_refused_within(client: Any, token: str, seconds: float = 1.0) -> None:
    """FHIR requests with ``token`` are refused (401) once ``seconds`` have passed.

    Requests count by when they were sent, not answered, so that a slow machine does
    not count against the server: only one sent after ``seconds`` that gets through
    fails the test.
    """
    started = time.monotonic()
    while True:
        sent = time.monotonic() - started
        if client.get("/fhir/Patient", headers=bearer(token)).status_code == 401:
            return
        assert sent < seconds, f"the token still works {sent:.2f} s later"
        time.sleep(0.05)


class PickerPage(HTMLParser):
    """The patient picker of a patient launch: its hidden fields (the same in each of its
    forms), the patients it offers, and its error."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.patients: list[str] = []
        self.alert: list[str] = []
        self._in_alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden":
            self.hidden[values["name"] or ""] = values.get("value") or ""
        elif tag == "button" and values.get("name") == "patient":
            self.patients.append(values.get("value") or "")
        elif values.get("role") == "alert":
            self._in_alert = True

    def handle_endtag(self, tag: str) -> None:
        self._in_alert = False

    def handle_data(self, data: str) -> None:
        if self._in_alert:
            self.alert.append(data)


def read_picker_page(html: str) -> PickerPage:
    parsed = PickerPage()
    parsed.feed(html)
    assert parsed.hidden.get("ticket"), "no patient picker on the page"
    return parsed
