"""Staff accounts: creation, sign-in with password and TOTP (or a recovery code),
back-off, suspension.

Sign-in failures all look the same to the caller — unknown user, wrong password,
wrong or replayed code, back-off, suspension — and take the same time (an unknown
user is checked against a decoy hash and counted by the throttle exactly like a
known one). The audit ledger gets the real reason. Throttling (``throttle``) slows
the address that fails, never locks, and cannot be aimed at an owner elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update

from carevault.access import recovery, totp
from carevault.access.passwords import Passwords, check_strength
from carevault.access.recovery import RecoveryCodes
from carevault.access.tables import staff_account
from carevault.access.throttle import SignInThrottle, Verdict
from carevault.clock import Clock, to_micros, utc_now
from carevault.db import read_transaction, write_transaction
from carevault.domain.roles import Role
from carevault.keys.anchors import seal_fields, seal_matches, seal_unsealed
from carevault.keys.envelope import Envelope
from carevault.keys.service import CREDENTIALS_KEY_ID, KeyService


class AccountError(ValueError):
    """An administrative action on an account could not be done; the message says why."""


class SignInFailed(Exception):
    """Sign-in refused. ``str()`` is what the caller sees; ``reason`` is for the audit only."""

    PUBLIC = "sign-in failed: check the username, password and code, and try again later"

    def __init__(
        self, reason: str, account_id: str | None = None, throttled: Verdict | None = None
    ) -> None:
        super().__init__(self.PUBLIC)
        self.reason = reason
        self.account_id = account_id
        #: Set when the attempt was refused unchecked because of a back-off.
        self.throttled = throttled


class NotAnOfficer(SignInFailed):
    """A fresh code, but not a privacy officer's: the code is spent all the same."""

    def __init__(self, account: Account) -> None:
        super().__init__(f"{account.role} is not a privacy officer", account.account_id)
        self.account = account


def officer_refusal(failure: SignInFailed) -> str:
    """What a door that took an officer's decision tells the caller it refused."""
    if isinstance(failure, NotAnOfficer):
        return "only a privacy officer may do this"
    return "a privacy officer's fresh TOTP code is required"


@dataclass(frozen=True)
class Account:
    account_id: str
    username: str
    display_name: str
    role: Role
    clinic_ids: frozenset[str]
    practitioner_id: str | None
    suspended: bool


def other_logins(username: str, accounts: Sequence[Account]) -> list[Account]:
    """The other logins of ``username``'s person not suspended, among ``accounts`` (every
    account, read already): accounts naming the same practitioner, as the release budget
    counts a person (``detect/budget.holder``); none for an account naming none."""
    held = next((a for a in accounts if a.username == username), None)
    if held is None or held.practitioner_id is None:
        return []
    return [
        a
        for a in accounts
        if a.username != username and a.practitioner_id == held.practitioner_id and not a.suspended
    ]


def _account(row: object) -> Account:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Account(
        account_id=mapping["account_id"],
        username=mapping["username"],
        display_name=mapping["display_name"],
        role=Role(mapping["role"]),
        clinic_ids=frozenset(filter(None, mapping["clinic_ids"].split(","))),
        practitioner_id=mapping["practitioner_id"],
        suspended=mapping["suspended_us"] is not None,
    )


#: Why an account whose row does not match its seal is refused (a sign-in, a step-up, a
#: session's state): its role, clinics or practitioner were edited in the database.
ACCOUNT_ALTERED = "account record altered in the database"


def account_seal(
    key: bytes,
    account_id: str,
    username: str,
    role: str,
    clinic_ids: str,
    practitioner_id: str | None,
    suspended: bool,
) -> bytes:
    """The seal of what an account may do, as its row stores it (``clinic_ids`` as
    stored: sorted, comma-separated), and whether it is suspended: a database writer who
    cleared ``suspended_us`` let a suspended person sign in again (review of round 69)."""
    fields: list[object] = [
        account_id,
        username,
        role,
        clinic_ids,
        practitioner_id,
        suspended,
    ]
    return seal_fields(key, "carevault-account/2", fields)


