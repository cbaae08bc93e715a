"""``carevault staff …`` and ``carevault client …`` run as an operator runs them (a separate
process on the same data directory) while the server (here in-process) keeps serving."""

from __future__ import annotations

import getpass
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from carevault.access.throttle import PAIR
from carevault.bootstrap import Services
from carevault.domain.roles import Role
from carevault.ledger.events import Outcome, Tag
from tests.integration.access.audit_log import events, refused
from tests.integration.access.browser import assert_refused_within, basic, bearer
from tests.integration.access.conftest import APP, CLINIC, MovableClock, Staff
from tests.support.client import FhirTestClient
from tests.support.server import environment, invoke_cli

NEW_PASSWORD = "a whole new passphrase"
OPERATOR = f"cli:{getpass.getuser()}"

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(auth_services: Services) -> Cli:
    """Run ``carevault …`` on the services' data directory; ``password`` goes to stdin."""
    settings = auth_services.settings
    env = environment(
        settings.home,
        settings.database_url,
        {"CAREVAULT_ARGON2_MEMORY_KIB": "8192", "CAREVAULT_ARGON2_TIME_COST": "1"},
    )

    def run(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        if password is None:
            return invoke_cli(env, *args)
        return invoke_cli(env, *args, "--password-stdin", input=password + "\n")

    return run


def _secret(output: str, username: str) -> str:
    found = re.search(rf"TOTP secret for {re.escape(username)}: ([A-Z2-7]+)", output)
    assert found, output
    return found.group(1)


def _sign_in(web: FhirTestClient, staff: Staff, code: str | None = None) -> Any:
    return web.post("/auth/token", data=staff.grant(code=code))


def test_staff_commands_add_list_reset_and_suspend_an_account(
    cli: Cli, web: FhirTestClient, auth_services: Services, clock: MovableClock
) -> None:
    added = cli(
        "staff",
        "add",
        "Nurse.Wong",
        "--name",
        "Wong Ka Yan",
        "--role",
        "nurse",
        "--clinic",
        CLINIC,
        password="correct horse battery staple",
    )
    assert added.returncode == 0, added.stderr
    assert "added nurse.wong (nurse) as st-" in added.stdout
    assert "otpauth://totp/CareVault:nurse.wong?secret=" in added.stdout
    nurse = Staff("nurse.wong", "", _secret(added.stdout, "nurse.wong"), clock)

    # The new member signs in with the secret the command printed.
    first = _sign_in(web, nurse)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    assert web.get("/fhir/Patient", headers=bearer(token)).status_code == 200

    reset = cli("staff", "reset-password", "nurse.wong", password=NEW_PASSWORD)
    assert reset.returncode == 0, reset.stderr
    assert "password changed; 1 live sessions ended" in reset.stdout
    assert_refused_within(web, token)
    assert _sign_in(web, nurse, code="123456").status_code == 400  # the old password
    nurse.password = NEW_PASSWORD
    second = _sign_in(web, nurse)
    assert second.status_code == 200

    new_totp = cli("staff", "reset-totp", "nurse.wong")
    assert new_totp.returncode == 0, new_totp.stderr
    assert_refused_within(web, second.json()["access_token"])
    old_secret = nurse.totp_secret
    nurse.totp_secret, nurse.last_step = _secret(new_totp.stdout, "nurse.wong"), None
    assert (
        _sign_in(web, Staff("nurse.wong", "", old_secret, clock, NEW_PASSWORD)).status_code == 400
    )
    third = _sign_in(web, nurse)
    assert third.status_code == 200

    suspended = cli("staff", "suspend", "nurse.wong", "--reason", "left the clinic")
    assert suspended.returncode == 0, suspended.stderr
    assert "nurse.wong suspended; 1 live sessions ended" in suspended.stdout
    assert_refused_within(web, third.json()["access_token"])
    assert _sign_in(web, nurse).status_code == 400
    listed = cli("staff", "list")
    assert listed.stdout.splitlines() == [f"nurse.wong\tnurse\tsuspended\t{CLINIC}"]

    store = auth_services.audit_ledger.store
    account = auth_services.accounts.find("nurse.wong")
    assert account is not None
    done = {
        event.tag: event
        for event in events(store)
        if event.tag.value.startswith("admin:staff:") and event.reason == account.account_id
    }
    assert set(done) == {
        Tag.ADMIN_STAFF_ADDED,
        Tag.ADMIN_PASSWORD_CHANGED,
        Tag.ADMIN_TOTP_RESET,
        Tag.ADMIN_STAFF_SUSPENDED,
    }
    assert all(
        (event.principal, event.role, event.outcome) == (OPERATOR, "administrator", Outcome.SUCCESS)
        for event in done.values()
    )
    assert done[Tag.ADMIN_STAFF_ADDED].detail == {"role": "nurse", "clinics": [CLINIC]}
    suspended = done[Tag.ADMIN_STAFF_SUSPENDED]
    assert suspended.detail["sessions_ended"] == 1
    assert auth_services.admin.reason_of(suspended) == "left the clinic"
    assert "left the clinic" not in str(suspended.detail)
    assert done[Tag.ADMIN_TOTP_RESET].detail == {"sessions_ended": 1}
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (account suspended)")
    refused(store, Tag.AUTH_SIGN_IN_FAILED, "account suspended")


def test_client_commands_add_list_and_revoke_apps(
    cli: Cli, web: FhirTestClient, auth_services: Services
) -> None:
    feed = cli(
        "client",
        "add",
        "lab-feed",
        "--name",
        "Laboratory feed",
        "--confidential",
        "--scope",
        "system/Observation.cruds system/Patient.rs",
        "--clinic",
        CLINIC,
    )
    assert feed.returncode == 0, feed.stderr
    assert "added client lab-feed (confidential)" in feed.stdout
    found = re.search(r"client secret \(shown once\): (\S+)", feed.stdout)
    assert found, feed.stdout
    plain_http = cli(
        "client",
        "add",
        "bad-app",
        "--name",
        "Bad",
        "--scope",
        "user/*.rs",
        "--redirect-uri",
        "http://ward.example/callback",
    )
    assert plain_http.returncode == 1
    assert "redirect URIs must be https" in plain_http.stderr

    granted = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Observation.rs"},
        headers=basic("lab-feed", found.group(1)),
    )
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]
    assert web.get("/fhir/Observation", headers=bearer(token)).status_code == 200

    revoked = cli("client", "revoke", "lab-feed")

    assert revoked.returncode == 0, revoked.stderr
    assert "client lab-feed revoked; 1 live sessions ended" in revoked.stdout
    assert_refused_within(web, token)
    assert cli("client", "list").stdout.splitlines() == [
        f"{APP}\tpublic\tactive\tClinic app",
        "lab-feed\tconfidential\trevoked\tLaboratory feed",
    ]
    store = auth_services.audit_ledger.store
    added = [
        event for event in events(store, Tag.ADMIN_CLIENT_ADDED) if event.principal == OPERATOR
    ]
    assert [event.reason for event in added] == ["lab-feed"]
    (revoke,) = events(store, Tag.ADMIN_CLIENT_REVOKED)
    assert (revoke.principal, revoke.reason) == (OPERATOR, "lab-feed")
    assert revoke.detail == {"sessions_ended": 1}
    refused(store, Tag.AUTH_TOKEN_REFUSED, "session revoked (client app revoked)")


