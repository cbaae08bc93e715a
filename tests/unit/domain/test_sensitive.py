"""A sensitive code is recognised under every spelling of its code system: ICD-10 and its
national modifications, SNOMED CT, LOINC and v3 ActCode by OID, https, a trailing slash,
another letter case; a code sent with no system is judged against every list."""

from __future__ import annotations

import pytest

from carevault.domain.categories import DataCategory as C
from carevault.domain.sensitive import (
    ICD10,
    LOINC,
    SNOMED,
    V3_ACT_CODE,
    canonical_system,
    is_restricted_label,
    is_sensitive_code,
)
from carevault.fhir.categories import main_category
from carevault.fhir.registry import RESOURCE_TYPES

HIV_SNOMED = "86406008"
HIV_TEST_LOINC = "75622-1"


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("http://hl7.org/fhir/sid/icd-10", "B20"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "F32.9"),
        ("http://hl7.org/fhir/sid/icd-10-uk", "f32.9"),
        ("https://hl7.org/fhir/sid/icd-10-nl/", " Z21 "),
        ("urn:oid:2.16.840.1.113883.6.90", "B20.1"),
        ("urn:oid:2.16.840.1.113883.6.3", "O09"),
        ("HTTP://HL7.ORG/fhir/sid/ICD-10", "A51.0"),
        ("http://snomed.info/sct", HIV_SNOMED),
        ("https://snomed.info/sct/", HIV_SNOMED),
        ("urn:oid:2.16.840.1.113883.6.96", HIV_SNOMED),
        ("URN:OID:2.16.840.1.113883.6.96", HIV_SNOMED),
        # An edition's URI, or the system's name, where its URI belongs.
        ("http://snomed.info/sct/900000000000207008", HIV_SNOMED),
        ("http://snomed.info/sct/900000000000207008/version/20250101", HIV_SNOMED),
        ("SNOMED", HIV_SNOMED),
        ("SNOMED CT", HIV_SNOMED),
        ("LOINC", HIV_TEST_LOINC),
        ("ICD-10", "F32.9"),
        ("SNOMEDCT_US", HIV_SNOMED),  # UMLS's name
        ("snomed.info/sct", HIV_SNOMED),  # the URI without its scheme
        ("SCT", HIV_SNOMED),  # HL7 v2's names
        ("LN", HIV_TEST_LOINC),
        ("LNC", HIV_TEST_LOINC),  # UMLS's name for LOINC
        ("SNM3", HIV_SNOMED),
        ("I10", "B20"),
        ("ICD 10-CM", "F32.9"),
        ("ICD10PCS", "GZ3ZZZZ"),
        ("http://loinc.org/", HIV_TEST_LOINC),
        ("https://loinc.org", HIV_TEST_LOINC),
        ("urn:oid:2.16.840.1.113883.6.1", HIV_TEST_LOINC),
        ("http://hl7.org/fhir/sid/icd-10-pcs", "GZ3ZZZZ"),
        (None, "B20"),
        (None, "f32.9"),
        (None, HIV_SNOMED),
        (None, HIV_TEST_LOINC),
        # Coverage types naming an HIV, mental health or substance use programme.
        ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIVAIDS"),
        ("https://terminology.hl7.org/CodeSystem/v3-ActCode/", "MENTPRG"),
        ("urn:oid:2.16.840.1.113883.5.4", "SUBPRG"),
        ("http://hl7.org/fhir/v3/ActCode", "MENTPOL"),
        ("HTTP://TERMINOLOGY.HL7.ORG/CodeSystem/v3-ActCode", "subpol"),
        (None, "HIVAIDS"),
        (None, " mentprg"),
    ],
)
def test_a_sensitive_code_is_recognised_under_any_spelling_of_its_system(
    system: str | None, code: str
) -> None:
    assert is_sensitive_code(system, code)


@pytest.mark.parametrize(
    ("system", "code"),
    [
        ("http://hl7.org/fhir/sid/icd-10-cm", "J10"),
        ("urn:oid:2.16.840.1.113883.6.96", "38341003"),
        ("http://hl7.org/fhir/sid/icd-10-pcs", "0DTJ4ZZ"),
        ("http://example.org/local", "B20"),
        ("http://clinic.example/icd10-like", "J10"),
        ("ICD10PCS", "0DTJ4ZZ"),
        (None, "J10.1"),
        (None, "OK"),
        (None, "final"),
        # The rest of the coverage types name no condition of these categories (a drug
        # policy pays for prescriptions), and v3 ActCode's other codes are not programmes.
        (V3_ACT_CODE, "EHCPOL"),
        (V3_ACT_CODE, "PUBLICPOL"),
        (V3_ACT_CODE, "DRUGPOL"),
        (V3_ACT_CODE, "DISEASEPRG"),
        (V3_ACT_CODE, "ENDRENAL"),
        (V3_ACT_CODE, "AMB"),
        ("http://example.org/local", "HIVAIDS"),
        (None, "PPO"),
    ],
)
def test_an_ordinary_code_is_not_sensitive(system: str | None, code: str) -> None:
    assert not is_sensitive_code(system, code)


