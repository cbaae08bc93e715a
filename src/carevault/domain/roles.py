"""Staff roles and what each may read and write, by data category.

The table is the access policy's core: a reader can check every cell. Health
categories (clinical, medication, sensitive clinical) additionally need a care
relationship with the patient, or a break-the-glass grant; the other
categories need the patient to belong to one of the person's clinics.
"""

from __future__ import annotations

from enum import StrEnum

from carevault.domain.categories import DataCategory as C


class Role(StrEnum):
    PHYSICIAN = "physician"
    NURSE = "nurse"
    PHARMACIST = "pharmacist"
    FRONT_DESK = "front_desk"
    BILLING = "billing"
    CLINIC_MANAGER = "clinic_manager"
    PRIVACY_OFFICER = "privacy_officer"
    INTEGRATION = "integration"


class Right(StrEnum):
    READ = "read"
    WRITE = "write"


R = frozenset({Right.READ})
W = frozenset({Right.WRITE})
RW = frozenset({Right.READ, Right.WRITE})

#: role → category → rights. A missing category means no access at all.
# fmt: off
RIGHTS: dict[Role, dict[C, frozenset[Right]]] = {
    Role.PHYSICIAN: {C.IDENTITY: RW, C.CONTACT: RW, C.DEMOGRAPHIC: RW, C.VISIT: RW,
                     C.GOVERNMENT_ID: R, C.CLINICAL: RW, C.MEDICATION: RW,
                     C.SENSITIVE_CLINICAL: RW},
    Role.NURSE: {C.IDENTITY: RW, C.CONTACT: RW, C.DEMOGRAPHIC: RW, C.VISIT: RW,
                 C.GOVERNMENT_ID: R, C.CLINICAL: RW, C.MEDICATION: R,
                 C.SENSITIVE_CLINICAL: R},
    Role.PHARMACIST: {C.IDENTITY: R, C.CONTACT: R, C.DEMOGRAPHIC: R, C.VISIT: R,
                      C.CLINICAL: R, C.MEDICATION: RW},
    # Front desk registers patients with their HKID but cannot read HKIDs back:
    # they find a patient by the number the patient shows them, but cannot harvest numbers.
    Role.FRONT_DESK: {C.IDENTITY: RW, C.CONTACT: RW, C.DEMOGRAPHIC: RW, C.VISIT: RW,
                      C.GOVERNMENT_ID: W},
    Role.BILLING: {C.IDENTITY: R, C.FINANCIAL: RW},
    Role.CLINIC_MANAGER: {C.IDENTITY: R, C.CONTACT: R, C.DEMOGRAPHIC: R, C.VISIT: RW},
    # Audit and incidents; identity and contact only, to reach patients after a breach.
    Role.PRIVACY_OFFICER: {C.IDENTITY: R, C.CONTACT: R},
    # Service accounts: further narrowed by the client app's SMART scopes.
    Role.INTEGRATION: {C.IDENTITY: RW, C.CONTACT: RW, C.DEMOGRAPHIC: RW, C.VISIT: RW,
                       C.GOVERNMENT_ID: RW, C.FINANCIAL: RW, C.CLINICAL: RW,
                       C.MEDICATION: RW},
}
# fmt: on

#: Roles that treat patients: they need a care relationship for health data and
#: may break the glass.
CLINICIANS = frozenset({Role.PHYSICIAN, Role.NURSE, Role.PHARMACIST})

#: Roles whose reach is the whole group, whatever clinics they are listed in.
GROUP_WIDE = frozenset({Role.PRIVACY_OFFICER, Role.BILLING})

#: Roles that change or delete a clinic's own record (the Organization of a clinic of
#: the group: the name and number apps show for it), besides the system (seeding,
#: imports): an integration app that keeps the directory. No staff account does, though
#: its staff keep the rest of its directory (locations, schedules, slots): a desk
#: renaming its own clinic "Closed - call +852 …" is phishing the clinic's patients.
CLINIC_RECORD_WRITERS = frozenset({Role.INTEGRATION})


class BreakGlassReason(StrEnum):
    """The fixed list a clinician picks from when breaking the glass."""

    EMERGENCY_TREATMENT = "emergency-treatment"
    PATIENT_TRANSFERRED = "patient-transferred"
    COVERING_COLLEAGUE = "covering-for-colleague"
    URGENT_MEDICATION_REVIEW = "urgent-medication-review"
    PATIENT_REQUEST_IN_PERSON = "patient-request-in-person"
