"""The CapabilityStatement, derived from the resource table so it cannot drift from it."""

from __future__ import annotations

from typing import Any

from carevault import __version__
from carevault.clock import fhir_instant, utc_now
from carevault.export.model import MAX_PATIENTS
from carevault.fhir import definitions, mediatype
from carevault.fhir.registry import RESOURCE_TYPES, ParamKind, ResourceType, SearchParam

_TYPE_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
_SPEC = "http://hl7.org/fhir/SearchParameter"


def _resource(rt: ResourceType, base: str) -> dict[str, Any]:
    params = [
        {"name": "_id", "definition": f"{_SPEC}/Resource-id", "type": "token"},
        {"name": "_lastUpdated", "definition": f"{_SPEC}/Resource-lastUpdated", "type": "date"},
    ]
    params += [_search_param(rt, name, param) for name, param in _named(rt)]
    entry: dict[str, Any] = {
        "type": rt.name,
        "interaction": [{"code": code} for code in _TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchParam": params,
        "searchInclude": _includes(rt),
        "searchRevInclude": _revincludes(rt),
    }
    entry["operation"] = [VALIDATE_OPERATION]
    if rt.is_patient:
        entry["operation"][:0] = [
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                "documentation": _EVERYTHING_DOC,
            },
            {
                "name": "export",
                "definition": _EXPORT_PATIENT,
                "documentation": _EXPORT_PATIENT_DOC,
            },
            {
                "name": "register",
                "definition": f"{base}/OperationDefinition/Patient-register",
                "documentation": _REGISTER_DOC,
            },
            {
                "name": "transfer",
                "definition": f"{base}/OperationDefinition/Patient-transfer",
                "documentation": _TRANSFER_DOC,
            },
            {
                "name": "break-glass",
                "definition": f"{base}/OperationDefinition/Patient-break-glass",
                "documentation": _BREAK_GLASS_DOC,
            },
            {
                "name": "emergency-access",
                "definition": f"{base}/OperationDefinition/Patient-emergency-access",
                "documentation": _EMERGENCY_DOC,
            },
        ]
    return entry


#: Every type's ``$validate`` (``rest/validating.py``): general validation only.
VALIDATE_OPERATION: dict[str, Any] = {
    "name": "validate",
    "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    "documentation": (
        "General validation only: the resource (or a Parameters' resource part) is "
        "checked as a create or update checks it, and the issues found are returned "
        "with 200. A mode, or a profile other than the type's base definition, is 400."
    ),
}


def _search_param(rt: ResourceType, name: str, param: SearchParam) -> dict[str, Any]:
    """A ``searchParam`` entry: R4's definition where the parameter is R4's, otherwise
    what CareVault's own parameter matches (never a standard definition it differs from)."""
    entry: dict[str, Any] = {"name": name}
    standard = definitions.definition(rt.name, name)
    if standard is not None:
        entry["definition"] = standard
    entry["type"] = str(param.kind)
    notes = [text for text in (definitions.documentation(rt.name, name), param.description) if text]
    if notes:
        entry["documentation"] = " ".join(notes)
    return entry