def test_each_spelling_has_one_name() -> None:
    assert canonical_system("https://snomed.info/sct/") == SNOMED
    assert canonical_system("http://snomed.info/sct/32506021000036107/version/2025") == SNOMED
    assert canonical_system("SNOMED-CT") == SNOMED
    assert canonical_system("urn:oid:2.16.840.1.113883.6.1") == LOINC
    assert canonical_system("http://hl7.org/fhir/sid/icd-10-de") == ICD10
    assert canonical_system("urn:oid:2.16.840.1.113883.5.4") == V3_ACT_CODE
    assert canonical_system("http://terminology.hl7.org/codesystem/v3-actcode") == V3_ACT_CODE
    assert canonical_system(None) is None


def test_a_restricted_label_is_recognised_in_any_case() -> None:
    assert is_restricted_label("R") and is_restricted_label(" v")
    assert not is_restricted_label("N") and not is_restricted_label(None)


@pytest.mark.parametrize(
    "coding",
    [
        {"code": "B20"},
        {"system": "urn:oid:2.16.840.1.113883.6.96", "code": HIV_SNOMED},
        {"system": "https://hl7.org/fhir/sid/icd-10-cm/", "code": "b20"},
    ],
)
def test_a_condition_coded_so_is_sensitive_clinical(coding: dict[str, str]) -> None:
    condition = {"resourceType": "Condition", "code": {"coding": [coding]}}

    assert main_category(RESOURCE_TYPES["Condition"], condition) is C.SENSITIVE_CLINICAL


def test_a_restricted_label_in_lower_case_makes_a_record_sensitive() -> None:
    condition = {"resourceType": "Condition", "meta": {"security": [{"code": "r"}]}}

    assert main_category(RESOURCE_TYPES["Condition"], condition) is C.SENSITIVE_CLINICAL


@pytest.mark.parametrize("code", ["HIV", "ETH", "PSY", "sud", "GDIS", "SDV"])
def test_a_sensitivity_policy_label_makes_a_record_sensitive(code: str) -> None:
    """An Observation another system labelled with a v3 ActCode sensitivity policy (its
    code text-only, nothing the code lists know) is sensitive; a label of another
    policy (sickle cell, taboo) or an ordinary confidentiality is not."""
    label = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": code}
    reading = {"resourceType": "Observation", "code": {"text": "result"}}
    labelled = {**reading, "meta": {"security": [label]}}

    assert main_category(RESOURCE_TYPES["Observation"], labelled) is C.SENSITIVE_CLINICAL
    for other in ("SCA", "TBOO", "N"):
        relabelled = {**reading, "meta": {"security": [{**label, "code": other}]}}
        assert main_category(RESOURCE_TYPES["Observation"], relabelled) is C.CLINICAL


def test_the_index_markers_name_these_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Markers written under other rules of what is sensitive are not trusted (the
    records are opened and checked until ``carevault reindex``): a change of spellings
    or of the rules' version changes the digest the markers carry."""
    from carevault.domain import sensitive
    from carevault.fhir import indexing

    before = indexing._rules_digest()
    monkeypatch.setattr(sensitive, "RULES_VERSION", "another")
    assert indexing._rules_digest() != before
    monkeypatch.undo()
    monkeypatch.setattr(sensitive, "SYSTEM_ALIASES", {})
    assert indexing._rules_digest() != before


def test_markers_written_before_the_coverage_programmes_were_listed_are_not_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The release that lists the v3 programme codes writes markers of another digest:
    those written before are untrusted (opened and checked) until ``carevault reindex``."""
    from carevault.domain import sensitive
    from carevault.fhir import indexing

    now = indexing._rules_digest()
    earlier = {k: v for k, v in sensitive.SENSITIVE_CODES.items() if k != V3_ACT_CODE}
    monkeypatch.setattr(sensitive, "SENSITIVE_CODES", earlier)
    assert indexing._rules_digest() != now
