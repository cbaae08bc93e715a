"""Incidents as values: what is compromised, the window, amendments, and scope runs compared."""

from __future__ import annotations

from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.incidents.model import (
    Amendment,
    Compromised,
    Incident,
    IncidentError,
    Status,
    instant_in,
    parse_compromised,
    parse_window,
)
from carevault.incidents.service import compare_runs

HONG_KONG = ZoneInfo("Asia/Hong_Kong")


def test_addresses_are_normalised_to_networks_and_duplicates_fold() -> None:
    found = parse_compromised(
        {"addresses": ["203.0.113.9", "203.0.113.0/24", "203.0.113.9"], "accounts": ["b", "a"]}
    )
    assert found.addresses == ("203.0.113.0/24", "203.0.113.9/32")
    assert found.accounts == ("a", "b")


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ({"addresses": ["nowhere"]}, "addresses"),
        ({"accounts": "alice"}, "accounts"),
        ({"accounts": [""]}, "accounts"),
        ({"accounts": ["a\nb"]}, "accounts"),
        ({"clients": ["x" * 201]}, "clients"),
        ({"database": "yes"}, "database"),
    ],
)
def test_a_bad_field_is_named(case: dict[str, object], field: str) -> None:
    with pytest.raises(IncidentError, match=field):
        parse_compromised(case)


def test_the_window_must_run_forwards_and_be_dates() -> None:
    assert parse_window("2026-01-01", None, UTC) == (1_767_225_600_000_000, None)
    since, until = parse_window("2026-01-01T08:00:00+08:00", "2026-01-02", UTC)
    assert since == 1_767_225_600_000_000 and until == since + 86_400_000_000
    for since_text, until_text in (("2026-01-02", "2026-01-01"), ("soon", None), (None, None)):
        with pytest.raises(IncidentError):
            parse_window(since_text, until_text, UTC)


def test_a_time_without_a_zone_is_the_groups_time() -> None:
    # 2026-11-30T10:00 in Hong Kong is 02:00 UTC; a given zone is kept as given.
    ten_in_hong_kong = 1_795_996_800_000_000 + 2 * 3_600_000_000
    assert instant_in("2026-11-30T10:00", HONG_KONG, "since") == ten_in_hong_kong
    assert instant_in("2026-11-30T10:00+08:00", UTC, "since") == ten_in_hong_kong
    assert instant_in("2026-11-30T02:00Z", HONG_KONG, "since") == ten_in_hong_kong
    assert instant_in("2026-11-30", HONG_KONG, "since") == ten_in_hong_kong - 10 * 3_600_000_000
    assert parse_window("2026-11-30T10:00", None, HONG_KONG) == (ten_in_hong_kong, None)
    for bad in ("soon", "1969-12-31", "2026-13-01T00:00"):
        with pytest.raises(IncidentError, match="since"):
            instant_in(bad, HONG_KONG, "since")


def test_an_amendment_widens_what_is_compromised_and_never_drops() -> None:
    before = Incident(1, "t", Status.OPEN, 0, "cli:x", 10, None,
                      Compromised(accounts=("a",), database=True))  # fmt: skip
    after = Amendment(status=Status.CONTAINED, until_us=20,
                      adds=Compromised(accounts=("b",), host=True)).apply(before)  # fmt: skip
    assert after.compromised.accounts == ("a", "b")
    assert after.compromised.database and after.compromised.host
    assert (after.status, after.since_us, after.until_us) == (Status.CONTAINED, 10, 20)
    with pytest.raises(IncidentError):
        Amendment(until_us=5).apply(before)


@pytest.mark.parametrize(
    ("amendment", "narrows"),
    [
        (Amendment(since_us=11), True),  # a later start
        (Amendment(until_us=30), True),  # a first end
        (Amendment(status=Status.CLOSED), True),
        (Amendment(since_us=9), False),  # an earlier start widens
        (Amendment(since_us=10), False),  # the same start
        (Amendment(status=Status.CONTAINED, title="t2", note="n"), False),
        (Amendment(adds=Compromised(accounts=("b",))), False),
    ],
)
def test_an_amendment_narrows_when_it_takes_patients_out_of_the_window(
    amendment: Amendment, narrows: bool
) -> None:
    open_ended = Incident(1, "t", Status.OPEN, 0, "cli:x", 10, None, Compromised(accounts=("a",)))
    assert amendment.narrows(open_ended) is narrows
    ended = Incident(1, "t", Status.OPEN, 0, "cli:x", 10, 40, Compromised(accounts=("a",)))
    assert Amendment(until_us=39).narrows(ended) and not Amendment(until_us=41).narrows(ended)
    closed = Incident(1, "t", Status.CLOSED, 0, "cli:x", 10, 40, Compromised(accounts=("a",)))
    assert not Amendment(status=Status.CLOSED, note="again").narrows(closed)


def test_compromised_round_trips_through_its_stored_form() -> None:
    value = Compromised(("a",), ("c",), ("s",), ("10.0.0.0/8",), ("tm",), True, False, True)
    assert Compromised.loads(value.dumps()) == value
    assert Compromised().is_empty() and not value.is_empty()


Runs = st.dictionaries(
    st.sampled_from(["confirmed", "decrypted"]),
    st.dictionaries(
        st.text("abc", min_size=1, max_size=3),
        st.lists(st.sampled_from(["identity", "clinical", "visit"]), unique=True),
        max_size=6,
    ),
)


@given(Runs, Runs)
def test_compared_runs_say_exactly_what_was_added_removed_and_changed(
    before: dict[str, dict[str, list[str]]], after: dict[str, dict[str, list[str]]]
) -> None:
    after = {tier: after.get(tier, {}) for tier in ("confirmed", "decrypted")}
    changes = compare_runs(before, after)
    assert changes["first_run"] is False
    for tier, now in after.items():
        was = before.get(tier, {})
        change = changes.get(tier, {"added": [], "removed": [], "categories_changed": {}})
        assert set(change["added"]) == set(now) - set(was)
        assert set(change["removed"]) == set(was) - set(now)
        assert set(change["categories_changed"]) == {
            p for p in set(now) & set(was) if set(now[p]) != set(was[p])
        }
    assert compare_runs(None, after) == {"first_run": True}


def test_ranges_are_taken_as_written_however_spelt() -> None:
    """Upper-case or zero-padded IPv6 and a netmask are the same range, not a refusal."""
    from carevault.incidents.model import parse_compromised

    found = parse_compromised({"addresses": ["2001:0DB8::/32", "203.0.113.0/255.255.255.0",
                                             "203.0.113.9"]})  # fmt: skip
    assert found.addresses == ("2001:db8::/32", "203.0.113.0/24", "203.0.113.9/32")