_EVERYTHING_DOC = (
    "Parameters: _since (records last updated at or after an instant), _type (comma list "
    "of resource types; an unknown type is refused with 400), start and end (care dates: "
    "records whose care date, which is encrypted, falls outside are left out after "
    "decryption, within the request's decryption budget; records with no care date are "
    "kept), _count and _offset. Any other parameter is refused with 400."
)
_HISTORY_DOC = (
    "_history at instance, type and system level takes _count, _since and _offset; any "
    "other parameter is refused with 400. Type- and system-level history read as a search "
    "of each type reads (scopes, access policy, release budget, one audit entry per "
    "patient); their Bundles carry no total and no previous link. At every level _offset "
    "is only the opaque cursor of a page's link, valid for the same caller and request "
    "(and record), and every page of one answer is as of the first page's "
    "meta.lastUpdated."
)
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
_EXPORT_PATIENT = f"{_BULK}/patient-export"
#: The ``patient`` parameter (POST, Patient and Group level): what this server does with
#: it where the IG leaves the choice to the server.
_EXPORT_NARROWED = (
    f" patient (POST only, at most {MAX_PATIENTS}, each a valueReference to Patient/[id]) narrows "
    "the export to those patients; a patient the export could not reach without it "
    "(unknown, not the client's, not in the Group) refuses the kick-off with 400."
)
_EXPORT_PATIENT_DOC = (
    "Patient-level Bulk Data export (NDJSON; _type, _since, patient): every patient in "
    "the client's reach, after a privacy officer approves (two for a client that reaches "
    "every patient of the group)." + _EXPORT_NARROWED
)
#: Bulk Data Access v2 ``$export``: async kick-off, approved by privacy officers first.
#: The system export is the server's; the Group export is the ``Group`` resource's
#: (``GROUP``), as the IG's own CapabilityStatement places it and Inferno's Bulk Data
#: test kit looks for it (it was a second system operation named ``export``).
EXPORT_OPERATIONS = [
    {
        "name": "export",
        "definition": f"{_BULK}/export",
        "documentation": (
            "System-level Bulk Data export (NDJSON; _type, _since). Only for backend "
            "services granted system/*.read, and only after two privacy officers approve "
            "the job; files are encrypted at rest and deleted after a set time."
        ),
    },
]
#: The Bulk Data IG's CapabilityStatement, which this server's export instantiates.
BULK_DATA_STATEMENT = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
#: A Group here is a clinic of the group (its registered patients): exported only, never
#: read or searched as a resource (``GET /fhir/Group`` answers 404), so the entry names
#: its one operation and no interaction.
GROUP = {
    "type": "Group",
    "documentation": (
        "A Group is a clinic of the group, its id the clinic's Organization id, its "
        "members the patients registered there. Groups are not read or searched here; "
        "Group/[clinic id]/$export is offered to backend services of that clinic."
    ),
    "operation": [
        {
            "name": "export",
            "definition": f"{_BULK}/group-export",
            "documentation": (
                "Group/[clinic id]/$export: the patients of one clinic; one privacy "
                "officer's approval (two for a client that reaches every patient of the "
                "group)." + _EXPORT_NARROWED
            ),
        }
    ],
}
_IMPORT_DOC = (
    "Bulk Data $import (the draft's asynchronous pattern): POST [base]/$import with "
    "Prefer: respond-async and an application/fhir+ndjson body, one resource a line; 202 "
    "with a status URL in Content-Location, polled like $export's (202 with X-Progress "
    "while queued or running, 200 with an OperationOutcome of counts and refusals by line "
    "once done, 500 with an OperationOutcome if the job failed; DELETE cancels). Only "
    "for backend services whose scopes allow writes; each line is judged as that "
    "client's write. One job queued or running per client (429 otherwise); a job's "
    "report is deleted a set time after it ends."
)


def import_operation(base: str) -> dict[str, Any]:
    """``$import`` as the CapabilityStatement declares it: its definition is this
    server's (the Bulk Data IG publishes none for ``$import``), served at its URL."""
    return {
        "name": "import",
        "definition": f"{base}/OperationDefinition/import",
        "documentation": _IMPORT_DOC,
    }


def import_definition(base: str) -> dict[str, Any]:
    """The OperationDefinition that ``import_operation`` points to."""
    return {
        "resourceType": "OperationDefinition",
        "id": "import",
        "url": f"{base}/OperationDefinition/import",
        "name": "Import",
        "title": "Bulk Data import of FHIR NDJSON",
        "status": "active",
        "kind": "operation",
        "publisher": "CareVault",
        "description": _IMPORT_DOC,
        "affectsState": True,
        "code": "import",
        "system": True,
        "type": False,
        "instance": False,
        # The body is NDJSON, not a Parameters resource: the operation takes no
        # parameters of its own.
        "parameter": [
            {
                "name": "return",
                "use": "out",
                "min": 0,
                "max": "1",
                "type": "OperationOutcome",
                "documentation": "The job's report, at its status URL once it has ended.",
            }
        ],
    }


