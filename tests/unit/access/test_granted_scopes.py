"""What a request may do: the session's stored scopes, never the token's claim alone."""

from __future__ import annotations

from carevault.access.control import granted_scopes
from carevault.access.scopes import Interaction

USER = frozenset({"user", "patient"})
SYSTEM = frozenset({"system"})
DEMO_APP = "openid fhirUser offline_access user/*.cruds patient/*.rs"


def test_a_token_claiming_more_than_its_session_gets_only_the_session() -> None:
    scopes = granted_scopes("user/*.cruds", "user/Patient.rs", DEMO_APP, USER)

    assert scopes.allows("Patient", Interaction.READ)
    assert not scopes.allows("Patient", Interaction.CREATE)
    assert not scopes.allows("Observation", Interaction.READ)


def test_a_token_claiming_less_than_its_session_gets_the_less() -> None:
    scopes = granted_scopes("user/Patient.r", "user/*.cruds", DEMO_APP, USER)

    assert scopes.allows("Patient", Interaction.READ)
    assert not scopes.allows("Patient", Interaction.SEARCH)


def test_a_registration_narrowed_after_sign_in_narrows_the_session() -> None:
    scopes = granted_scopes("system/*.cruds", "system/*.cruds", "system/Observation.cru", SYSTEM)

    assert scopes.allows("Observation", Interaction.UPDATE)
    assert not scopes.allows("Observation", Interaction.DELETE)
    assert not scopes.allows("Patient", Interaction.READ)


def test_a_registration_for_another_context_gives_nothing() -> None:
    scopes = granted_scopes("user/*.cruds", "user/*.cruds", "system/*.cruds", USER)

    assert scopes.grants == ()


def test_the_usual_case_keeps_what_was_granted() -> None:
    session = "fhirUser offline_access openid user/*.cruds"
    scopes = granted_scopes(session, session, DEMO_APP, USER)

    assert scopes.text() == session
