"""SMART on FHIR scopes (App Launch v2, with v1 ``read``/``write`` accepted).

``user/Patient.rs`` lets a user app read and search Patient; ``system/*.cruds``
lets a backend service do everything its role allows. A scope never adds to a
role's rights: the gate checks both.

``patient/`` scopes mean "the one patient in context": they are granted only with
``launch/patient`` (the user picks the patient when signing in), only for reading and
searching, and a session's ``Scopes`` carry that patient's pseudonym. Without it they
allow nothing: read as ``user/`` scopes they would reach every patient the user may
see, which is more than an app asking for them asked for.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from carevault.fhir.registry import RESOURCE_TYPES


class Interaction(StrEnum):
    CREATE = "c"
    READ = "r"
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(
    r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]+)\."
    r"(?P<perms>\*|read|write|c?r?u?d?s?)$"
)
#: Scopes that are about the session, not data.
SESSION_SCOPES = frozenset(
    {"openid", "fhirUser", "profile", "offline_access", "online_access", "launch", "launch/patient"}
)


class InvalidScope(ValueError):
    pass


@dataclass(frozen=True)
class ScopeGrant:
    context: str
    resource_type: str
    interactions: frozenset[Interaction]


#: What a ``patient/`` grant may ever do: read what is in the chart, never change it.
PATIENT_INTERACTIONS = frozenset({Interaction.READ, Interaction.SEARCH})


@dataclass(frozen=True)
class Scopes:
    grants: tuple[ScopeGrant, ...]
    session: frozenset[str]
    #: The pseudonym of the patient in context (a patient launch); ``patient/`` grants
    #: allow nothing without one.
    patient: str | None = None

    def _grants(self, resource_type: str, interaction: Interaction) -> list[ScopeGrant]:
        return [
            grant
            for grant in self.grants
            if interaction in grant.interactions and grant.resource_type in ("*", resource_type)
        ]

    def allows(self, resource_type: str, interaction: Interaction) -> bool:
        return any(
            grant.context != "patient"
            or (self.patient is not None and interaction in PATIENT_INTERACTIONS)
            for grant in self._grants(resource_type, interaction)
        )

    def confined_to(self, resource_type: str, interaction: Interaction) -> str | None:
        """The patient's pseudonym if only ``patient/`` grants allow ``interaction`` on
        ``resource_type``: the caller then reaches that patient's records and no one
        else's. None if a ``user/`` or ``system/`` grant allows it (or nothing does)."""
        grants = self._grants(resource_type, interaction)
        if any(grant.context != "patient" for grant in grants):
            return None
        return self.patient if grants else None

    def text(self) -> str:
        parts = sorted(self.session)
        for grant in self.grants:
            perms = "".join(i.value for i in Interaction if i in grant.interactions)
            parts.append(f"{grant.context}/{grant.resource_type}.{perms}")
        return " ".join(parts)

    @property
    def wants_refresh(self) -> bool:
        return bool(self.session & {"offline_access", "online_access"})


def parse(text: str, *, allowed_contexts: frozenset[str]) -> Scopes:
    """Parse a space-separated scope string; unknown scopes are refused, not ignored.

    Every request's token carries its scope string: parsed once per distinct string
    (``Scopes`` is immutable; a refusal is not remembered, it is raised again)."""
    return _parse(text, allowed_contexts)


@functools.lru_cache(maxsize=1024)
def _parse(text: str, allowed_contexts: frozenset[str]) -> Scopes:
    grants: list[ScopeGrant] = []
    session: set[str] = set()
    for item in text.split():
        if item in SESSION_SCOPES:
            session.add(item)
            continue
        if "?" in item:
            # A granular scope (``patient/Observation.rs?category=laboratory``) asks for
            # less than its type; reading it as the whole type would grant more.
            raise InvalidScope(f"scope '{item[:60]}': granular scopes (with '?') are not supported")
        match = _SCOPE.match(item)
        if not match:
            raise InvalidScope(f"scope '{item[:60]}' is not a SMART scope this server knows")
        context, resource_type, perms = match.group("context", "type", "perms")
        if context not in allowed_contexts:
            raise InvalidScope(f"'{context}/' scopes are not available to this client")
        if resource_type != "*" and resource_type not in RESOURCE_TYPES:
            raise InvalidScope(f"no resource type '{resource_type}'")
        letters = _V1.get(perms, perms)
        if not letters:
            raise InvalidScope(f"scope '{item[:60]}' grants nothing")
        grants.append(
            ScopeGrant(context, resource_type, frozenset(Interaction(ch) for ch in letters))
        )
    return Scopes(tuple(grants), frozenset(session))