def test_recovery_codes_and_clearing_a_back_off_from_the_cli(
    cli: Cli,
    web: FhirTestClient,
    auth_services: Services,
    new_staff: Callable[..., Staff],
    clock: MovableClock,
) -> None:
    clock.freeze()
    officer = new_staff(Role.PRIVACY_OFFICER)
    for _ in range(PAIR.free):
        _sign_in(web, officer, code="123456")
    assert _sign_in(web, officer).status_code == 400  # held: this address keeps failing

    cleared = cli("staff", "clear-back-off", officer.username)
    issued = cli("staff", "recovery-codes", officer.username)

    assert cleared.returncode == issued.returncode == 0, cleared.stderr + issued.stderr
    assert f"sign-in back-off of {officer.username} cleared (2 levels)" in cleared.stdout
    codes = re.findall(r"^  ([A-Z2-9]{4}(?:-[A-Z2-9]{4}){3})$", issued.stdout, re.MULTILINE)
    assert len(codes) == 10
    assert _sign_in(web, officer, code=codes[3]).status_code == 200
    assert _sign_in(web, officer, code=codes[3]).status_code == 400
    store = auth_services.audit_ledger.store
    (issue,) = events(store, Tag.ADMIN_RECOVERY_CODES_ISSUED)
    (clear,) = events(store, Tag.ADMIN_THROTTLE_CLEARED)
    assert issue.principal == clear.principal == OPERATOR
    assert issue.detail == {"count": 10}
    refused(store, Tag.AUTH_SIGN_IN_FAILED, "wrong or used recovery code")


def test_an_integration_account_is_shown_no_totp_secret(
    cli: Cli, web: FhirTestClient, auth_services: Services
) -> None:
    """An integration account signs in only through its bound app's client credentials:
    adding it, or resetting its TOTP, shows no secret (one shown would be a credential to
    keep safe for nothing) and says how it does sign in; the bound app's grant works."""
    added = cli(
        "staff", "add", "lab.svc", "--name", "Laboratory service", "--role", "integration",
        "--clinic", CLINIC, password="a long service passphrase",
    )  # fmt: skip
    reset = cli("staff", "reset-totp", "lab.svc")
    bound = cli(
        "client", "add", "lab-bound", "--name", "Laboratory (bound)", "--confidential",
        "--scope", "system/Observation.rs", "--clinic", CLINIC, "--account", "lab.svc",
    )  # fmt: skip

    for shown in (added, reset):
        assert shown.returncode == 0, shown.stderr
        assert "TOTP secret for" not in shown.stdout and "otpauth://" not in shown.stdout
        assert "lab.svc is an integration account" in shown.stdout, shown.stdout
        assert "--confidential --account lab.svc" in shown.stdout
    assert "added lab.svc (integration) as st-" in added.stdout
    found = re.search(r"client secret \(shown once\): (\S+)", bound.stdout)
    assert bound.returncode == 0 and found, bound.stdout + bound.stderr
    granted = web.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Observation.rs"},
        headers=basic("lab-bound", found.group(1)),
    )
    assert granted.status_code == 200, granted.text
    store = auth_services.audit_ledger.store
    account = auth_services.accounts.find("lab.svc")
    assert account is not None and account.role is Role.INTEGRATION
    assert [event.reason for event in events(store, Tag.ADMIN_TOTP_RESET)] == [account.account_id]