#: ``GET /fhir/AuditEvent`` (web/audit_routes.py): the privacy officer's search of the
#: audit ledger, its one interaction and the parameters it takes (R4
#: capabilitystatement.html: the statement says what the server does). CareVault's own
#: reading of each, so no R4 definition is claimed.
AUDIT_EVENT = {
    "type": "AuditEvent",
    "documentation": (
        "The audit ledger, searched: only for a privacy officer whose token carries the "
        "account's whole reach (user/*.cruds); anyone else gets 403. Entries come oldest "
        "first (_sort=date, ledger order) or newest first (_sort=-date), at most _count "
        "(1..500) a page; a page's next link carries _after (newest first: _before), an "
        "entry number. _total=accurate gives Bundle.total, every entry the search matches "
        "(on the page asked for; next links do not repeat it); none, estimate or absent: "
        "no total. A search naming a patient, or a record of a patient as its entity, is "
        "a release of that patient's accesses and rides the release budget. Any other "
        "parameter is refused (400)."
    ),
    "interaction": [{"code": "search-type"}],
    "searchParam": [
        {
            "name": "patient",
            "type": "reference",
            "documentation": "Entries of accesses to this Patient's records (id or Patient/id).",
        },
        {
            "name": "agent",
            "type": "token",
            "documentation": (
                "Entries of one principal, exactly as the ledger names it: staff:<username>, "
                "client:<client id>, system:..., cli:..."
            ),
        },
        {
            "name": "date",
            "type": "date",
            "documentation": (
                "When the entry was recorded, with R4's prefixes (ap included); repeated, "
                "each must hold."
            ),
        },
        {
            "name": "outcome",
            "type": "token",
            "documentation": "0 (success), 4 (denied) or 8 (failed); or the word.",
        },
        {
            "name": "_lastUpdated",
            "type": "date",
            "documentation": "For an AuditEvent, when it was recorded: as date.",
        },
        {
            "name": "type",
            "type": "token",
            "documentation": (
                "AuditEvent.type: rest (system http://terminology.hl7.org/CodeSystem/"
                "audit-event-type) for FHIR RESTful interactions, else the entry's source "
                "under urn:carevault:audit-ledger (auth:session, audit:ledger, ...). code "
                "or system|code, comma-separated for any of them."
            ),
        },
        {
            "name": "subtype",
            "type": "token",
            "documentation": (
                "AuditEvent.subtype: the entry's action, urn:carevault:audit-ledger|"
                "fhir:patient:read and the like. code or system|code, comma-separated."
            ),
        },
        {
            "name": "entity",
            "type": "reference",
            "documentation": (
                "Entries about one resource, Type/id (Patient/123): AuditEvent.entity.what."
            ),
        },
    ],
}

_REGISTER_DOC = (
    "POST Patient/$register with a Parameters resource: identifier (valueIdentifier) and "
    "birthDate (valueDate) of a patient present at one of the caller's clinics, and "
    "optionally clinic (valueReference to an Organization, or valueId) where the caller "
    "works at several. Answers the Patient as the caller may now see it. Matched through "
    "the blind index; a failed registration counts against the account (5 per 15 "
    "minutes, then 429)."
)
_TRANSFER_DOC = (
    "POST Patient/[id]/$transfer with a Parameters resource: destination (valueReference "
    "to an Organization, or valueId) and reason (valueCode from a fixed list). Moves the "
    "patient's home clinic: a privacy officer, or the manager of both clinics. Answers a "
    "Parameters resource: patient, clinic and version."
)


_BREAK_GLASS_DOC = (
    "POST Patient/[id]/$break-glass with a Parameters resource: reason (valueCode from "
    "a fixed list) and text (valueString, the clinician's own words). A clinician "
    "without a care relationship opens the patient's record for a while; the grant is "
    "queued for a privacy officer's review. Answers a Parameters resource: grant and "
    "expires."
)
_EMERGENCY_DOC = (
    "POST Patient/[id]/$emergency-access with the Parameters of $break-glass, while "
    "patient data is offline: asks to reach one patient's record; a privacy officer "
    "other than the one who took data offline must approve it. Answers 202 with a "
    "Parameters resource: grant and status (awaiting-approval)."
)


def _in(name: str, kind: str, minimum: int, documentation: str) -> dict[str, Any]:
    return _parameter(name, "in", minimum, kind, documentation)


