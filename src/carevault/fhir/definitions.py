"""Which search parameters are FHIR R4's, and what the others match.

A client trusts a parameter's meaning from the ``definition`` its CapabilityStatement
entry names. Each (type, name) the registry serves, aliases included, is here once: as
the id of the R4 SearchParameter that means exactly what it matches (same elements,
same type; a narrower list of reference targets only narrows what may be asked), or as
CareVault's own, with what it matches. A parameter whose R4 namesake reads other
elements is CareVault's own, never R4's: ``MedicationRequest?date`` reads
``authoredOn``, where R4's reads ``dosageInstruction.timing.event``.
"""

from __future__ import annotations

from collections.abc import Mapping

_NAMED: dict[tuple[str, str], str] = {
    **{
        ("Patient", name): spec
        for name, spec in {
            "identifier": "Patient-identifier",
            "name": "Patient-name",
            "family": "individual-family",
            "given": "individual-given",
            "birthdate": "individual-birthdate",
            "phone": "individual-phone",
            "email": "individual-email",
            "gender": "individual-gender",
        }.items()
    },
    ("Practitioner", "identifier"): "Practitioner-identifier",
    ("Practitioner", "name"): "Practitioner-name",
    ("Practitioner", "family"): "individual-family",
    ("Practitioner", "given"): "individual-given",
    ("PractitionerRole", "identifier"): "PractitionerRole-identifier",
    ("PractitionerRole", "practitioner"): "PractitionerRole-practitioner",
    ("PractitionerRole", "organization"): "PractitionerRole-organization",
    ("PractitionerRole", "specialty"): "PractitionerRole-specialty",
    ("Organization", "identifier"): "Organization-identifier",
    ("Organization", "partof"): "Organization-partof",
    ("Location", "identifier"): "Location-identifier",
    ("Location", "status"): "Location-status",
    ("Location", "organization"): "Location-organization",
    ("Schedule", "identifier"): "Schedule-identifier",
    ("Schedule", "actor"): "Schedule-actor",
    ("Schedule", "date"): "Schedule-date",
    ("Slot", "identifier"): "Slot-identifier",
    ("Slot", "schedule"): "Slot-schedule",
    ("Slot", "start"): "Slot-start",
    ("Slot", "status"): "Slot-status",
    ("Encounter", "type"): "clinical-type",
    ("Encounter", "date"): "clinical-date",
    ("Encounter", "practitioner"): "Encounter-practitioner",
    ("Encounter", "identifier"): "clinical-identifier",
    ("Encounter", "class"): "Encounter-class",
    ("Appointment", "patient"): "Appointment-patient",
    ("Appointment", "service-type"): "Appointment-service-type",
    ("Appointment", "date"): "Appointment-date",
    ("Appointment", "practitioner"): "Appointment-practitioner",
    ("Appointment", "location"): "Appointment-location",
    ("Appointment", "actor"): "Appointment-actor",
    ("Appointment", "identifier"): "Appointment-identifier",
    ("Condition", "code"): "clinical-code",
    ("Condition", "clinical-status"): "Condition-clinical-status",
    ("Condition", "category"): "Condition-category",
    ("Condition", "onset-date"): "Condition-onset-date",
    ("Condition", "recorded-date"): "Condition-recorded-date",
    ("Observation", "code"): "clinical-code",
    ("Observation", "category"): "Observation-category",
    ("DiagnosticReport", "code"): "clinical-code",
    ("DiagnosticReport", "date"): "clinical-date",
    ("Procedure", "code"): "clinical-code",
    ("Procedure", "date"): "clinical-date",
    ("Immunization", "vaccine-code"): "Immunization-vaccine-code",
    ("Immunization", "date"): "clinical-date",
    ("AllergyIntolerance", "date"): "clinical-date",
    ("AllergyIntolerance", "clinical-status"): "AllergyIntolerance-clinical-status",
    ("MedicationRequest", "code"): "clinical-code",
    ("MedicationRequest", "authoredon"): "MedicationRequest-authoredon",
    ("MedicationRequest", "intent"): "MedicationRequest-intent",
    ("CarePlan", "category"): "CarePlan-category",
    ("CarePlan", "date"): "clinical-date",
    ("Goal", "start-date"): "Goal-start-date",
    ("Goal", "lifecycle-status"): "Goal-lifecycle-status",
    ("CareTeam", "category"): "CareTeam-category",
    ("CareTeam", "date"): "clinical-date",
    ("CareTeam", "participant"): "CareTeam-participant",
    ("ServiceRequest", "code"): "clinical-code",
    ("ServiceRequest", "performer"): "ServiceRequest-performer",
    ("ServiceRequest", "requester"): "ServiceRequest-requester",
    ("ServiceRequest", "identifier"): "clinical-identifier",
    ("ServiceRequest", "authored"): "ServiceRequest-authored",
    ("ImagingStudy", "started"): "ImagingStudy-started",
    ("DocumentReference", "type"): "clinical-type",
    ("DocumentReference", "date"): "DocumentReference-date",
    ("Coverage", "patient"): "Coverage-patient",
    ("Coverage", "beneficiary"): "Coverage-beneficiary",
    ("Coverage", "type"): "Coverage-type",
    ("Claim", "patient"): "Claim-patient",
    ("Claim", "created"): "Claim-created",
    ("ExplanationOfBenefit", "patient"): "ExplanationOfBenefit-patient",
    ("ExplanationOfBenefit", "created"): "ExplanationOfBenefit-created",
}

