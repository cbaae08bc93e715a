"""Codes that make a clinical record extra-sensitive (DESIGN.md: sensitive_clinical).

Mental health, HIV and sexual health, reproductive health, genetics and
substance use. A record carrying any of these codes, or a restricted
confidentiality label, is sensitive_clinical rather than clinical; so is an element of
a visit, a claim or a coverage that carries one (``fhir/categories.py``), such as a
Coverage typed as an HIV programme (v3 ActCode ``HIVAIDS``).

A code system has many spellings in the records clinics send: ICD-10 and its national
modifications (``icd-10-cm``, ``icd-10-uk``), SNOMED CT, LOINC and v3 ActCode by their
OIDs (``urn:oid:2.16.840.1.113883.6.96``), ``https`` for ``http``, a trailing slash, another
letter case. Each is brought to one name before the lists are asked (``canonical_system``):
a spelling the lists did not know made an HIV diagnosis an ordinary one. A code sent
with no system at all is judged against every list, as if from each (fail closed).
"""

from __future__ import annotations

import re
from functools import lru_cache

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: WHO's Anatomical Therapeutic Chemical classification, in which claims bill medicines.
ATC = "http://www.whocc.no/atc"

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
    # The coverage types (R4 ValueSet coverage-type: v3 _ActCoverageTypeCode) that name
    # a programme or policy for one of the conditions above: a Coverage typed so tells
    # billing what the patient's records would. Not the rest of the value set: dental,
    # drug (prescriptions, not substance use), disease-specific and public health
    # programmes (no condition named), women's cancer detection, end renal, long-term
    # care, disability, crime victim, indigenous peoples, employee assistance: none
    # names a condition of these categories.
    V3_ACT_CODE: frozenset({
        "HIVAIDS",  # HIV-AIDS program
        "MENTPRG", "MENTPOL",  # mental health program, mental health policy
        "SUBPRG", "SUBPOL",  # substance use program, substance use policy
    }),
}
# fmt: on

#: ICD-10 chapters and blocks whose codes are sensitive, by prefix.
SENSITIVE_ICD10_PREFIXES = ("F", "B20", "B21", "B22", "B23", "B24", "Z21", "O", "Z3", "A5", "A6")

#: Security labels that mark a record sensitive: the confidentiality codes for restricted
#: (v3-Confidentiality ``R``, ``V``), and the sensitivity policies of v3 ActCode
#: (R4's InformationSensitivityPolicy value set, ``meta.security``) that name one of the
#: categories above: substance use (``ETH``, ``SUD``, ``OPIOIDUD``), genetics (``GDIS``),
#: HIV and sexual health (``HIV``, ``STD``, ``SEX``, and sexual violence: ``SDV``), mental
#: health (``BH``, ``MH``, ``PSY``, ``PSYTHPN``, ``EMOTDIS``). A record another system
#: labelled "HIV" without a code the lists know is as sensitive as one coded so. Those
#: of the set that name other things (sickle cell, cognitive or developmental
#: disability, taboo, ...) are a local policy's, not labels of these categories.
RESTRICTED_LABELS = frozenset(
    {
        "R",
        "V",
        "ETH",
        "SUD",
        "OPIOIDUD",
        "GDIS",
        "HIV",
        "STD",
        "SEX",
        "SDV",
        "BH",
        "MH",
        "PSY",
        "PSYTHPN",
        "EMOTDIS",
    }
)


#: ICD-10-PCS sections whose procedures are sensitive: mental health (G) and substance
#: abuse treatment (H).
SENSITIVE_ICD10_PCS_SECTIONS = ("G", "H")

#: The one name of each code system, keyed by every other spelling (``canonical_system``
#: has already lower-cased it, made it ``http`` and taken off a trailing slash).
ICD10_PCS = "http://hl7.org/fhir/sid/icd-10-pcs"
SYSTEM_ALIASES: dict[str, str] = {
    "http://snomed.info/sct": SNOMED,
    "http://snomed.info/id": SNOMED,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://loinc.org": LOINC,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.3": ICD10,  # ICD-10 (WHO)
    "urn:oid:2.16.840.1.113883.6.90": ICD10,  # ICD-10-CM
    "urn:oid:1.2.840.10008.2.16.4": ICD10,  # DICOM's name for ICD-10
    "urn:oid:2.16.840.1.113883.6.4": ICD10_PCS,
    "http://www.cms.gov/medicare/coding/icd10": ICD10_PCS,
    "http://terminology.hl7.org/codesystem/v3-actcode": V3_ACT_CODE,
    "urn:oid:2.16.840.1.113883.5.4": V3_ACT_CODE,
    "http://hl7.org/fhir/v3/actcode": V3_ACT_CODE,  # FHIR DSTU2 and STU3's name for it
}

