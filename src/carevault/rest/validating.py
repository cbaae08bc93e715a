"""``[type]/$validate`` (R4 resource-operation-validate): would this resource be
accepted, generally?

The resource, posted as it is (fhirpy's ``resource.is_valid()``) or as the ``resource``
part of a Parameters, is checked by the very checks a create or an update runs before
the gate (``fhir.validate.validate_resource``: structure, codes, content rules) and that
a create runs in it (R4 ref-1: ``contained.check_references``), and the
answer is the operation's ``return``, an OperationOutcome listing what they found, with
200: the operation ran, whatever it found. Nothing is read or written, so it goes to no
gate: it says nothing of any stored record, and its messages name paths, never values.

Only the general validation is offered. A ``mode`` (create, update, delete) asks
whether that write would succeed, which turns on the records and the caller's rights;
and a ``profile`` other than the type's own definition asks for rules this server does
not hold. R4 says a server that cannot validate against a nominated profile SHALL return
an error: both are refused with 400 (``not-supported``), never answered as if valid.
"""

from __future__ import annotations

from typing import Any

from carevault.fhir.contained import check_references
from carevault.fhir.content import InputLimits
from carevault.fhir.outcome import FhirError, Issue, bad_request, outcome
from carevault.fhir.parameters import NotParameters, parts
from carevault.fhir.query import safe_name
from carevault.fhir.subsetting import without_subsetted
from carevault.fhir.validate import InvalidResource, parse_json, validate_resource
from carevault.rest import bundles
from carevault.rest.interactions import FhirResponse, resource_type_named

CORE_PROFILE = "http://hl7.org/fhir/StructureDefinition/"
_PROFILE_TYPES = frozenset({"valueUri", "valueCanonical", "valueUrl"})


def validate(type_name: str, body: bytes, limits: InputLimits) -> FhirResponse:
    """200 with an OperationOutcome: an ``information`` issue if the checks found
    nothing, else each issue they found. 400 for a request that cannot be validated."""
    rt = resource_type_named(type_name)
    sent = parse_json(body)
    if not isinstance(sent, dict):
        raise bad_request("send the resource, or a Parameters with a resource part")
    resource = _resource_of(sent, rt.name) if sent.get("resourceType") == "Parameters" else sent
    try:
        validate_resource(resource, rt.name, limits)
    except InvalidResource as invalid:
        issues = invalid.issues
    else:
        # A create judges its local references in the gate (R4 ref-1): as sent, what a
        # new record holds is all there is. Not a view of a stored record (SUBSETTED,
        # with its id): its references may name what the gate puts back when it is
        # saved over that record, which accepts them.
        view = without_subsetted(resource) is not resource and "id" in resource
        broken = [] if view else check_references(resource, rt.name)
        issues = broken or [Issue("informational", "no issues found", severity="information")]
    return FhirResponse(200, bundles.dumps(outcome(issues)))


def _resource_of(parameters: dict[str, Any], type_name: str) -> Any:
    """The ``resource`` part of a $validate Parameters, once every other part is one
    this server honours (a ``profile`` naming the type's own definition)."""
    try:
        given = parts(parameters)
    except NotParameters as error:
        raise bad_request(str(error)) from None
    items: list[dict[str, Any]] = parameters.get("parameter", [])
    resources = [item.get("resource") for item in items if item["name"] == "resource"]
    for part in given:
        if part.name == "resource":
            continue
        if part.name == "mode":
            raise FhirError.of(
                400,
                "not-supported",
                "this server validates without a mode only: send no mode, or make the write",
            )
        if part.name == "profile" and part.value_type in _PROFILE_TYPES:
            if part.value != f"{CORE_PROFILE}{type_name}":
                raise FhirError.of(
                    400,
                    "not-supported",
                    f"this server validates against the base definition of {type_name} only",
                )
            continue
        raise bad_request(f"$validate takes no parameter '{safe_name(part.name)}' as sent")
    if len(resources) != 1 or not isinstance(resources[0], dict):
        raise bad_request("send one resource part holding the resource to validate")
    return resources[0]
