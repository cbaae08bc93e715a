"""What an incident names is matched against the ledger as the ledger names it: a
username however the officer spells it, an address range whatever form of an address
the server saw (adversary round 44)."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.incidents import Actor, declare_case, scope_document
from tests.support.ledgers import record_reads
from tests.support.staff import add_account

pytestmark = pytest.mark.postgres

OFFICER = Actor("staff:officer1", "10.1.2.3")


def _read(services: Services, n: int, principal: str, address: str) -> None:
    record_reads(services, principal, [n], source_address=address)


def _confirmed(services: Services, case: dict[str, object]) -> set[str]:
    window = {"since": "2026-01-01", "until": "2026-01-02T00:00:00+00:00"}
    incident = declare_case(services, OFFICER, {"title": "Phished", **case, **window})
    document = scope_document(services, incident.incident_id)
    return {line["patient"] for line in document["tiers"]["confirmed"]}


@pytest.mark.parametrize("spelt", ["Chan.TM", "staff:CHAN.tm", " chan.tm "])
def test_an_account_is_matched_however_its_username_is_spelt(
    services: Services, spelt: str
) -> None:
    """Usernames are kept casefolded and the ledger names ``staff:chan.tm``: an officer
    typing the name as the directory shows it (``Chan.TM``) got an empty confirmed tier,
    and so no notices, while the potentially tier (which looks the account up) was full."""
    add_account(services, "chan.tm")
    _read(services, 0, "staff:chan.tm", "198.51.100.7")
    assert _confirmed(services, {"accounts": [spelt]}) == {"ps0"}


def test_an_ipv4_range_matches_the_same_address_seen_over_ipv6(services: Services) -> None:
    """A server listening on ``::`` with several workers (one socket, dual-stack) sees an
    IPv4 client as ``::ffff:203.0.113.9``: a ``203.0.113.0/24`` incident matched none of
    its reads."""
    _read(services, 0, "staff:somebody", "::ffff:203.0.113.9")
    _read(services, 1, "staff:somebody", "203.0.113.10")
    _read(services, 2, "staff:somebody", "::ffff:198.51.100.1")
    assert _confirmed(services, {"addresses": ["203.0.113.0/24"]}) == {"ps0", "ps1"}