#: ATC groups of medicines that name a condition of the sensitive categories, for a
#: claim's lines only (``fhir/codes.claim_line_sensitive``): billing read "tenofovir and
#: emtricitabine" (``J05AR03``) off a line where the claim's HIV diagnosis was cut
#: (adversary round 58). HIV antivirals (protease inhibitors, nucleoside and
#: non-nucleoside reverse transcriptase inhibitors, combinations, and the integrase,
#: fusion and entry inhibitors of ``J05AX``), antipsychotics, anxiolytics,
#: antidepressants, psychostimulants, drugs for addictive disorders (``N07B``: nicotine,
#: alcohol and opioid dependence), hormonal contraceptives and emergency contraception
#: (``G03A``, ``G03AD``), intrauterine contraceptives (``G02B``), abortifacients
#: (``G02AD06``, ``G03XB01``) and fertility gonadotropins (``G03GA``). A hepatitis B
#: antiviral among ``J05AF`` is withheld as well: failing closed. Not the medicine a
#: pharmacist dispenses (a prescription is medication, which pharmacists read): a
#: claim's line only.
SENSITIVE_ATC_PREFIXES = (
    "J05AE", "J05AF", "J05AG", "J05AR", "J05AX07", "J05AX08", "J05AX09", "J05AX11",
    "J05AX12", "J05AX23", "N05A", "N05B", "N06A", "N06B", "N07B", "G03A", "G02B",
    "G02AD06", "G03XB01", "G03GA",
)  # fmt: skip
#: ATC as ``canonical_system`` spells it (kept out of ``SYSTEM_ALIASES``, whose digest
#: marks health records: no health record is judged by a medicine, so none is marked
#: again for it).
_ATC_SPELLINGS = frozenset({ATC, "urn:oid:2.16.840.1.113883.6.73"})
_ATC_CODE = re.compile(r"[A-Z]\d{2}[A-Z]{2}\d{2}")

#: Names, not URIs (wrong in FHIR, yet what systems send: ``SNOMED CT``, UMLS's
#: ``SNOMEDCT_US``, HL7 v2's ``SCT``, ``LN``, ``I10``; adversary round 46 and the review
#: after it), judged on the name's letters and digits alone (``_named``): a name holding
#: ``snomed`` or ``loinc``, or starting ``icd10``, or one of HL7 v2's short names, is that
#: system; a local system (``http://clinic.example/codes``) stays unknown.
_SHORT_NAMES = {"sct": SNOMED, "snm": SNOMED, "snm3": SNOMED, "snt": SNOMED, "ln": LOINC,
                "lnc": LOINC, "i10": ICD10, "i10c": ICD10, "i10p": ICD10_PCS}  # fmt: skip

#: A SNOMED CT edition's URI (``http://snomed.info/sct/[module]``, and with
#: ``/version/[date]``) belongs in ``Coding.version``; sent as the system, it is SNOMED CT.
_SNOMED_EDITION = SNOMED + "/"

#: Every national modification of ICD-10 FHIR names (``icd-10-cm``, ``icd-10-nl``, ...)
#: and the WHO's own release URIs are ICD-10 diagnoses; ``icd-10-pcs`` is procedures.
_ICD10_STEMS = ("http://hl7.org/fhir/sid/icd-10", "http://id.who.int/icd/release/10")

#: The shape of an ICD-10 diagnosis code (``F32``, ``F32.9``, ``b20``): a code with no
#: system is judged as one only if it has this shape.
_ICD10_CODE = re.compile(r"[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?")

