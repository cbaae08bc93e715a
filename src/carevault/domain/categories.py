"""Data categories of DESIGN.md: every FHIR element maps to one of them.

Scope reports, risk scores, notices and the access policy all speak in these
categories, so they are defined once here.
"""

from __future__ import annotations

from enum import StrEnum


class DataCategory(StrEnum):
    IDENTITY = "identity"
    CONTACT = "contact"
    DEMOGRAPHIC = "demographic"
    VISIT = "visit"
    GOVERNMENT_ID = "government_id"
    FINANCIAL = "financial"
    CLINICAL = "clinical"
    MEDICATION = "medication"
    SENSITIVE_CLINICAL = "sensitive_clinical"
    CREDENTIALS = "credentials"


#: ENISA-style data score of each category (DESIGN.md, "Data categories").
BASE_SCORE: dict[DataCategory, int] = {
    DataCategory.IDENTITY: 1,
    DataCategory.CONTACT: 1,
    DataCategory.DEMOGRAPHIC: 1,
    DataCategory.VISIT: 2,
    DataCategory.GOVERNMENT_ID: 3,
    DataCategory.FINANCIAL: 3,
    DataCategory.CLINICAL: 4,
    DataCategory.MEDICATION: 4,
    DataCategory.SENSITIVE_CLINICAL: 4,
    DataCategory.CREDENTIALS: 4,
}

#: Categories that say something about a person's health.
HEALTH_CATEGORIES = frozenset(
    {DataCategory.CLINICAL, DataCategory.MEDICATION, DataCategory.SENSITIVE_CLINICAL}
)