def _out(name: str, kind: str, documentation: str) -> dict[str, Any]:
    return _parameter(name, "out", 1, kind, documentation)


def _parameter(name: str, use: str, minimum: int, kind: str, documentation: str) -> dict[str, Any]:
    """One parameter of an OperationDefinition, taken or given at most once."""
    return {
        "name": name,
        "use": use,
        "min": minimum,
        "max": "1",
        "type": kind,
        "documentation": documentation,
    }


def _patient_operation(
    base: str, code: str, description: str, *, instance: bool, parameter: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "resourceType": "OperationDefinition",
        "id": f"Patient-{code}",
        "url": f"{base}/OperationDefinition/Patient-{code}",
        "name": "".join(part.capitalize() for part in code.split("-")),
        "status": "active",
        "kind": "operation",
        "publisher": "CareVault",
        "description": description,
        "affectsState": True,
        "code": code,
        "resource": ["Patient"],
        "system": False,
        "type": not instance,
        "instance": instance,
        "parameter": parameter,
    }


def operation_definitions(base: str) -> dict[str, dict[str, Any]]:
    """This server's own OperationDefinitions, by id: what the CapabilityStatement's
    ``definition`` of each of its operations that no IG defines points to, served at
    ``[base]/OperationDefinition/[id]``."""
    register = _patient_operation(
        base,
        "register",
        _REGISTER_DOC,
        instance=False,
        parameter=[
            _in("identifier", "Identifier", 1, "The patient's identifier (system and value)."),
            _in("birthDate", "date", 1, "The patient's birth date, as a proof of presence."),
            _in("clinic", "Reference", 0, "The clinic to register at (or valueId)."),
            _out("return", "Patient", "The Patient as the caller may now see it."),
        ],
    )
    transfer = _patient_operation(
        base,
        "transfer",
        _TRANSFER_DOC,
        instance=True,
        parameter=[
            _in("destination", "Reference", 1, "The new home clinic (or valueId)."),
            _in("reason", "code", 1, "Why, from the fixed list of transfer reasons."),
            _out("return", "Parameters", "patient, clinic and version of the moved Patient."),
        ],
    )
    asked = [
        _in("reason", "code", 1, "Why, from the fixed list of break-the-glass reasons."),
        _in("text", "string", 1, "The clinician's own words, for the privacy review."),
    ]
    break_glass = _patient_operation(
        base,
        "break-glass",
        _BREAK_GLASS_DOC,
        instance=True,
        parameter=[
            *asked,
            _out("grant", "string", "The grant's id."),
            _out("expires", "instant", "When the grant ends."),
        ],
    )
    emergency = _patient_operation(
        base,
        "emergency-access",
        _EMERGENCY_DOC,
        instance=True,
        parameter=[
            *asked,
            _out("grant", "string", "The grant's id."),
            _out("status", "code", "awaiting-approval."),
        ],
    )
    return {
        "import": import_definition(base),
        "Patient-register": register,
        "Patient-transfer": transfer,
        "Patient-break-glass": break_glass,
        "Patient-emergency-access": emergency,
    }


_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def security(root: str) -> dict[str, Any]:
    """How to sign in (SMART App Launch): the OAuth endpoints as the ``oauth-uris``
    extension, for clients that discover them from the CapabilityStatement."""
    uris = {
        "authorize": f"{root}/auth/authorize",
        "token": f"{root}/auth/token",
        "revoke": f"{root}/auth/revoke",
    }
    return {
        "cors": True,
        "service": [
            {
                "coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth 2.0 as SMART App Launch v2 uses it (PKCE; OpenID Connect)",
            }
        ],
        "extension": [
            {
                "url": _OAUTH_URIS,
                "extension": [{"url": name, "valueUri": uri} for name, uri in uris.items()],
            }
        ],
        "description": (
            "Every request needs a bearer token; see /.well-known/smart-configuration."
        ),
    }


