"""The vault's remembered date-bucket tokens are the blind index's own, and the memo
stays bounded."""

from __future__ import annotations

import pytest

from carevault.bootstrap import Services
from carevault.vault import store


def test_date_tokens_are_the_blind_tokens_of_the_buckets(services: Services) -> None:
    vault = services.vault
    terms = ["p:Y2031", "e:M2026-12", "s:D2026-12-02", "e:open", "p:Y2031"]
    expected = [vault.token("Observation", "date", term) for term in terms]
    assert vault.date_tokens("Observation", "date", terms) == expected
    assert vault.date_tokens("Observation", "date", terms) == expected  # remembered
    assert vault.date_tokens("Encounter", "date", terms[:1]) != expected[:1]
    assert len(expected[0]) == 16 and b"2031" not in expected[0]


def test_the_date_token_memo_starts_again_when_full(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "DATE_TOKEN_MEMO", 3)
    vault = services.vault
    terms = [f"p:Y{year}" for year in range(2030, 2040)]
    found = vault.date_tokens("Observation", "date", terms)
    assert found == [vault.token("Observation", "date", term) for term in terms]
    assert len(vault._date_tokens) <= 3