#: Patient-data types whose ``patient`` is R4's shared ``clinical-patient``.
_CLINICAL_PATIENT = (
    "Encounter",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
    "MedicationRequest",
    "CarePlan",
    "Goal",
    "CareTeam",
    "ServiceRequest",
    "ImagingStudy",
    "DocumentReference",
)
#: Types whose ``subject`` is R4's ``<type>-subject``.
_SUBJECT = tuple(
    name for name in _CLINICAL_PATIENT if name not in ("Immunization", "AllergyIntolerance")
)
#: Types whose ``status`` is R4's ``<type>-status``.
_STATUS = (
    "Encounter",
    "Appointment",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "Immunization",
    "MedicationRequest",
    "CarePlan",
    "CareTeam",
    "ServiceRequest",
    "ImagingStudy",
    "DocumentReference",
    "Coverage",
    "Claim",
    "ExplanationOfBenefit",
)
#: (type, name) → the id of the R4 SearchParameter (``http://hl7.org/fhir/SearchParameter/<id>``).
STANDARD: Mapping[tuple[str, str], str] = {
    **_NAMED,
    **{(name, "patient"): "clinical-patient" for name in _CLINICAL_PATIENT},
    **{(name, "subject"): f"{name}-subject" for name in _SUBJECT},
    **{(name, "status"): f"{name}-status" for name in _STATUS},
}

#: (type, name) → what CareVault's own parameter matches, and R4's name for it if any.
OWN: Mapping[tuple[str, str], str] = {
    ("Organization", "name"): (
        "Organization.name (R4's name also matches alias, which is not indexed)"
    ),
    ("Location", "name"): "Location.name (R4's name also matches alias, which is not indexed)",
    ("Encounter", "code"): "Encounter.type (R4's name: type)",
    ("Appointment", "code"): "Appointment.serviceType (R4's name: service-type)",
    ("Condition", "date"): (
        "Condition.onsetDateTime, onsetPeriod or recordedDate, any of them (R4 has "
        "onset-date, served, and recorded-date, and no date)"
    ),
    ("Observation", "date"): (
        "Observation.effective[x] as dateTime, Period or instant (R4's date, "
        "clinical-date, also matches effectiveTiming, which is not indexed)"
    ),
    ("Immunization", "code"): "Immunization.vaccineCode (R4's name: vaccine-code)",
    ("AllergyIntolerance", "code"): (
        "AllergyIntolerance.code (R4's code, clinical-code, also matches "
        "reaction.substance, which is not indexed)"
    ),
    ("MedicationRequest", "date"): (
        "MedicationRequest.authoredOn (R4's name: authoredon; R4's date means "
        "dosageInstruction.timing.event)"
    ),
    ("CarePlan", "code"): "CarePlan.category (R4's name: category)",
    ("Goal", "code"): "Goal.description (R4 has no parameter for it)",
    ("Goal", "date"): "Goal.startDate (R4's name: start-date)",
    ("CareTeam", "code"): "CareTeam.category (R4's name: category)",
    ("ServiceRequest", "date"): (
        "ServiceRequest.occurrenceDateTime, occurrencePeriod or authoredOn, any of them "
        "(R4 has occurrence and authored, and no date)"
    ),
    ("ServiceRequest", "occurrence"): (
        "ServiceRequest.occurrenceDateTime or occurrencePeriod (R4's occurrence also "
        "matches occurrenceTiming, which is not indexed)"
    ),
    ("ImagingStudy", "code"): (
        "ImagingStudy.modality, the study's list (R4's modality matches series.modality)"
    ),
    ("ImagingStudy", "date"): "ImagingStudy.started (R4's name: started)",
    ("DocumentReference", "code"): "DocumentReference.type (R4's name: type)",
    ("Coverage", "code"): "Coverage.type (R4's name: type)",
    ("Coverage", "date"): "Coverage.period (R4 has no parameter for it)",
    ("Claim", "code"): "Claim.type (R4 has no parameter for it)",
    ("Claim", "date"): "Claim.created (R4's name: created)",
    ("ExplanationOfBenefit", "code"): "ExplanationOfBenefit.type (R4 has no parameter for it)",
    ("ExplanationOfBenefit", "date"): "ExplanationOfBenefit.created (R4's name: created)",
}

_SPEC = "http://hl7.org/fhir/SearchParameter/"


def definition(type_name: str, name: str) -> str | None:
    """The canonical URL of the R4 SearchParameter ``name`` is on ``type_name``, or None
    for a parameter of CareVault's own."""
    found = STANDARD.get((type_name, name))
    return None if found is None else _SPEC + found


def documentation(type_name: str, name: str) -> str | None:
    """What a parameter of CareVault's own matches, for its CapabilityStatement entry."""
    found = OWN.get((type_name, name))
    return None if found is None else "CareVault's own parameter: matches " + found
