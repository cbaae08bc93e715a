"""What an incident names as compromised, checked against what CareVault has had.

A typo (``chan.tn`` for ``chan.tm``, ``lab-interfce``, ``clinic-tn``) matches no ledger
entry, and its empty scope would read as "no patient affected": every account, client
app, clinic and session an incident names is looked up (``registry``) before anything is
written, and what is unknown is refused, named as typed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from carevault.incidents.model import Compromised, IncidentError, principal_of
from carevault.incidents.registry import Registry


class UnknownName(IncidentError):
    """Something named as compromised that CareVault never had (``registry``): a typo
    (``chan.tn`` for ``chan.tm``, ``lab-interfce``, ``clinic-tn``) matches no ledger
    entry, and its empty scope would read as "no patient affected". The message names
    what is unknown, as typed (``repr``), and nothing else."""


class UnknownAccount(UnknownName):
    """An account named as compromised that is no staff account and no full principal of
    a known client app or a process."""


class UnknownClient(UnknownName):
    """A client app named as compromised that is registered under no id."""


class UnknownClinic(UnknownName):
    """A clinic named as compromised that is none of the group's."""


class UnknownSession(UnknownName):
    """A session named as compromised that was never issued."""


#: Principals named in full that are taken as given: a process's (the unwrap ledger
#: names one that bypassed the gate so), a CLI operator's. A client app's
#: (``client:<id>``) is looked up as a client is.
OTHER_PRINCIPALS = ("client:", "system:", "cli:")


def names(accounts: Collection[str], principal: str) -> bool:
    """Whether ``accounts`` (an incident's compromised accounts, each a username or a
    full principal, as declared) name ``principal`` (``staff:<username>``, or a bare
    username), however either is spelt: usernames are matched without regard to case,
    as sign-in matches them."""
    wanted = principal_of(principal).casefold()
    return any(principal_of(account).casefold() == wanted for account in accounts)


class Naming:
    """Checks the names of what is compromised against the registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def known(self, named: Compromised, already: Compromised | None = None) -> Compromised:
        """``named`` with its clients and clinics as the group spells them, once every
        account, client, clinic and session it names (beyond those ``already`` named) is
        known to the registry; otherwise ``UnknownName`` (one of its kinds when only one
        kind is unknown), naming each unknown thing as typed, before anything is written."""
        before = already or Compromised()
        unknown: dict[type[UnknownName], str] = {}
        staff, apps = self._unknown_accounts(set(named.accounts) - set(before.accounts))
        if staff:
            unknown[UnknownAccount] = (
                f"accounts: no staff account {_listed(staff)}: check the spelling; a "
                f"client app or a process is named in full "
                f"({', '.join(p + '...' for p in OTHER_PRINCIPALS)})"
            )
        if apps:
            unknown[UnknownAccount] = "; ".join(
                [*unknown.values(), f"accounts: no client app {_listed(apps)}"]
            )
        clients, bad_clients = self._spelt(named.clients, before.clients, self.registry.client)
        if bad_clients:
            unknown[UnknownClient] = (
                f"clients: no client app {_listed(bad_clients)}: check the spelling "
                "(carevault client list)"
            )
        clinics, bad_clinics = self._spelt(named.clinics, before.clinics, self.registry.clinic)
        if bad_clinics:
            unknown[UnknownClinic] = (
                f"clinics: no clinic of the group {_listed(bad_clinics)}: check the "
                "spelling (a clinic is named by its Organization id)"
            )
        new_sessions = set(named.sessions) - set(before.sessions)
        issued = self.registry.sessions(new_sessions) if new_sessions else set()
        bad_sessions = sorted(new_sessions - issued)
        if bad_sessions:
            unknown[UnknownSession] = (
                f"sessions: no session {_listed(bad_sessions)} was ever issued: check the "
                "spelling (session ids are case-sensitive)"
            )
        if unknown:
            kind = next(iter(unknown)) if len(unknown) == 1 else UnknownName
            raise kind("; ".join(unknown.values()))
        return replace(named, clients=clients, clinics=clinics)

    def _unknown_accounts(self, accounts: Collection[str]) -> tuple[list[str], list[str]]:
        """(names no staff account has, ``client:`` principals of no client app) among
        ``accounts``; processes and CLI operators (``system:``, ``cli:``) are taken as
        given."""
        staff: list[str] = []
        apps: list[str] = []
        for account in sorted(accounts):
            kind, colon, name = account.strip().partition(":")
            if colon and account.strip().startswith(OTHER_PRINCIPALS) and name.strip():
                if kind == "client" and self.registry.client(name) is None:
                    apps.append(account)
                continue
            is_staff = not colon or kind.strip().casefold() == "staff"
            if not (is_staff and self.registry.staff(name if colon else kind)):
                staff.append(account)
        return staff, apps

    @staticmethod
    def _spelt(
        named: Collection[str], already: Collection[str], look_up: Callable[[str], str | None]
    ) -> tuple[tuple[str, ...], list[str]]:
        """(``named`` as the registry spells each, those it does not know); names
        ``already`` held are kept as they are."""
        spelt: set[str] = set()
        unknown: list[str] = []
        for name in sorted(named):
            found = name if name in already else look_up(name)
            if found is None:
                unknown.append(name)
            else:
                spelt.add(found)
        return tuple(sorted(spelt)), unknown


def _listed(names: list[str]) -> str:
    """Names as typed, quoted and escaped (``repr``), the first five, each cut at 60."""
    return ", ".join(repr(name[:60]) for name in names[:5])
