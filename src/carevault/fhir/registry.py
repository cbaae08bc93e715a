"""The resource table: adding a resource type is an entry here, not a new module.

Each entry says where the resource points at its patient and clinic, which
search parameters it supports and how each is indexed, and which data
categories (DESIGN.md) its elements belong to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from carevault.domain.categories import DataCategory as C


class ParamKind(StrEnum):
    TOKEN = "token"  # noqa: S105 - the FHIR search parameter type, not a secret
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"


@dataclass(frozen=True)
class SearchParam:
    """A search parameter and the element paths it reads.

    ``clear`` marks parameters DESIGN.md allows in the clear (status); all others
    are stored as blind-index tokens. A parameter with ``patient=True`` is answered
    from the clear patient pseudonym column instead of tokens.
    """

    name: str
    kind: ParamKind
    paths: tuple[str, ...] = ()
    clear: bool = False
    patient: bool = False
    #: For token parameters on ContactPoint: only values of this telecom system.
    telecom_system: str | None = None
    #: For string parameters: which HumanName parts ("family", "given") or all text.
    name_parts: tuple[str, ...] = ()
    #: For reference parameters: the resource types a reference may point at.
    targets: tuple[str, ...] = ()
    #: For token parameters on a ``code`` element: the code system its values are from.
    implicit_system: str | None = None
    description: str = ""


@dataclass(frozen=True)
class ResourceType:
    name: str
    #: Paths holding the reference to the patient the resource belongs to.
    patient_paths: tuple[str, ...] = ()
    #: Paths holding references from which the clinic is found (Organization,
    #: Location or Encounter references), first hit wins.
    clinic_paths: tuple[str, ...] = ()
    category: C = C.CLINICAL
    #: Top-level elements whose category differs from ``category``.
    element_categories: Mapping[str, C] = field(default_factory=dict)
    params: tuple[SearchParam, ...] = ()
    #: FHIR R4's name of a parameter this table knows by another (``authoredon`` for
    #: MedicationRequest's ``date``): the R4 name reads the same stored terms, since a
    #: blind token is keyed by the parameter's name. Only where R4's parameter means
    #: exactly what ours does (same element, same type), so no new terms and no reindex.
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_patient(self) -> bool:
        return self.name == "Patient"

    @property
    def is_patient_data(self) -> bool:
        return self.is_patient or bool(self.patient_paths)

    @property
    def sort_dates(self) -> tuple[str, ...]:
        """The parameters ``_sort`` orders by: every date parameter of the type. Derived
        from the parameters rather than listed beside them, so a date parameter added to
        a type sorts as its others do."""
        return tuple(param.name for param in self.params if param.kind is ParamKind.DATE)

    @property
    def sort_names(self) -> tuple[str, ...]:
        """The names ``_sort`` takes beyond ``_id`` and ``_lastUpdated``: the sort dates and
        their R4 names."""
        sortable = self.sort_dates
        return sortable + tuple(alias for alias, name in self.aliases.items() if name in sortable)

    def param(self, name: str) -> SearchParam | None:
        """The parameter a search names, by its name or its R4 alias."""
        name = self.aliases.get(name, name)
        for candidate in self.params:
            if candidate.name == name:
                return candidate
        return None


def _choice(stem: str, *types: str) -> tuple[str, ...]:
    return tuple(stem + kind for kind in types)


def _patient_ref(*paths: str) -> tuple[SearchParam, ...]:
    """``patient`` (and ``subject`` where the element is called subject)."""
    params = [
        SearchParam("patient", ParamKind.REFERENCE, paths, patient=True, targets=("Patient",))
    ]
    if "subject" in paths:
        params.append(
            SearchParam("subject", ParamKind.REFERENCE, paths, patient=True, targets=("Patient",))
        )
    return tuple(params)


_HL7 = "http://hl7.org/fhir/"

#: The code system of each resource's ``status`` (a ``code`` element: its system is
#: implicit, and a token search ``system|code`` must name this one).
_STATUS_SYSTEMS = {
    "Location": _HL7 + "location-status",
    "Slot": _HL7 + "slotstatus",
    "Encounter": _HL7 + "encounter-status",
    "Appointment": _HL7 + "appointmentstatus",
    "Observation": _HL7 + "observation-status",
    "DiagnosticReport": _HL7 + "diagnostic-report-status",
    "Procedure": _HL7 + "event-status",
    "Immunization": _HL7 + "event-status",
    "MedicationRequest": _HL7 + "CodeSystem/medicationrequest-status",
    "CarePlan": _HL7 + "request-status",
    "CareTeam": _HL7 + "care-team-status",
    "ServiceRequest": _HL7 + "request-status",
    "ImagingStudy": _HL7 + "imagingstudy-status",
    "DocumentReference": _HL7 + "document-reference-status",
    "Coverage": _HL7 + "fm-status",
    "Claim": _HL7 + "fm-status",
    "ExplanationOfBenefit": _HL7 + "explanationofbenefit-status",
}


def _status(type_name: str) -> SearchParam:
    return SearchParam(
        "status",
        ParamKind.TOKEN,
        ("status",),
        clear=True,
        implicit_system=_STATUS_SYSTEMS[type_name],
    )


def _clinical(
    name: str,
    *,
    patient: tuple[str, ...],
    code: tuple[str, ...],
    date: tuple[str, ...],
    category: C = C.CLINICAL,
    clinic: tuple[str, ...] = ("encounter",),
    status: bool = True,
    extra: tuple[SearchParam, ...] = (),
    elements: Mapping[str, C] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> ResourceType:
    params: list[SearchParam] = [*_patient_ref(*patient)]
    if code:
        params.append(SearchParam("code", ParamKind.TOKEN, code))
    if date:
        params.append(SearchParam("date", ParamKind.DATE, date))
    if status:
        params.append(_status(name))
    params.extend(extra)
    return ResourceType(
        name=name,
        patient_paths=patient,
        clinic_paths=clinic,
        category=category,
        element_categories=elements or {},
        params=tuple(params),
        aliases=aliases or {},
    )


#: Why a patient came, what they were found to have and what was done: clinical data,
#: though held by a visit, a booking, a care team or a claim (and sensitive_clinical
#: when a code is: ``fhir/categories.py``). A front desk books the visit without them;
#: billing sees a claim's amounts, not its diagnoses.
_REASONS = {"reasonCode": C.CLINICAL, "reasonReference": C.CLINICAL}
_ENCOUNTER_CLINICAL = {**_REASONS, "diagnosis": C.CLINICAL, "hospitalization": C.CLINICAL}
_CLAIM_CLINICAL = {"diagnosis": C.CLINICAL, "procedure": C.CLINICAL}

_IDENTIFIER = SearchParam("identifier", ParamKind.TOKEN, ("identifier",))
_NAME_STRING = SearchParam("name", ParamKind.STRING, ("name",))

_PATIENT = ResourceType(
    name="Patient",
    clinic_paths=("managingOrganization",),
    category=C.IDENTITY,
    element_categories={
        "identifier": C.GOVERNMENT_ID,
        "name": C.IDENTITY,
        "photo": C.IDENTITY,
        "telecom": C.CONTACT,
        "address": C.CONTACT,
        "contact": C.CONTACT,
        "birthDate": C.DEMOGRAPHIC,
        "gender": C.DEMOGRAPHIC,
        "communication": C.DEMOGRAPHIC,
        "maritalStatus": C.DEMOGRAPHIC,
        "multipleBirthBoolean": C.DEMOGRAPHIC,
        "multipleBirthInteger": C.DEMOGRAPHIC,
        "deceasedBoolean": C.CLINICAL,
        "deceasedDateTime": C.CLINICAL,
        "extension": C.DEMOGRAPHIC,
        "generalPractitioner": C.VISIT,
        "managingOrganization": C.VISIT,
    },
    params=(
        _IDENTIFIER,
        SearchParam("name", ParamKind.STRING, ("name",)),
        SearchParam("family", ParamKind.STRING, ("name",), name_parts=("family",)),
        SearchParam("given", ParamKind.STRING, ("name",), name_parts=("given",)),
        SearchParam("birthdate", ParamKind.DATE, ("birthDate",)),
        SearchParam("phone", ParamKind.TOKEN, ("telecom",), telecom_system="phone"),
        SearchParam("email", ParamKind.TOKEN, ("telecom",), telecom_system="email"),
        SearchParam(
            "gender",
            ParamKind.TOKEN,
            ("gender",),
            implicit_system=_HL7 + "administrative-gender",
        ),
    ),
)

_DIRECTORY_NAME = (_IDENTIFIER, _NAME_STRING)

RESOURCE_TYPES: dict[str, ResourceType] = {
    rt.name: rt
    for rt in (
        _PATIENT,
        ResourceType(
            "Practitioner",
            category=C.IDENTITY,
            params=(
                *_DIRECTORY_NAME,
                SearchParam("family", ParamKind.STRING, ("name",), name_parts=("family",)),
                SearchParam("given", ParamKind.STRING, ("name",), name_parts=("given",)),
            ),
        ),
        ResourceType(
            "PractitionerRole",
            clinic_paths=("organization",),
            category=C.IDENTITY,
            params=(
                _IDENTIFIER,
                SearchParam(
                    "practitioner",
                    ParamKind.REFERENCE,
                    ("practitioner",),
                    targets=("Practitioner",),
                ),
                SearchParam(
                    "organization",
                    ParamKind.REFERENCE,
                    ("organization",),
                    targets=("Organization",),
                ),
                SearchParam("specialty", ParamKind.TOKEN, ("specialty",)),
            ),
        ),
        ResourceType(
            "Organization",
            clinic_paths=("id",),
            category=C.IDENTITY,
            params=(
                *_DIRECTORY_NAME,
                SearchParam("partof", ParamKind.REFERENCE, ("partOf",), targets=("Organization",)),
            ),
        ),
        ResourceType(
            "Location",
            clinic_paths=("managingOrganization",),
            category=C.IDENTITY,
            params=(
                *_DIRECTORY_NAME,
                _status("Location"),
                SearchParam(
                    "organization",
                    ParamKind.REFERENCE,
                    ("managingOrganization",),
                    targets=("Organization",),
                ),
            ),
        ),
        ResourceType(
            "Schedule",
            clinic_paths=("actor",),
            category=C.VISIT,
            params=(
                _IDENTIFIER,
                SearchParam(
                    "actor",
                    ParamKind.REFERENCE,
                    ("actor",),
                    targets=("Practitioner", "Location", "PractitionerRole"),
                ),
                SearchParam("date", ParamKind.DATE, ("planningHorizon",)),
            ),
        ),
        ResourceType(
            "Slot",
            clinic_paths=("schedule",),
            category=C.VISIT,
            params=(
                _IDENTIFIER,
                SearchParam("schedule", ParamKind.REFERENCE, ("schedule",), targets=("Schedule",)),
                SearchParam("start", ParamKind.DATE, ("start",)),
                _status("Slot"),
            ),
        ),
        _clinical(
            "Encounter",
            patient=("subject",),
            code=("type",),
            date=("period",),
            category=C.VISIT,
            clinic=("serviceProvider", "location.location"),
            elements=_ENCOUNTER_CLINICAL,
            aliases={"type": "code"},
            extra=(
                SearchParam(
                    "practitioner",
                    ParamKind.REFERENCE,
                    ("participant.individual",),
                    targets=("Practitioner",),
                ),
                _IDENTIFIER,
                SearchParam("class", ParamKind.TOKEN, ("class",)),
            ),
        ),
        _clinical(
            "Appointment",
            patient=("participant.actor",),
            code=("serviceType",),
            date=("start",),
            category=C.VISIT,
            clinic=("participant.actor",),
            elements=_REASONS,
            aliases={"service-type": "code"},
            extra=(
                SearchParam(
                    "practitioner",
                    ParamKind.REFERENCE,
                    ("participant.actor",),
                    targets=("Practitioner",),
                ),
                SearchParam(
                    "location", ParamKind.REFERENCE, ("participant.actor",), targets=("Location",)
                ),
                SearchParam(
                    "actor",
                    ParamKind.REFERENCE,
                    ("participant.actor",),
                    targets=("Practitioner", "Location", "Patient"),
                ),
                _IDENTIFIER,
            ),
        ),
        _clinical(
            "Condition",
            patient=("subject",),
            code=("code",),
            date=_choice("onset", "DateTime", "Period") + ("recordedDate",),
            status=False,
            extra=(
                SearchParam("clinical-status", ParamKind.TOKEN, ("clinicalStatus",)),
                SearchParam("category", ParamKind.TOKEN, ("category",)),
                SearchParam("onset-date", ParamKind.DATE, _choice("onset", "DateTime", "Period")),
                SearchParam("recorded-date", ParamKind.DATE, ("recordedDate",)),
            ),
        ),
        _clinical(
            "Observation",
            patient=("subject",),
            code=("code",),
            date=_choice("effective", "DateTime", "Period", "Instant"),
            extra=(SearchParam("category", ParamKind.TOKEN, ("category",)),),
        ),
        _clinical(
            "DiagnosticReport",
            patient=("subject",),
            code=("code",),
            date=_choice("effective", "DateTime", "Period"),
        ),
        _clinical(
            "Procedure",
            patient=("subject",),
            code=("code",),
            date=_choice("performed", "DateTime", "Period"),
        ),
        _clinical(
            "Immunization",
            patient=("patient",),
            code=("vaccineCode",),
            date=_choice("occurrence", "DateTime"),
            aliases={"vaccine-code": "code"},
        ),
        _clinical(
            "AllergyIntolerance",
            patient=("patient",),
            code=("code",),
            date=("recordedDate",),
            status=False,
            extra=(SearchParam("clinical-status", ParamKind.TOKEN, ("clinicalStatus",)),),
        ),
        _clinical(
            "MedicationRequest",
            patient=("subject",),
            code=("medicationCodeableConcept",),
            date=("authoredOn",),
            category=C.MEDICATION,
            aliases={"authoredon": "date"},
            extra=(
                SearchParam(
                    "intent",
                    ParamKind.TOKEN,
                    ("intent",),
                    implicit_system=_HL7 + "CodeSystem/medicationrequest-intent",
                ),
            ),
        ),
        _clinical(
            "CarePlan",
            patient=("subject",),
            code=("category",),
            date=("period",),
            aliases={"category": "code"},
        ),
        _clinical(
            "Goal",
            patient=("subject",),
            code=("description",),
            date=("startDate",),
            status=False,
            clinic=(),
            aliases={"start-date": "date"},
            extra=(
                SearchParam(
                    "lifecycle-status",
                    ParamKind.TOKEN,
                    ("lifecycleStatus",),
                    clear=True,
                    implicit_system=_HL7 + "goal-status",
                ),
            ),
        ),
        _clinical(
            "CareTeam",
            patient=("subject",),
            code=("category",),
            date=("period",),
            category=C.VISIT,
            clinic=("managingOrganization",),
            elements=_REASONS,
            aliases={"category": "code"},
            extra=(
                SearchParam(
                    "participant",
                    ParamKind.REFERENCE,
                    ("participant.member",),
                    targets=("Practitioner", "PractitionerRole", "Organization"),
                ),
            ),
        ),
        # A referral (or any order for a service) names who is to perform it; written by a
        # clinician who cares for the patient, it opens the record to them (domain/care.py).
        _clinical(
            "ServiceRequest",
            patient=("subject",),
            code=("code",),
            date=("occurrenceDateTime", "occurrencePeriod", "authoredOn"),
            clinic=("encounter", "requester"),
            extra=(
                SearchParam(
                    "performer",
                    ParamKind.REFERENCE,
                    ("performer",),
                    targets=("Practitioner", "PractitionerRole", "Organization"),
                ),
                SearchParam(
                    "requester",
                    ParamKind.REFERENCE,
                    ("requester",),
                    targets=("Practitioner", "PractitionerRole", "Organization"),
                ),
                _IDENTIFIER,
                SearchParam("authored", ParamKind.DATE, ("authoredOn",)),
                SearchParam(
                    "occurrence", ParamKind.DATE, _choice("occurrence", "DateTime", "Period")
                ),
            ),
        ),
        _clinical(
            "ImagingStudy",
            patient=("subject",),
            code=("modality",),
            date=("started",),
            aliases={"started": "date"},
        ),
        _clinical(
            "DocumentReference",
            patient=("subject",),
            code=("type",),
            date=("date",),
            clinic=("context.encounter", "custodian"),
            aliases={"type": "code"},
        ),
        _clinical(
            "Coverage",
            patient=("beneficiary",),
            code=("type",),
            date=("period",),
            category=C.FINANCIAL,
            clinic=(),
            aliases={"type": "code", "beneficiary": "patient"},
        ),
        _clinical(
            "Claim",
            patient=("patient",),
            code=("type",),
            date=("created",),
            category=C.FINANCIAL,
            clinic=("provider", "facility"),
            elements=_CLAIM_CLINICAL,
            aliases={"created": "date"},
        ),
        _clinical(
            "ExplanationOfBenefit",
            patient=("patient",),
            code=("type",),
            date=("created",),
            category=C.FINANCIAL,
            clinic=("provider", "facility"),
            elements=_CLAIM_CLINICAL,
            aliases={"created": "date"},
        ),
    )
}

#: Parameters every resource type supports, answered from clear columns.
COMMON_PARAMS = ("_id", "_lastUpdated")

#: Result parameters: they shape the result rather than select resources.
RESULT_PARAMS = frozenset(
    {"_count", "_sort", "_offset", "_total", "_format", "_summary", "_elements"}
)


def resource_type(name: str) -> ResourceType | None:
    return RESOURCE_TYPES.get(name)
