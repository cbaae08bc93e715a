"""What an incident may name as compromised: the registries a name is looked up in.

The scope matches an incident's accounts, clients, clinics and sessions against the
ledger as written; a name that matches nothing (a typo: ``lab-interfce``, ``clinic-tn``)
gives an empty scope that reads as "no patient affected". So the incident service
refuses, before anything is written, a name none of these knows (``Incidents``):

- a staff account: its username, however it is spelt (usernames are kept casefolded);
- a client app: a registered app's id (ids are registered in lower case, so the typed
  id is casefolded) or the console's own sessions (``carevault-console``); apps are
  revoked, never deleted, so a revoked app is still known;
- a clinic: one a staff account or a client app works at, one named in
  ``CAREVAULT_CLINIC_NAMES[_ZH]``, or one holding a Patient record (a clinic whose staff
  have all moved on still has its patients); an Organization that is none of these is
  an outside provider, where no one here works. Clinic ids are FHIR ids, so case counts:
  a clinic typed in another case is taken as the group's spelling only when one clinic
  matches it so;
- a session: one ever issued. A session's row is written when it is opened and never
  deleted (expiry, revocation and sign-out only mark it), and the ledger names only
  sessions of tokens this server signed, so the sessions table holds every session the
  ledger can name, and also those stolen but not used yet (whose scope is truly empty
  so far). Session ids are random tokens: matched exactly, never casefolded.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select

from carevault.access.sessions import CONSOLE_CLIENT
from carevault.access.tables import auth_session, client_app, staff_account
from carevault.db import read_transaction
from carevault.incidents.model import principal_of
from carevault.vault.tables import resource_head

if TYPE_CHECKING:
    from carevault.bootstrap import Services


class Registry(Protocol):
    """The look-ups behind ``Incidents``' check of what an incident names."""

    def staff(self, username: str) -> bool:
        """Whether a staff account has ``username`` (as typed: casefolded here)."""
        ...

    def client(self, client_id: str) -> str | None:
        """The id of the client app ``client_id`` names however it is spelt, or None."""
        ...

    def clinic(self, clinic_id: str) -> str | None:
        """The group's id of the clinic ``clinic_id`` names, or None (see the module)."""
        ...

    def sessions(self, session_ids: Collection[str]) -> set[str]:
        """Those of ``session_ids`` ever issued (exactly as written)."""
        ...

    def same_people(self, accounts: Collection[str]) -> set[str]:
        """The staff accounts (``staff:<username>``) of the people ``accounts`` are: each
        account naming the practitioner one of ``accounts`` names (the release budget's
        person, ``detect/budget.holder``). An account naming none is no one else."""
        ...

    def holders(self, session_ids: Collection[str]) -> set[str]:
        """The staff accounts (``staff:<username>``) that ``session_ids`` were issued to:
        an incident naming a session names its holder (adversary round 58)."""
        ...


@dataclass(frozen=True)
class Directory:
    """``Registry`` over the running services: read afresh on each call (a clinic given
    to an account a second ago is known at once)."""

    services: Services

    def staff(self, username: str) -> bool:
        return self.services.accounts.find(username) is not None

    def client(self, client_id: str) -> str | None:
        wanted = client_id.strip().casefold()
        if wanted == CONSOLE_CLIENT or self.services.clients.get(wanted) is not None:
            return wanted
        return None

    def clinic(self, clinic_id: str) -> str | None:
        wanted = clinic_id.strip()
        known = self._working_clinics()
        if wanted in known:
            return wanted
        same = {clinic for clinic in known if clinic.casefold() == wanted.casefold()}
        if not same:
            same = self._patients_clinics(wanted)
            if wanted in same:
                return wanted
        return same.pop() if len(same) == 1 else None

    def sessions(self, session_ids: Collection[str]) -> set[str]:
        return self.services.sessions.issued(session_ids)

    def same_people(self, accounts: Collection[str]) -> set[str]:
        wanted = {principal_of(account) for account in accounts}
        account = staff_account.c
        with read_transaction(self.services.engine) as connection:
            rows = connection.execute(
                select(account.username, account.practitioner_id).where(
                    account.practitioner_id.is_not(None)
                )
            ).all()
        practitioners = {practitioner for name, practitioner in rows if f"staff:{name}" in wanted}
        return {f"staff:{name}" for name, practitioner in rows if practitioner in practitioners}

    def holders(self, session_ids: Collection[str]) -> set[str]:
        wanted = sorted(set(session_ids))
        if not wanted:
            return set()
        session, account = auth_session.c, staff_account.c
        with read_transaction(self.services.engine) as connection:
            rows = connection.execute(
                select(account.username)
                .select_from(
                    auth_session.join(staff_account, session.account_id == account.account_id)
                )
                .where(session.session_id.in_(wanted))
            ).scalars()
            return {f"staff:{name}" for name in rows}

    def _working_clinics(self) -> set[str]:
        settings = self.services.settings
        with read_transaction(self.services.engine) as connection:
            lists = [
                *connection.execute(select(staff_account.c.clinic_ids)).scalars(),
                *connection.execute(select(client_app.c.clinic_ids)).scalars(),
            ]
        found = {clinic for text in lists if text for clinic in text.split(",") if clinic}
        return found | set(settings.clinic_names) | set(settings.clinic_names_zh)

    def _patients_clinics(self, wanted: str) -> set[str]:
        """The clinics holding a Patient record whose id is ``wanted`` in any case."""
        head = resource_head.c
        with read_transaction(self.services.engine) as connection:
            rows = connection.execute(
                select(head.clinic_id)
                .where(
                    head.resource_type == "Patient",
                    func.lower(head.clinic_id) == wanted.lower(),
                )
                .distinct()
                .limit(3)
            ).scalars()
            return {str(clinic) for clinic in rows if clinic}
