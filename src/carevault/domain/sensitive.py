"""Codes that make a clinical record extra-sensitive (DESIGN.md: sensitive_clinical).

Mental health, HIV and sexual health, reproductive health, genetics and
substance use. A record carrying any of these codes, or a restricted
confidentiality label, is sensitive_clinical rather than clinical.
"""

from __future__ import annotations

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

# fmt: off
SENSITIVE_CODES: dict[str, frozenset[str]] = {
    SNOMED: frozenset({
        # mental health
        "35489007", "370143000", "36923009", "197480006", "21897009", "69322001", "58214004",
        "13746004", "191736004", "47505003", "192080009", "73595000", "310495003", "231504006",
        "386810004", "228557008",
        # HIV and sexual health
        "86406008", "165816005", "62479008", "76272004", "186692009", "15628003", "240589008",
        # reproductive health and pregnancy
        "77386006", "72892002", "169826009", "237240001", "386639001", "13197004", "169553002",
        "268460000", "199745000",
        # substance use
        "7200002", "66590003", "191816009", "26416006", "5602001", "228279004",
        # genetics
        "405824009", "167271000",
    }),
    LOINC: frozenset({
        "44249-1", "44261-6", "55757-9", "69737-5", "70274-6", "89204-2",  # PHQ, GAD, AUDIT
        "75622-1", "7918-6", "56888-1", "25836-8", "68961-2",  # HIV tests
        "2106-3", "19080-1", "21198-7",  # pregnancy tests (hCG)
        "72133-2", "11778-8",  # DAST, EDD
    }),
}
# fmt: on

#: ICD-10 chapters and blocks whose codes are sensitive, by prefix.
SENSITIVE_ICD10_PREFIXES = ("F", "B20", "B21", "B22", "B23", "B24", "Z21", "O", "Z3", "A5", "A6")

#: Confidentiality labels (v3-Confidentiality) that mark a record restricted.
RESTRICTED_LABELS = frozenset({"R", "V"})


def is_sensitive_code(system: str | None, code: str) -> bool:
    if system == ICD10:
        return code.upper().startswith(SENSITIVE_ICD10_PREFIXES)
    return code in SENSITIVE_CODES.get(system or "", frozenset())
