"""The details a notice takes from a record a compromised principal wrote: its history
replayed element by element without the versions they wrote (pure)."""

from __future__ import annotations

import pytest

from carevault.incidents.rewrites import replay
from carevault.notify.reader import LISTS, SINGLES

EMAIL = "telecom"


def _with(email: str, **more: object) -> dict[str, object]:
    return {"resourceType": "Patient", EMAIL: [{"system": "email", "value": email}], **more}


@pytest.mark.parametrize(
    ("history", "untrusted", "email", "city"),
    [
        # The attacker's edit alone: the version before it.
        ([_with("own@x.hk"), _with("evil@x.hk")], {2}, "own@x.hk", None),
        # A desk corrects the email after it: the correction.
        ([_with("own@x.hk"), _with("evil@x.hk"), _with("new@x.hk")], {2}, "new@x.hk", None),
        # A desk changes only the address, saving the attacker's email with it: the
        # address is taken, the email is not.
        ([_with("own@x.hk"), _with("evil@x.hk"),
          _with("evil@x.hk", address=[{"city": "Jordan"}])], {2}, "own@x.hk", "Jordan"),
        # Edit, correction, edit again: the correction.
        ([_with("own@x.hk"), _with("evil@x.hk"), _with("new@x.hk"), _with("evil2@x.hk")],
         {2, 4}, "new@x.hk", None),
        # Deleted, then written again with the attacker's email: the first version.
        ([_with("own@x.hk"), None, _with("evil@x.hk")], {2, 3}, "own@x.hk", None),
        # Made by the attacker from the start: nothing to take.
        ([_with("evil@x.hk")], {1}, None, None),
    ],
)  # fmt: skip
def test_the_details_of_a_record_are_replayed_without_what_the_attacker_wrote(
    history: list[dict[str, object] | None],
    untrusted: set[int],
    email: str | None,
    city: str | None,
) -> None:
    replayed = replay(list(enumerate(history, start=1)), frozenset(untrusted), LISTS, SINGLES)

    emails = [item["value"] for item in replayed.get(EMAIL, [])]
    assert emails[:1] == ([email] if email else [])  # the one a notice takes
    assert not [address for address in emails if "evil" in address]
    assert [item["city"] for item in replayed.get("address", [])] == ([city] if city else [])


def test_a_desk_changing_the_phone_does_not_bring_back_the_attackers_email() -> None:
    own = {"system": "email", "value": "own@x.hk"}
    evil = {"system": "email", "value": "evil@x.hk"}
    phone = {"system": "phone", "value": "+85291234567"}
    history: list[dict[str, object] | None] = [
        {"resourceType": "Patient", EMAIL: [own]},
        {"resourceType": "Patient", EMAIL: [evil]},
        {"resourceType": "Patient", EMAIL: [evil, phone]},
    ]

    replayed = replay(list(enumerate(history, start=1)), frozenset({2}), LISTS, SINGLES)

    assert replayed[EMAIL] == [phone, own]


def test_the_deceased_choice_is_replayed_as_one() -> None:
    """Set by mistake (v1), moved by the attacker to a date (v2), cleared by a clinician
    (v3): not deceased, so the patient is told."""
    history: list[dict[str, object] | None] = [
        {"resourceType": "Patient", "deceasedBoolean": True},
        {"resourceType": "Patient", "deceasedDateTime": "2026-11-30"},
        {"resourceType": "Patient"},
    ]

    replayed = replay(list(enumerate(history, start=1)), frozenset({2}), LISTS, SINGLES)

    assert "deceasedBoolean" not in replayed and "deceasedDateTime" not in replayed


def test_a_guardians_details_the_attacker_set_are_not_taken() -> None:
    guardian = {"name": {"family": "Wong"}, "telecom": [{"system": "email", "value": "mum@x.hk"}]}
    theirs = {"name": {"family": "Wong"}, "telecom": [{"system": "email", "value": "evil@x.hk"}]}
    history: list[dict[str, object] | None] = [
        {"resourceType": "Patient", "contact": [guardian], "birthDate": "2015-03-02"},
        {"resourceType": "Patient", "contact": [theirs], "birthDate": "2015-03-02"},
    ]

    replayed = replay(list(enumerate(history, start=1)), frozenset({2}), LISTS, SINGLES)

    assert replayed["contact"] == [guardian] and replayed["birthDate"] == "2015-03-02"
