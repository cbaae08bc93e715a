"""FHIR media types and their parameters, as FHIR R4 names them (http.html#mime-type,
#version-parameter, versioning.html#mt-version): pure, no I/O.

The server speaks FHIR R4 in JSON, in UTF-8, and nothing else:

- JSON is ``application/fhir+json``; ``application/json`` and ``json`` are read as it,
  and so is ``application/json+fhir``, the DSTU2 name R4 lets servers keep "to smooth
  the transition" (on both sides: a client that is sent it may send it).
- ``fhirVersion`` names the release a request speaks, on ``Accept``, ``Content-Type`` or
  both, for the whole interaction; R4 is ``4.0`` (``4.0.0`` and ``4.0.1`` are its
  releases). A client that accepts JSON only of another release is answered 406; a body
  said to be of another release is refused with 415, never read as R4.
- "UTF-8 encoding SHALL be used for FHIR instances": a body whose ``charset`` is another
  is refused with 415 rather than misread.

No message here repeats what the client sent: a header is the client's text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum

#: What ``Accept`` (or ``_format``) may name for a JSON answer.
JSON_ANSWERS = frozenset(
    {
        "application/fhir+json",
        "application/json",
        "application/json+fhir",
        "json",
        "*/*",
        "application/*",
    }
)
#: What a FHIR JSON body may be sent as.
JSON_BODIES = frozenset({"application/fhir+json", "application/json", "application/json+fhir"})

#: The patch formats a PATCH takes (docs/rest.md, "Patch formats"): JSON Patch (RFC 6902)
#: and JSON Merge Patch (RFC 7386); the CapabilityStatement's ``patchFormat`` lists them.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
#: The ``fhirVersion`` values of FHIR R4: its major.minor, and its two releases.
R4_VERSIONS = frozenset({"4.0", "4.0.0", "4.0.1"})

NOT_JSON = "this server answers in JSON only: accept application/fhir+json"
NOT_R4 = "this server speaks FHIR R4 only: ask for fhirVersion=4.0, or name no fhirVersion"
BODY_NOT_R4 = "this server reads FHIR R4 only: send fhirVersion=4.0, or name no fhirVersion"
NOT_UTF8 = "FHIR JSON is read in UTF-8 only: send charset=utf-8, or name no charset"


@dataclass(frozen=True)
class MediaType:
    """One media type (or range) of a header: its name and parameters, both as sent
    but for case (names are case-insensitive, RFC 9110 8.3.1) and quotes."""

    name: str
    parameters: Mapping[str, str]

    @property
    def refused(self) -> bool:
        """``q=0``: the client says it will not take this type (RFC 9110 12.4.2)."""
        return self.parameters.get("q") in ("0", "0.0", "0.00", "0.000")

    @property
    def of_r4(self) -> bool:
        """Whether the type is of FHIR R4, or names no release."""
        version = self.parameters.get("fhirversion")
        return version is None or version in R4_VERSIONS

    @property
    def in_utf8(self) -> bool:
        """Whether the text is UTF-8, or names no charset (FHIR's is always UTF-8)."""
        charset = self.parameters.get("charset")
        return charset is None or charset.lower() == "utf-8"


def parse(value: str) -> MediaType:
    """One media type, ``type/subtype; name=value; ...``; a parameter without ``=`` is
    kept with an empty value, so it names no release or charset it could pass as."""
    name, *pieces = value.split(";")
    parameters: dict[str, str] = {}
    for piece in pieces:
        key, _, found = piece.partition("=")
        key = key.strip().lower()
        if key:
            parameters.setdefault(key, found.strip().strip('"').strip())
    return MediaType(name.strip().lower(), parameters)


def ranges(header: str) -> Iterator[MediaType]:
    """Each media range of an ``Accept`` header (or a ``_format`` value)."""
    for part in header.split(","):
        if part.strip():
            yield parse(part)


class Answer(Enum):
    """What an ``Accept`` header (or ``_format``) lets the server answer."""

    JSON = "json"
    #: JSON is acceptable, but only of another FHIR release.
    OTHER_RELEASE = "other release"
    NOT_JSON = "not json"


def negotiate(accept: str) -> Answer:
    """Whether ``accept`` admits an R4 JSON answer: any JSON type (or a wildcard) not
    refused with ``q=0`` and naming no other release. No ``Accept`` at all admits it."""
    if not accept.strip():
        return Answer.JSON
    other_release = False
    for media in ranges(accept):
        if media.name not in JSON_ANSWERS or media.refused:
            continue
        if media.of_r4:
            return Answer.JSON
        other_release = True
    return Answer.OTHER_RELEASE if other_release else Answer.NOT_JSON


def format_parameter(value: str) -> str:
    """A ``_format`` value as its sender wrote it: a query string reads an unescaped
    ``+`` as a space, so ``?_format=application/fhir+json`` (R4's own spelling, typed
    into a URL) arrives as ``application/fhir json``. No media type's name holds a
    space, so a space inside one is the ``+`` that was sent; the parameters after a
    ``;`` keep theirs (``; fhirVersion=3.0`` still names its release)."""
    names = []
    for part in value.split(","):
        name, semicolon, parameters = part.partition(";")
        names.append("+".join(name.split()) + semicolon + parameters)
    return ",".join(names)


def refusal(answer: Answer) -> str | None:
    """The 406 message for ``answer``; None when JSON is answered."""
    return {Answer.JSON: None, Answer.OTHER_RELEASE: NOT_R4, Answer.NOT_JSON: NOT_JSON}[answer]


def body_problem(content_type: str, accepted: Collection[str], wanted: str) -> str | None:
    """Why a request body sent as ``content_type`` is not read (415), None if it is read:
    ``wanted`` (what to send instead) when its type is not one of ``accepted``; else
    when it is said to be of another FHIR release, or in a charset other than UTF-8."""
    media = parse(content_type)
    if media.name not in accepted:
        return wanted
    if not media.of_r4:
        return BODY_NOT_R4
    if not media.in_utf8:
        return NOT_UTF8
    return None