@dataclass(frozen=True)
class SignIn:
    """A successful sign-in: who, and whether a recovery code stood in for the TOTP code."""

    account: Account
    recovery_code_used: bool = False
    recovery_codes_left: int | None = None


class StaffAccounts:
    def __init__(
        self,
        engine: Engine,
        passwords: Passwords,
        keys: KeyService | None,
        envelope: Envelope,
        clock: Clock = utc_now,
    ) -> None:
        self.engine = engine
        self.passwords = passwords
        self.keys = keys
        self.envelope = envelope
        self.clock = clock
        self.throttle = SignInThrottle(engine, clock)
        self.recovery = RecoveryCodes(engine, clock)
        #: The key accounts are sealed with (``account_seal``; None with encryption off)
        #: and whether every account has been sealed, so that one without a seal was
        #: stripped of it (the composition root sets both: ``keys.anchors``).
        self.seal_key: bytes | None = None
        self.all_sealed = False

    # --- the account's seal ----------------------------------------------------------------

    def _seal(
        self,
        account_id: str,
        username: str,
        role: str,
        clinics: str,
        practitioner: str | None,
        suspended: bool,
    ) -> bytes | None:
        if self.seal_key is None:
            return None
        return account_seal(
            self.seal_key, account_id, username, role, clinics, practitioner, suspended
        )

    def genuine(
        self,
        account_id: str,
        username: str,
        role: str,
        clinic_ids: str,
        practitioner_id: str | None,
        suspended: bool,
        seal: bytes | None,
    ) -> bool:
        """Whether an account's row is as CareVault wrote it (always, with no key)."""
        expected = self._seal(account_id, username, role, clinic_ids, practitioner_id, suspended)
        if expected is None:
            return True
        return seal_matches(seal, expected, self.all_sealed)

    def _row_seal(self, row: Any, suspended: bool | None = None) -> bytes | None:
        """The seal of a ``staff_account`` row as it stands (``suspended``: as it is
        about to be)."""
        return self._seal(
            row.account_id,
            row.username,
            row.role,
            row.clinic_ids,
            row.practitioner_id,
            row.suspended_us is not None if suspended is None else suspended,
        )

    def _genuine_row(self, row: Any) -> bool:
        return self.genuine(
            row.account_id,
            row.username,
            row.role,
            row.clinic_ids,
            row.practitioner_id,
            row.suspended_us is not None,
            row.seal,
        )

    def genuine_session(self, row: Any) -> bool:
        """``genuine`` for a session's row (``Sessions._row``: the account's columns)."""
        return self.genuine(
            row.account_id,
            row.username,
            row.role,
            row.staff_clinics,
            row.practitioner_id,
            row.suspended_us is not None,
            row.staff_seal,
        )

    def genuine_bound(self, row: Any) -> bool:
        """``genuine`` for the integration account a session's client app acts for
        (``Sessions._row``: its columns labelled ``bound_``; adversary round 70)."""
        return self.genuine(
            row.bound_account_id,
            row.bound_username,
            row.bound_role,
            row.bound_clinics,
            row.bound_practitioner_id,
            row.bound_suspended_us is not None,
            row.bound_seal,
        )

    def seal_unsealed(self) -> int:
        """Seal every account that has no seal, as it stands (once, when sealing begins);
        returns how many."""
        if self.seal_key is None:
            return 0
        return seal_unsealed(
            self.engine, staff_account, [staff_account.c.account_id], self._row_seal
        )

    # --- the TOTP secret, sealed -----------------------------------------------------------

    def _credentials_key(self, purpose: str) -> bytes | None:
        if self.keys is None:
            return None
        return self.keys.ensure_data_key(
            CREDENTIALS_KEY_ID, "credentials", principal="system:access", purpose=purpose
        )

    def _seal_secret(self, account_id: str, secret: str) -> bytes:
        aad = f"carevault-totp|{account_id}".encode()
        return self.envelope.seal(self._credentials_key("totp-enrol"), aad, secret.encode())

    def _open_secret(self, account_id: str, sealed: bytes) -> str:
        aad = f"carevault-totp|{account_id}".encode()
        key = self._credentials_key("sign-in")
        return self.envelope.open(key, aad, sealed, where=f"TOTP secret of {account_id}").decode()

    # --- administration --------------------------------------------------------------------

    def add(
        self,
        username: str,
        display_name: str,
        role: Role,
        clinic_ids: Sequence[str],
        password: str,
        practitioner_id: str | None = None,
        *,
        check_password: bool = True,
        password_hash: str | None = None,
        hash_checked: bool = False,
    ) -> tuple[Account, str]:
        """Create an account; returns it and its new TOTP secret (shown once, for enrolment).

        ``password_hash``: the argon2 hash of ``password``, made once for accounts that
        share it (the demo's); it is used only if it verifies, unless ``hash_checked``
        says the caller verified it already (verifying costs as much as hashing: the
        demo's 190 accounts spent minutes on it before the server could start)."""
        username = username.strip().casefold()
        if not username or len(username) > 64:
            raise AccountError("a username needs 1 to 64 characters")
        if check_password:
            check_strength(password, username)
        account_id = f"st-{secrets.token_hex(8)}"
        secret = totp.new_secret()
        now = to_micros(self.clock())
        # The slow parts (argon2, the key service) run before the write lock is taken.
        if password_hash is None or not (
            hash_checked or self.passwords.verify(password_hash, password)
        ):
            # A given hash (the demo's one shared password) is used only if it matches.
            password_hash = self.passwords.hash(password)
        totp_sealed = self._seal_secret(account_id, secret)
        clinics = ",".join(sorted(clinic_ids))
        seal = self._seal(account_id, username, str(role), clinics, practitioner_id, False)
        with write_transaction(self.engine) as connection:
            taken = connection.execute(
                select(staff_account.c.account_id).where(staff_account.c.username == username)
            ).first()
            if taken is not None:
                raise AccountError(f"username {username} is taken")
            connection.execute(
                insert(staff_account).values(
                    account_id=account_id,
                    username=username,
                    display_name=display_name,
                    role=str(role),
                    clinic_ids=clinics,
                    practitioner_id=practitioner_id,
                    password_hash=password_hash,
                    totp_sealed=totp_sealed,
                    totp_last_step=None,
                    failed_count=0,
                    next_attempt_us=0,
                    locked_until_us=0,
                    suspended_us=None,
                    password_changed_us=now,
                    created_us=now,
                    seal=seal,
                )
            )
        account = self.find(username)
        assert account is not None  # noqa: S101 - just written
        return account, secret

    def find(self, username: str) -> Account | None:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.username == username.strip().casefold())
            ).first()
        return None if row is None else _account(row)

    def get(self, account_id: str) -> Account | None:
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.account_id == account_id)
            ).first()
        return None if row is None else _account(row)

    def get_genuine(self, account_id: str) -> Account | None:
        """``get`` for an account about to be granted something (the one a client app
        acts for, adversary round 70): None for one whose row does not match its seal."""
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.account_id == account_id)
            ).first()
        return None if row is None or not self._genuine_row(row) else _account(row)

    def all(self) -> list[Account]:
        with read_transaction(self.engine) as connection:
            rows = connection.execute(
                select(staff_account).order_by(staff_account.c.username)
            ).all()
        return [_account(row) for row in rows]

    def same_person(self, username: str, other: str) -> bool:
        """Whether two usernames are one person: the same account, or two accounts naming
        the same practitioner (as the release budget counts a person,
        ``detect/budget.holder``). An account naming no practitioner is no one else."""
        if username.strip().casefold() == other.strip().casefold():
            return True
        mine, theirs = self.find(username), self.find(other)
        return (
            mine is not None
            and theirs is not None
            and mine.practitioner_id is not None
            and mine.practitioner_id == theirs.practitioner_id
        )

    def _require(self, username: str) -> Account:
        account = self.find(username)
        if account is None:
            raise AccountError(f"no account {username}")
        return account

    def set_suspended(self, username: str, suspended: bool) -> Account:
        """Suspend or reinstate an account; its seal covers it (``account_seal``). A row
        that no longer matches its seal keeps the seal it had: suspending an account a
        database writer widened must not make the widened row genuine."""
        account = self._require(username)
        with write_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.account_id == account.account_id)
            ).one()
            values: dict[str, Any] = {
                "suspended_us": to_micros(self.clock()) if suspended else None
            }
            if self._genuine_row(row):
                values["seal"] = self._row_seal(row, suspended)
            connection.execute(
                update(staff_account)
                .where(staff_account.c.account_id == account.account_id)
                .values(**values)
            )
        return self._require(username)

    def set_password(self, username: str, password: str) -> Account:
        account = self._require(username)
        check_strength(password, account.username)
        password_hash = self.passwords.hash(password)
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(staff_account)
                .where(staff_account.c.account_id == account.account_id)
                .values(password_hash=password_hash, password_changed_us=to_micros(self.clock()))
            )
        self.throttle.clear(account.username)
        return account

    def reset_totp(self, username: str) -> tuple[Account, str]:
        account = self._require(username)
        secret = totp.new_secret()
        sealed = self._seal_secret(account.account_id, secret)
        with write_transaction(self.engine) as connection:
            connection.execute(
                update(staff_account)
                .where(staff_account.c.account_id == account.account_id)
                .values(totp_sealed=sealed, totp_last_step=None)
            )
        return account, secret

    def issue_recovery_codes(self, username: str) -> tuple[Account, list[str]]:
        """A new set of one-time recovery codes (shown once); unused old ones stop working."""
        account = self._require(username)
        return account, self.recovery.issue(account.account_id)

    # --- sign-in ---------------------------------------------------------------------------

    def authenticate(
        self, username: str, password: str, code: str, source: str | None = None
    ) -> Account:
        """The account, if all three factors hold; otherwise ``SignInFailed``."""
        return self.sign_in(username, password, code, source).account

    def sign_in(self, username: str, password: str, code: str, source: str | None) -> SignIn:
        """Password and TOTP code (or a recovery code), from ``source``, under the throttle."""
        name = username.strip().casefold()
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.username == name)
            ).first()
        stored_hash = None if row is None else row.password_hash
        password_ok = self.passwords.verify(stored_hash, password)
        account_id = None if row is None else str(row.account_id)
        spare = recovery.normalise(code)
        # Looked up whatever the password, so that the work does not tell it apart.
        spare_ok = spare is not None and self.recovery.valid(account_id or "-", spare)
        verdict = self.throttle.check(
            name, source, past_account=password_ok and spare_ok and row is not None
        )
        if not verdict.allowed:
            raise SignInFailed(f"attempt during {verdict.reason}", account_id, verdict)
        if row is None or not password_ok:
            self.throttle.failed(name, source)
            raise SignInFailed("unknown username" if row is None else "wrong password", account_id)
        account = _account(row)
        step: int | None = None
        if spare is not None:
            if not self.recovery.redeem(account.account_id, spare, source):
                self.throttle.failed(name, source)
                raise SignInFailed("wrong or used recovery code", account.account_id)
        else:
            step = self._valid_step(account, row, code, now_us)
            if step is None:
                self.throttle.failed(name, source)
                raise SignInFailed("wrong or replayed TOTP code", account.account_id)
        if not self._genuine_row(row):
            raise SignInFailed(ACCOUNT_ALTERED, account.account_id)
        if account.suspended:
            raise SignInFailed("account suspended", account.account_id)
        if account.role is Role.INTEGRATION:
            raise SignInFailed(
                "integration accounts sign in only with client credentials of their bound app",
                account.account_id,
            )
        if step is not None:
            self._claim_step(account, step)
        self.throttle.succeeded(name, source)
        if self.passwords.needs_rehash(row.password_hash):
            rehashed = self.passwords.hash(password)
            with write_transaction(self.engine) as connection:
                connection.execute(
                    update(staff_account)
                    .where(staff_account.c.account_id == account.account_id)
                    .values(password_hash=rehashed)
                )
        if spare is None:
            return SignIn(account)
        return SignIn(account, True, self.recovery.remaining(account.account_id))

    def confirm_totp(self, username: str, code: str, source: str | None = None) -> Account:
        """Step-up check for a sensitive action by a signed-in user (or the CLI on the
        host): a fresh TOTP code (valid now, never used before) for an active account;
        ``SignInFailed`` otherwise. Sign-in back-off does not apply: failed step-ups have
        their own levels, per (account, source) and per account from every source
        (``throttle.STEP_UP_ACCOUNT``), so no stranger can keep an officer from
        containment and no token holder can guess codes from many networks. ``source``:
        the caller's address; None only for the CLI on the host, which the account-wide
        level does not hold."""
        now_us = to_micros(self.clock())
        with read_transaction(self.engine) as connection:
            row = connection.execute(
                select(staff_account).where(staff_account.c.username == username.strip().casefold())
            ).first()
        if row is None:
            raise SignInFailed("unknown username")
        account = _account(row)
        if account.suspended:
            raise SignInFailed("account suspended", account.account_id)
        verdict = self.throttle.step_up_check(account.account_id, source)
        if not verdict.allowed:
            raise SignInFailed(f"step-up during {verdict.reason}", account.account_id, verdict)
        step = self._valid_step(account, row, code, now_us)
        if step is None:
            self.throttle.step_up_failed(account.account_id, source)
            raise SignInFailed("wrong or replayed TOTP code", account.account_id)
        # After the code, as at sign-in: only the account's own holder learns it was
        # altered, not whoever knows its username.
        if not self._genuine_row(row):
            raise SignInFailed(ACCOUNT_ALTERED, account.account_id)
        self._claim_step(account, step)
        self.throttle.step_up_succeeded(account.account_id, source)
        return account

    def confirm_officer(self, username: str, code: str, source: str | None = None) -> Account:
        """``confirm_totp``, for a privacy officer's decision: ``NotAnOfficer`` (a
        ``SignInFailed``, whose ``reason`` is for the audit) if the account is another
        role's. Every door that takes an officer's decision (containment, the alert desk,
        notices, exports, incidents) confirms it here and records a refusal its own way."""
        account = self.confirm_totp(username, code, source)
        if account.role is not Role.PRIVACY_OFFICER:
            raise NotAnOfficer(account)
        return account

    def _valid_step(self, account: Account, row: Any, code: str, now_us: int) -> int | None:
        """The time step of a valid, unused TOTP code, or None."""
        if row.totp_sealed is None:
            return None
        secret = self._open_secret(account.account_id, row.totp_sealed)
        return totp.verify(secret, code, last_step=row.totp_last_step, now=now_us / 1e6)

    def _claim_step(self, account: Account, step: int) -> None:
        """Record ``step`` as used; the step guard makes a concurrent replay lose the race."""
        with write_transaction(self.engine) as connection:
            claimed = connection.execute(
                update(staff_account)
                .where(
                    staff_account.c.account_id == account.account_id,
                    (staff_account.c.totp_last_step.is_(None))
                    | (staff_account.c.totp_last_step < step),
                )
                .values(totp_last_step=step)
            ).rowcount
        if claimed != 1:
            raise SignInFailed("TOTP code replayed", account.account_id)
