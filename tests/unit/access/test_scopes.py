"""SMART scopes: parsing v2 and v1 forms, what a set of scopes allows, and narrowing a
request down to a client's registration."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carevault.access.scopes import (
    PATIENT_INTERACTIONS,
    Interaction,
    InvalidScope,
    ScopeGrant,
    Scopes,
    as_asked,
    narrow,
    parse,
    whole_account,
    without_patient_grants,
)

USER_APP = frozenset({"user", "patient"})
SERVICE = frozenset({"system"})
C, R, U, D, S = (
    Interaction.CREATE,
    Interaction.READ,
    Interaction.UPDATE,
    Interaction.DELETE,
    Interaction.SEARCH,
)


def _grant(context: str, resource_type: str, *interactions: Interaction) -> ScopeGrant:
    return ScopeGrant(context, resource_type, frozenset(interactions))


@pytest.mark.parametrize(
    ("text", "grant"),
    [
        ("user/Patient.rs", _grant("user", "Patient", R, S)),
        ("user/Patient.r", _grant("user", "Patient", R)),
        ("patient/Observation.cruds", _grant("patient", "Observation", C, R, U, D, S)),
        ("user/*.cud", _grant("user", "*", C, U, D)),
        # SMART v1 forms
        ("user/Patient.read", _grant("user", "Patient", R, S)),
        ("user/Encounter.write", _grant("user", "Encounter", C, U, D)),
        ("patient/*.*", _grant("patient", "*", C, R, U, D, S)),
    ],
)
def test_a_smart_scope_parses_to_its_grant(text: str, grant: ScopeGrant) -> None:
    assert parse(text, allowed_contexts=USER_APP) == Scopes((grant,), frozenset())


def test_session_scopes_are_kept_apart_from_data_grants() -> None:
    scopes = parse("openid fhirUser offline_access user/*.rs", allowed_contexts=USER_APP)

    assert scopes.session == {"openid", "fhirUser", "offline_access"}
    assert scopes.grants == (_grant("user", "*", R, S),)
    assert scopes.wants_refresh
    assert parse("online_access", allowed_contexts=USER_APP).wants_refresh
    assert not parse("openid fhirUser user/*.rs", allowed_contexts=USER_APP).wants_refresh


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin", "is not a SMART scope this server knows"),
        ("user/Patient.sr", "is not a SMART scope"),  # v2 letters come in cruds order
        ("user/Patient.x", "is not a SMART scope"),
        ("user/patient.rs", "is not a SMART scope"),
        ("group/Patient.rs", "is not a SMART scope"),
        ("user/Patient.", "grants nothing"),
        ("user/Unicorn.rs", "no resource type 'Unicorn'"),
        ("system/Patient.rs", "'system/' scopes are not available"),
        ("user/Observation.rs?category=laboratory", "granular scopes"),
    ],
)
def test_an_unknown_or_unavailable_scope_is_refused_not_ignored(text: str, message: str) -> None:
    with pytest.raises(InvalidScope, match=message):
        parse(f"openid {text}", allowed_contexts=USER_APP)


def test_a_service_may_have_only_system_scopes() -> None:
    assert parse("system/*.rs", allowed_contexts=SERVICE).grants == (_grant("system", "*", R, S),)
    with pytest.raises(InvalidScope, match="'user/' scopes are not available"):
        parse("user/*.rs", allowed_contexts=SERVICE)


def test_allows_checks_the_type_or_the_wildcard() -> None:
    scopes = parse("user/Patient.rs user/*.c", allowed_contexts=USER_APP)

    assert scopes.allows("Patient", R) and scopes.allows("Patient", S)
    assert scopes.allows("Observation", C)
    assert not scopes.allows("Observation", R)
    assert not scopes.allows("Patient", D)


def test_text_writes_the_scopes_back_in_v2_form() -> None:
    scopes = parse("offline_access openid user/Patient.read patient/*.*", allowed_contexts=USER_APP)

    assert scopes.text() == "offline_access openid user/Patient.rs patient/*.cruds"
    assert parse(scopes.text(), allowed_contexts=USER_APP) == scopes


REGISTERED = parse(
    "openid fhirUser offline_access user/Patient.rs user/*.s", allowed_contexts=USER_APP
)


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("user/Patient.cruds", "user/Patient.rs"),
        ("user/Observation.rs", "user/Observation.s"),
        ("user/*.r", "user/Patient.r"),
        ("user/*.rs", "user/Patient.rs user/*.s"),
        ("user/Observation.cud", ""),
        ("patient/Patient.rs", ""),  # registered for user/ only: no patient/ grants
        (
            "openid profile launch offline_access user/Patient.r",
            "offline_access openid profile user/Patient.r",
        ),
    ],
)
def test_narrow_cuts_a_request_down_to_the_registration(requested: str, granted: str) -> None:
    narrowed = narrow(parse(requested, allowed_contexts=USER_APP), REGISTERED)

    assert narrowed.text() == granted


def test_patient_scopes_allow_nothing_without_a_patient_in_context() -> None:
    registered = parse("user/*.cruds patient/*.cruds", allowed_contexts=USER_APP)
    requested = parse(
        "openid launch/patient patient/*.cruds user/Patient.r", allowed_contexts=USER_APP
    )

    narrowed = narrow(requested, registered)

    # Reading and searching only, and launch/patient comes with the patient/ registration.
    assert narrowed.text() == "launch/patient openid patient/*.rs user/Patient.r"
    assert not narrowed.allows("Observation", R) and not narrowed.allows("Observation", S)
    assert without_patient_grants(narrowed).text() == "openid user/Patient.r"
    held = parse("patient/*.cruds", allowed_contexts=USER_APP)  # e.g. minted before
    assert not held.allows("Patient", R) and not held.allows("Observation", S)


def test_patient_scopes_with_a_patient_reach_only_that_patient_and_never_write() -> None:
    scopes = replace(
        parse("patient/*.rs user/Practitioner.rs", allowed_contexts=USER_APP), patient="p-1"
    )

    assert scopes.allows("Observation", R) and scopes.allows("Observation", S)
    assert not scopes.allows("Observation", Interaction.CREATE)
    assert scopes.confined_to("Observation", R) == "p-1"
    # A user/ grant for the type is not confined (the user's own reach applies).
    assert scopes.confined_to("Practitioner", R) is None


def test_narrow_does_not_give_session_scopes_the_app_is_not_registered_for() -> None:
    registered = parse("user/*.rs", allowed_contexts=USER_APP)
    narrowed = narrow(
        parse("openid offline_access user/*.rs", allowed_contexts=USER_APP), registered
    )

    assert narrowed.session == {"openid"}
    assert not narrowed.wants_refresh


# --- properties ------------------------------------------------------------------------------

TYPES = ["*", "Patient", "Observation", "Encounter"]
PROBE_TYPES = ["Patient", "Observation", "Encounter", "Condition"]
scope_items = st.builds(
    lambda context, resource_type, letters: f"{context}/{resource_type}.{letters}",
    st.sampled_from(["user", "patient"]),
    st.sampled_from(TYPES),
    st.sets(st.sampled_from("cruds"), min_size=1).map(
        lambda chosen: "".join(letter for letter in "cruds" if letter in chosen)
    ),
)
scope_sets = st.lists(scope_items, max_size=5).map(
    lambda items: parse(" ".join(items), allowed_contexts=USER_APP)
)


def _allows_in(scopes: Scopes, context: str, resource_type: str, what: Interaction) -> bool:
    return any(
        grant.context == context
        and grant.resource_type in ("*", resource_type)
        and what in grant.interactions
        for grant in scopes.grants
    )


@given(scope_sets, scope_sets)
def test_narrow_grants_exactly_what_both_the_request_and_registration_allow(
    requested: Scopes, registered: Scopes
) -> None:
    narrowed = narrow(requested, registered)

    for context in ("user", "patient"):
        for resource_type in PROBE_TYPES:
            for what in Interaction:
                both = _allows_in(requested, context, resource_type, what) and _allows_in(
                    registered, context, resource_type, what
                )
                # patient/ grants: reading and searching only.
                expected = both and (context != "patient" or what in PATIENT_INTERACTIONS)
                assert _allows_in(narrowed, context, resource_type, what) is expected


@given(scope_sets, scope_sets)
def test_narrowing_twice_changes_nothing_more(requested: Scopes, registered: Scopes) -> None:
    once = narrow(requested, registered)
    twice = narrow(once, registered)

    assert {
        (context, resource_type, what)
        for context in ("user", "patient")
        for resource_type in PROBE_TYPES
        for what in Interaction
        if _allows_in(once, context, resource_type, what)
    } == {
        (context, resource_type, what)
        for context in ("user", "patient")
        for resource_type in PROBE_TYPES
        for what in Interaction
        if _allows_in(twice, context, resource_type, what)
    }


@given(scope_sets)
def test_the_text_of_scopes_parses_back_to_the_same_rights(scopes: Scopes) -> None:
    again = parse(scopes.text(), allowed_contexts=USER_APP)

    assert all(
        again.allows(resource_type, what) is scopes.allows(resource_type, what)
        for resource_type in PROBE_TYPES
        for what in Interaction
    )


@pytest.mark.parametrize(
    "text", ["user/*.cruds", "user/*.*", "user/*.read user/*.write", "openid user/*.cruds"]
)
def test_a_whole_account_token_grants_every_interaction_on_every_type(text: str) -> None:
    assert whole_account(parse(text, allowed_contexts=USER_APP))


@pytest.mark.parametrize(
    "text",
    [
        "user/Patient.rs",
        "user/*.rs",
        "user/*.crud launch/patient",
        "patient/*.rs launch/patient",
        "user/Patient.cruds user/Observation.cruds",
        "openid fhirUser",
    ],
)
def test_a_token_granted_less_is_not_the_whole_account(text: str) -> None:
    assert not whole_account(parse(text, allowed_contexts=USER_APP))


def test_a_service_token_and_no_token_are_not_a_staff_members_whole_account() -> None:
    assert not whole_account(parse("system/*.cruds", allowed_contexts=SERVICE))
    assert not whole_account(None)


@pytest.mark.parametrize(
    ("granted", "asked", "answered"),
    [
        ("system/*.rs", "system/*.read", "system/*.read"),
        ("system/*.rs", "system/*.rs", "system/*.rs"),
        ("system/*.rs", None, "system/*.rs"),
        # The client is registered for less than it asked: the words it used, the grant's types.
        (
            "system/Patient.rs system/Observation.rs",
            "system/*.read",
            "system/Patient.read system/Observation.read",
        ),
        # Narrowed to interactions no v1 word names: left in v2.
        ("system/*.cu", "system/*.write", "system/*.cu"),
        ("user/*.cruds", "user/*.*", "user/*.*"),
        # Each scope asked is answered (integrator round 65: one word for three asked).
        (
            "system/*.cruds",
            "system/*.read system/*.write system/*.*",
            "system/*.read system/*.write system/*.*",
        ),
        # Asked both ways for one grant: both, each in its own words.
        (
            "system/Patient.rs",
            "system/*.read system/Patient.rs",
            "system/Patient.read system/Patient.rs",
        ),
        (
            "launch/patient openid patient/*.rs",
            "openid launch/patient patient/*.read",
            "launch/patient openid patient/*.read",
        ),
    ],
)
def test_granted_scopes_are_answered_as_the_client_spelled_them(
    granted: str, asked: str | None, answered: str
) -> None:
    assert as_asked(granted, asked) == answered
    # The same interactions on the same types, whichever the spelling.
    assert _meaning(answered) == _meaning(granted)


def _meaning(text: str) -> set[tuple[str, str, Interaction]]:
    contexts = frozenset({"patient", "user", "system"})
    return {
        (grant.context, grant.resource_type, interaction)
        for grant in parse(text, allowed_contexts=contexts).grants
        for interaction in grant.interactions
    }


@pytest.mark.parametrize(
    ("granted", "asked", "answered"),
    [
        ("system/*.cruds", "system/*.read system/*.write", "system/*.read system/*.write"),
        (
            "system/Patient.cruds system/Observation.rs",
            "system/*.read system/Patient.write",
            "system/Patient.read system/Patient.write system/Observation.read",
        ),
    ],
)
def test_a_grant_asked_as_read_and_write_is_answered_in_those_two_words(
    granted: str, asked: str, answered: str
) -> None:
    """Integrator round 64: ``system/*.read system/*.write`` was answered ``system/*.*``,
    one v1 word for the two asked, so a client looking for each scope it asked in the
    answer found neither. The two words name the same interactions as the grant."""
    assert as_asked(granted, asked) == answered
    assert _meaning(answered) == _meaning(granted)


@pytest.mark.parametrize(
    ("granted", "asked", "answered"),
    [
        (
            "system/Patient.rs",
            "system/Patient.r system/Patient.s",
            "system/Patient.r system/Patient.s",
        ),
        ("system/*.rs", "system/*.rs system/*.read", "system/*.rs system/*.read"),
        ("system/*.rs", "system/*.read system/*.rs", "system/*.read system/*.rs"),
        (
            "system/*.cruds",
            "system/*.c system/*.r system/*.u system/*.d system/*.s",
            "system/*.c system/*.r system/*.u system/*.d system/*.s",
        ),
        # Asked for every type and for one: each answered, the type's once.
        (
            "system/*.rs system/Patient.c",
            "system/*.rs system/Patient.c",
            "system/*.rs system/Patient.c",
        ),
        # Granted in part: what was granted, in v2 letters (or the v1 word that names it).
        (
            "system/Patient.rs",
            "system/Patient.rds system/Patient.r",
            "system/Patient.rs system/Patient.r",
        ),
        (
            "patient/*.rs launch/patient",
            "launch/patient patient/*.*",
            "launch/patient patient/*.read",
        ),
        # Registered for fewer types than asked: each type named in each asked spelling.
        (
            "system/Patient.cruds system/Observation.rs",
            "system/*.r system/*.s system/Patient.write",
            "system/Patient.r system/Patient.s system/Patient.write "
            "system/Observation.r system/Observation.s",
        ),
    ],
)
def test_v2_scopes_asked_apart_are_answered_apart(granted: str, asked: str, answered: str) -> None:
    """Integrator round 65 (a Node client checking each scope it asked for): ``system/
    Patient.r system/Patient.s`` was answered ``system/Patient.rs``, and ``system/*.rs
    system/*.read`` as ``system/*.rs``, the v1 word dropped. Each scope asked is answered
    with what of it was granted, spelled as asked; together they grant exactly what the
    token holds."""
    assert as_asked(granted, asked) == answered
    assert _meaning(answered) == _meaning(granted)


def test_an_answer_that_would_not_say_what_was_granted_is_the_grant_itself() -> None:
    """Asked no scope that reaches a grant (a refresh asked for less, say), the granted
    text is answered rather than a spelling that would grant less or more."""
    assert as_asked("system/*.rs", "system/Patient.r") == "system/*.rs"
    assert as_asked("system/Patient.rs", "openid") == "system/Patient.rs"