def _includes(rt: ResourceType) -> list[str]:
    """``_include`` values: each reference parameter, with its target where it has several."""
    found: list[str] = []
    for name, param in _named(rt):
        if param.kind is ParamKind.REFERENCE:
            if len(param.targets) == 1:
                found.append(f"{rt.name}:{name}")
            found += [f"{rt.name}:{name}:{target}" for target in param.targets]
    return found


def _named(rt: ResourceType) -> list[tuple[str, SearchParam]]:
    """Each parameter of a type under each name a search may use: its own and its R4
    aliases (``Coverage:beneficiary`` includes what ``Coverage:patient`` does)."""
    named = [(param.name, param) for param in rt.params]
    return named + [(alias, param) for alias in rt.aliases if (param := rt.param(alias))]


def _revincludes(rt: ResourceType) -> list[str]:
    """``_revinclude`` values: the reference parameters of other types that point here."""
    return [
        f"{source.name}:{name}"
        for source in RESOURCE_TYPES.values()
        for name, param in _named(source)
        if param.kind is ParamKind.REFERENCE and rt.name in param.targets
    ]


#: What ``GET [base]/metadata`` takes as ``mode`` (R4 http.html#capabilities).
CAPABILITY_MODES = ("full", "normative", "terminology")


def terminology_capabilities(base: str) -> dict[str, Any]:
    """``metadata?mode=terminology`` (R4 terminologycapabilities.html): what the server
    offers as a terminology service, which is nothing: no code system is listed, and no
    terminology operation is in the CapabilityStatement."""
    return {
        "resourceType": "TerminologyCapabilities",
        "status": "active",
        "date": fhir_instant(utc_now()),
        "publisher": "CareVault",
        "description": (
            "CareVault is no terminology server: it holds no code systems or value sets "
            "and offers no terminology operations ($expand, $lookup, $validate-code, "
            "$translate). Codes in records are stored as sent; token searches match them."
        ),
        "kind": "instance",
        "software": {"name": "CareVault", "version": __version__},
        "implementation": {"description": "CareVault FHIR R4 server", "url": base},
    }


def capability_statement(base: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": fhir_instant(utc_now()),
        "publisher": "CareVault",
        "kind": "instance",
        "software": {"name": "CareVault", "version": __version__},
        "implementation": {"description": "CareVault FHIR R4 server", "url": base},
        "instantiates": [BULK_DATA_STATEMENT],
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": [mediatype.JSON_PATCH, mediatype.MERGE_PATCH],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Every resource body is encrypted per patient. A search parameter the "
                    "server does not support (chained, _has, unknown, an unsupported "
                    "modifier) is refused with 400 in every handling mode; only _pretty "
                    "and _totalMethod are ignored (_totalMethod reported). _summary (true, "
                    "text, data, false; count on searches) and _elements (top-level element "
                    "names) are honoured on read, vread and search: each only leaves "
                    "elements out of what the caller's role may see, keeps id, meta and "
                    "mandatory elements, and marks what it cut SUBSETTED (in meta.tag and "
                    "meta.security); the two together, "
                    "or a value FHIR does not define, are refused with 400, as is an "
                    "element the type lacks under handling=strict (ignored, and reported "
                    "on a search, otherwise). Token searches take code, "
                    "system|code, |code and system|. Date ranges on patient data are "
                    "settled by day, month and year tokens, opening only the records at the "
                    "edges of the range (at most a configured number); dates of directory "
                    "resources (Slot, Schedule) are compared in the clear. _sort on a "
                    "patient-data date opens every candidate, under the same limit. "
                    "Format: FHIR R4 JSON in UTF-8 (application/fhir+json; application/json "
                    "and DSTU2's application/json+fhir are read as it, in Accept and in "
                    "Content-Type alike); a fhirVersion other than 4.0 is refused (406 in "
                    "Accept, 415 in Content-Type), as is a body in a charset other than UTF-8 "
                    "(415)."
                ),
                "security": security(base.removesuffix("/fhir")),
                "resource": [
                    *(_resource(rt, base) for rt in RESOURCE_TYPES.values()),
                    AUDIT_EVENT,
                    GROUP,
                ],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system", "documentation": _HISTORY_DOC},
                ],
                "operation": [*EXPORT_OPERATIONS, import_operation(base)],
            }
        ],
    }