def narrow(requested: Scopes, permitted: Scopes) -> Scopes:
    """The requested grants cut down to what the client is registered for: exactly the
    interactions both allow, context by context (a client registered for ``patient/``
    scopes gets no ``user/`` ones). ``user/*.rs`` asked of an app registered for
    ``user/Patient.rs`` gives ``user/Patient.rs``. ``patient/`` grants keep only reading
    and searching (see the module's note)."""
    merged: dict[tuple[str, str], frozenset[Interaction]] = {}
    for grant in requested.grants:
        for held in permitted.grants:
            if held.context != grant.context:
                continue
            if grant.resource_type == "*":
                resource_type = held.resource_type
            elif held.resource_type in ("*", grant.resource_type):
                resource_type = grant.resource_type
            else:
                continue
            allowed = grant.interactions & held.interactions
            if grant.context == "patient":
                allowed &= PATIENT_INTERACTIONS
            if allowed:
                key = (grant.context, resource_type)
                merged[key] = merged.get(key, frozenset()) | allowed
    grants = tuple(
        ScopeGrant(context, resource_type, interactions)
        for (context, resource_type), interactions in merged.items()
    )
    session = permitted.session | _IDENTITY_SCOPES
    if any(held.context == "patient" for held in permitted.grants):
        # Registered for patient/ scopes: registered for the launch that gives them a patient.
        session |= {"launch/patient"}
    return Scopes(grants, requested.session & session)


def within(requested: Scopes, granted: Scopes) -> bool:
    """Whether ``requested`` asks for nothing ``granted`` does not give: each of its session
    scopes granted, each grant's interactions allowed by the grants of its context on its
    type or on ``*``. What a refresh may narrow an access token to (RFC 6749 section 6:
    "MUST NOT include any scope not originally granted")."""
    if not requested.session <= granted.session:
        return False
    for grant in requested.grants:
        held: frozenset[Interaction] = frozenset().union(
            *(
                given.interactions
                for given in granted.grants
                if given.context == grant.context
                and given.resource_type in ("*", grant.resource_type)
            )
        )
        if not grant.interactions <= held:
            return False
    return True


def without_patient_grants(scopes: Scopes) -> Scopes:
    """``scopes`` without its ``patient/`` grants and ``launch/patient``: for a grant that
    cannot put a patient in context (no picker on the way)."""
    return Scopes(
        tuple(grant for grant in scopes.grants if grant.context != "patient"),
        scopes.session - {"launch/patient"},
    )


def wants_patient_launch(scopes: Scopes) -> bool:
    """Whether signing in must end with the user choosing the patient in context."""
    return "launch/patient" in scopes.session


_IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})


#: Every interaction: what ``user/*.cruds`` (``user/*.*``, ``user/*.read user/*.write``) grants.
ALL_INTERACTIONS = frozenset(Interaction)


def whole_account(scopes: Scopes | None) -> bool:
    """Whether a staff member's token carries the account's whole reach: a ``user/``
    grant of every interaction on every type (``user/*.cruds``). The officer's admin
    APIs and session management need it: a token an app was granted for less (say
    ``user/Patient.r``) reaches only what it names, never the account's administration,
    whose powers no resource scope describes."""
    if scopes is None:
        return False
    held: set[Interaction] = set()
    for grant in scopes.grants:
        if grant.context == "user" and grant.resource_type == "*":
            held |= grant.interactions
    return held >= ALL_INTERACTIONS


def without_unknown_types(text: str) -> tuple[str, list[str]]:
    """``text`` without its resource scopes of a type this server does not hold
    (``system/CommunicationRequest.write``), and those scopes. Such a scope grants
    nothing here, so leaving it out of a request grants no more than refusing the
    request would. Anything else is kept for ``parse`` to judge: a granular scope or a
    malformed one is still refused, never read as something wider."""
    kept: list[str] = []
    unknown: list[str] = []
    for item in text.split():
        match = _SCOPE.match(item)
        resource_type = match.group("type") if match else "*"
        if resource_type != "*" and resource_type not in RESOURCE_TYPES:
            unknown.append(item)
        else:
            kept.append(item)
    return " ".join(kept), unknown


