"""An incident's own containment: what acts on what it holds compromised, or on
everything while its window was open; never another incident's account or address."""

from __future__ import annotations

from carevault.containment.state import Containment, Mode
from carevault.incidents.containment import own_actions
from carevault.incidents.model import Compromised, Incident, Status

HOUR = 3_600_000_000
SINCE = 1_767_225_600_000_000


def incident(until_us: int | None = None) -> Incident:
    return Incident(
        1, "Phished", Status.OPEN, SINCE + 5 * HOUR, "staff:officer1", SINCE, until_us,
        Compromised(accounts=("thief",), clients=("app-1",), addresses=("203.0.113.0/24",),
                    clinics=("kln",)),
    )  # fmt: skip


def action(number: int, mode: Mode, target: str | None, started: int,
           released: int | None = None) -> Containment:  # fmt: skip
    return Containment(number, mode, target, "r", started, "staff:officer1", released)


def test_actions_on_what_the_incident_holds_compromised_are_its_own() -> None:
    mine = [
        action(1, Mode.ACCOUNT_SUSPENDED, "thief", SINCE + HOUR),
        action(2, Mode.CLIENT_REVOKED, "app-1", SINCE + HOUR),
        action(3, Mode.BLOCK_ADDRESS, "203.0.113.9/32", SINCE + HOUR),
        action(4, Mode.CLINIC_LOCK, "kln", SINCE + HOUR),
    ]
    others = [
        action(5, Mode.ACCOUNT_SUSPENDED, "someone-else", SINCE + HOUR),
        action(6, Mode.CLIENT_REVOKED, "app-2", SINCE + HOUR),
        action(7, Mode.BLOCK_ADDRESS, "198.51.100.0/24", SINCE + HOUR),
        action(8, Mode.CLINIC_LOCK, "hki", SINCE + HOUR),
    ]
    assert [a.containment_id for a in own_actions(incident(), others + mine)] == [1, 2, 3, 4]


def test_an_action_released_before_the_window_opened_is_not_its_own() -> None:
    old = action(1, Mode.ACCOUNT_SUSPENDED, "thief", SINCE - 10 * HOUR, SINCE - 9 * HOUR)
    still_on = action(2, Mode.ACCOUNT_SUSPENDED, "thief", SINCE - 10 * HOUR)
    assert [a.containment_id for a in own_actions(incident(), [old, still_on])] == [2]


def test_a_switch_on_everything_counts_while_the_window_is_open() -> None:
    before = action(1, Mode.PHI_OFFLINE, None, SINCE - HOUR, SINCE - HOUR // 2)
    during = action(2, Mode.PHI_OFFLINE, None, SINCE + HOUR)
    after_the_end = action(3, Mode.KEY_LOCKDOWN, None, SINCE + 3 * HOUR)
    found = own_actions(incident(until_us=SINCE + 2 * HOUR), [before, during, after_the_end])
    assert [a.containment_id for a in found] == [2]
    assert [a.containment_id for a in own_actions(incident(), [after_the_end])] == [3]


def test_accounts_and_clients_match_however_the_incident_spells_them() -> None:
    """An incident naming ``Chan.TM`` (the ledger's ``staff:chan.tm``) or a client typed
    in capitals holds the suspension of ``chan.tm`` and the revocation of its app."""
    spelt = Incident(
        1, "Phished", Status.OPEN, SINCE + 5 * HOUR, "staff:officer1", SINCE, None,
        Compromised(accounts=("Chan.TM",), clients=("Lab-Interface",)),
    )  # fmt: skip
    actions = [
        action(1, Mode.ACCOUNT_SUSPENDED, "chan.tm", SINCE + HOUR),
        action(2, Mode.CLIENT_REVOKED, "lab-interface", SINCE + HOUR),
        action(3, Mode.ACCOUNT_SUSPENDED, "chan.tn", SINCE + HOUR),
    ]
    assert [a.containment_id for a in own_actions(spelt, actions)] == [1, 2]