#: Version of the rules beyond the lists themselves (the spellings above, codes with
#: no system): part of the search index's sensitivity marker (fhir/indexing.py), so a
#: change makes the markers written before it untrusted until ``carevault reindex``.
RULES_VERSION = (
    "4:aliases,no-system,pcs,v3-any-case,meta-codes,names,editions,security-label,any-name"
)


@lru_cache(maxsize=1024)
def canonical_system(system: str | None) -> str | None:
    """The one name of ``system`` (None stays None: a code with no system). Remembered:
    every coding of every health record written asks, and records use few systems."""
    if system is None:
        return None
    spelt = system.strip().lower().rstrip("/")
    if spelt.startswith("https://"):
        spelt = "http://" + spelt.removeprefix("https://")
    named = SYSTEM_ALIASES.get(spelt)
    if named is not None:
        return named
    if spelt == ICD10_PCS:
        return ICD10_PCS
    if spelt.startswith(_ICD10_STEMS):
        return ICD10
    if spelt.startswith(_SNOMED_EDITION):
        return SNOMED
    return _named(spelt) or spelt


def _named(spelt: str) -> str | None:
    """The code system a name (not a URI) says (see ``_SHORT_NAMES``), if any."""
    compact = "".join(character for character in spelt if character.isalnum())
    if "snomed" in compact:
        return SNOMED
    if "loinc" in compact:
        return LOINC
    if compact.startswith("icd10pcs"):
        return ICD10_PCS
    if compact.startswith("icd10"):
        return ICD10
    return _SHORT_NAMES.get(compact)


_V3_CODES = SENSITIVE_CODES[V3_ACT_CODE]


def _icd10_sensitive(code: str) -> bool:
    return code.startswith(SENSITIVE_ICD10_PREFIXES)


# Remembered: every coding of every health record written asks, and the same codes of
# the same few systems come back record after record.
@lru_cache(maxsize=1 << 16)
def is_sensitive_code(system: str | None, code: str) -> bool:
    """Whether ``code`` of ``system`` (any spelling; None: no system given) is sensitive."""
    named = canonical_system(system)
    plain = code.strip()
    upper = plain.upper()
    if named is None:
        return (
            any(plain in codes for codes in SENSITIVE_CODES.values())
            or upper in _V3_CODES
            or (_ICD10_CODE.fullmatch(upper) is not None and _icd10_sensitive(upper))
        )
    if named == ICD10:
        return _icd10_sensitive(upper)
    if named == ICD10_PCS:
        return upper.startswith(SENSITIVE_ICD10_PCS_SECTIONS)
    if named == V3_ACT_CODE:
        # v3 codes are upper case; ``hivaids`` is no other code of the system.
        return upper in _V3_CODES
    return plain in SENSITIVE_CODES.get(named, frozenset())


#: The confidentiality levels among ``RESTRICTED_LABELS`` (v3-Confidentiality restricted
#: and very restricted): an instruction to protect a record, naming no condition.
CONFIDENTIALITY_LEVELS = frozenset({"R", "V"})


def is_confidentiality_level(code: object) -> bool:
    """Whether a label's ``code`` is a confidentiality level (``CONFIDENTIALITY_LEVELS``),
    which names no condition, unlike ``HIV`` or ``PSY``."""
    return isinstance(code, str) and code.strip().upper() in CONFIDENTIALITY_LEVELS


def is_restricted_label(code: object) -> bool:
    """Whether a security label's ``code`` marks a record sensitive (``RESTRICTED_LABELS``;
    ``r`` as ``R``). Judged by the code alone, whatever system it names: a label is an
    instruction to protect, and one misspelt is protected all the same (fail closed)."""
    return isinstance(code, str) and code.strip().upper() in RESTRICTED_LABELS


@lru_cache(maxsize=1 << 12)
def is_sensitive_medicine(system: str | None, code: str) -> bool:
    """Whether ``code`` names a medicine of ``SENSITIVE_ATC_PREFIXES``: of ATC (any
    spelling), or with no system and shaped as a whole ATC code (fail closed)."""
    named = canonical_system(system)
    upper = code.strip().upper()
    if named is None:
        return _ATC_CODE.fullmatch(upper) is not None and upper.startswith(SENSITIVE_ATC_PREFIXES)
    return named in _ATC_SPELLINGS and upper.startswith(SENSITIVE_ATC_PREFIXES)