#: The SMART v1 word for each set of interactions it stands for.
_V1_WORDS = {letters: word for word, letters in _V1.items()}


@dataclass(frozen=True)
class _Asked:
    """One resource scope as the client wrote it."""

    context: str
    resource_type: str
    #: What it was spelled with after the dot: a v1 word or v2 letters.
    perms: str
    interactions: frozenset[Interaction]


def as_asked(granted: str, asked: str | None) -> str:
    """The granted scope string (``Scopes.text``, SMART v2, one grant per context and
    type) answered scope by scope as the client asked: each resource scope it asked for,
    with what of it was granted, in its own spelling (SMART App Launch 2.0: servers
    "SHOULD return v1 scopes when v1 scopes are requested and granted"). Asked for
    ``system/Patient.r system/Patient.s`` and granted both, a client is answered those
    two, not the ``system/Patient.rs`` the grant merged them into, and finds each scope
    it asked for (integrator rounds 64, v1 ``read`` and ``write``, and 65, v2 letters
    and a v1 word beside them). A scope granted in part is answered in v2 letters of
    what was granted (a v1 word where exactly one names it); ``system/*.read`` granted
    for the client's registered types names those types. Only the words change, never
    what is granted: the token and the ledger keep the v2 text, and the answer is the
    granted text itself unless it grants exactly the same interactions on the same
    types."""
    if not asked:
        return granted
    grants: list[tuple[str, str, frozenset[Interaction]]] = []
    parts: list[str] = []
    for item in granted.split():
        match = _SCOPE.match(item)
        if match is None:
            parts.append(item)  # session scopes, as granted
            continue
        context, resource_type, perms = match.group("context", "type", "perms")
        letters = _V1.get(perms, perms)
        grants.append((context, resource_type, frozenset(Interaction(ch) for ch in letters)))
    wanted = _asked_scopes(asked)
    for context, resource_type, interactions in grants:
        for scope in wanted:
            if scope.context != context:
                continue
            spelled = _answered(scope, resource_type, interactions, grants)
            if spelled is not None and spelled not in parts:
                parts.append(spelled)
    answer = " ".join(parts)
    return answer if _meaning(answer) == _meaning(granted) else granted


def _asked_scopes(asked: str) -> list[_Asked]:
    found: list[_Asked] = []
    for item in asked.split():
        match = _SCOPE.match(item)
        if match is not None:
            context, resource_type, perms = match.group("context", "type", "perms")
            letters = _V1.get(perms, perms)
            interactions = frozenset(Interaction(ch) for ch in letters)
            found.append(_Asked(context, resource_type, perms, interactions))
    return found


def _answered(
    scope: _Asked,
    resource_type: str,
    interactions: frozenset[Interaction],
    grants: list[tuple[str, str, frozenset[Interaction]]],
) -> str | None:
    """What the grant of ``interactions`` on ``resource_type`` gives of the asked
    ``scope``, spelled as it was asked; None if it gives nothing of it."""
    if scope.resource_type == "*":
        given = scope.interactions & interactions
        if resource_type != "*":
            # Asked for every type, granted the client's registered types: each named,
            # unless the grant on every type already says it all.
            every = next(
                (
                    held
                    for context, kind, held in grants
                    if context == scope.context and kind == "*"
                ),
                frozenset(),
            )
            if given <= scope.interactions & every:
                return None
    elif scope.resource_type == resource_type:
        given = scope.interactions & interactions
    else:
        return None
    if not given:
        return None
    if given == scope.interactions:
        perms = scope.perms
    else:
        letters = "".join(i.value for i in Interaction if i in given)
        word = _V1_WORDS.get(letters)
        perms = word if word is not None and scope.perms in _V1 else letters
    return f"{scope.context}/{resource_type}.{perms}"


def _meaning(text: str) -> set[tuple[str, str, Interaction]]:
    """Each (context, type, interaction) a scope string grants."""
    meant: set[tuple[str, str, Interaction]] = set()
    for item in text.split():
        match = _SCOPE.match(item)
        if match is not None:
            context, resource_type, perms = match.group("context", "type", "perms")
            for letter in _V1.get(perms, perms):
                meant.add((context, resource_type, Interaction(letter)))
    return meant
