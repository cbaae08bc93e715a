"""Code tables of the synthetic clinic group, in one place so a clinician can review them.

Systems: SNOMED CT for specialities, encounter types, conditions, procedures, allergies
and care plans; LOINC for observations and reports; WHO ATC for medicines (the level-5
substance, with the product in the text); CVX for vaccines; UCUM for units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ATC = "http://www.whocc.no/atc"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
BCP47 = "urn:ietf:bcp:47"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#: CareVault's own fee schedule: there is no standard Hong Kong private-practice code set.
FEE_SCHEDULE = "http://carevault.hk/CodeSystem/fee-item"


@dataclass(frozen=True, slots=True)
class Concept:
    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}

    def concept(self, text: str | None = None) -> dict[str, Any]:
        return {"coding": [self.coding()], "text": text or self.display}


def _sct(code: str, display: str) -> Concept:
    return Concept(SNOMED, code, display)


def _loinc(code: str, display: str) -> Concept:
    return Concept(LOINC, code, display)


def _atc(code: str, display: str) -> Concept:
    return Concept(ATC, code, display)


def _cvx(code: str, display: str) -> Concept:
    return Concept(CVX, code, display)


# Practice-setting (specialty) codes from the FHIR c80-practice-codes value set; paediatrics
# uses the wider SNOMED "Pediatric specialty" concept. Physiotherapy maps to Rehabilitation.
SPECIALITIES: dict[str, Concept] = {
    "general_practice": _sct("394814009", "General practice"),
    "paediatrics": _sct("394537008", "Pediatric specialty"),
    "womens_health": _sct("394585009", "Obstetrics and gynecology"),
    "mental_health": _sct("394587001", "Psychiatry"),
    "physiotherapy": _sct("394602003", "Rehabilitation"),
    "dental": _sct("408444009", "Dental-General dental practice"),
    "dermatology": _sct("394582007", "Dermatology"),
    "ophthalmology": _sct("394594003", "Ophthalmology"),
}
SPECIALITY_LABELS: dict[str, tuple[str, str]] = {
    "general_practice": ("General practice", "普通科"),
    "paediatrics": ("Paediatrics", "兒科"),
    "womens_health": ("Women's health", "婦女健康"),
    "mental_health": ("Mental health", "精神健康"),
    "physiotherapy": ("Physiotherapy", "物理治療"),
    "dental": ("Dental", "牙科"),
    "dermatology": ("Dermatology", "皮膚科"),
    "ophthalmology": ("Ophthalmology", "眼科"),
}
#: Minutes per appointment slot, by speciality.
SLOT_MINUTES: dict[str, int] = {
    "general_practice": 15, "paediatrics": 15, "womens_health": 20, "mental_health": 45,
    "physiotherapy": 30, "dental": 30, "dermatology": 20, "ophthalmology": 20,
}  # fmt: skip
#: What the clinician of a speciality is called and qualified with, and who registers them.
QUALIFICATIONS: dict[str, tuple[str, ...]] = {
    "general_practice": ("MBBS (HK)", "FHKAM (Family Medicine)"),
    "paediatrics": ("MBChB (CUHK)", "FHKAM (Paediatrics)"),
    "womens_health": ("MBBS (HK)", "FHKAM (Obstetrics and Gynaecology)"),
    "mental_health": ("MBChB (CUHK)", "FHKAM (Psychiatry)"),
    "physiotherapy": ("BSc (Hons) Physiotherapy (PolyU)",),
    "dental": ("BDS (HK)",),
    "dermatology": ("MBBS (HK)", "FHKAM (Medicine)"),
    "ophthalmology": ("MBChB (CUHK)", "FHKAM (Ophthalmology)"),
    "nurse": ("Registered Nurse (General), Nursing Council of Hong Kong",),
    "pharmacist": ("BPharm (CUHK)",),
}
#: Registration identifier systems, value prefixes and digits, by kind of clinician.
REGISTRATION: dict[str, tuple[str, str, int]] = {
    "medical": ("http://carevault.hk/sid/mchk-registration", "M", 5),
    "dental": ("http://carevault.hk/sid/dchk-registration", "D", 5),
    "physiotherapy": ("http://carevault.hk/sid/physiotherapists-board-registration", "PT", 5),
    "nurse": ("http://carevault.hk/sid/nchk-registration", "RN", 6),
    "pharmacist": ("http://carevault.hk/sid/ppb-registration", "P", 5),
}
PRACTITIONER_ROLE = "http://terminology.hl7.org/CodeSystem/practitioner-role"
ROLE_CODES: dict[str, Concept] = {
    "physician": Concept(PRACTITIONER_ROLE, "doctor", "Doctor"),
    "nurse": Concept(PRACTITIONER_ROLE, "nurse", "Nurse"),
    "pharmacist": Concept(PRACTITIONER_ROLE, "pharmacist", "Pharmacist"),
}

ENCOUNTER_TYPES: dict[str, Concept] = {
    "check_up": _sct("185349003", "Encounter for check up"),
    "follow_up": _sct("390906007", "Follow-up encounter"),
    "symptom": _sct("185345009", "Encounter for symptom"),
    "problem": _sct("185347001", "Encounter for problem"),
    "well_child": _sct("410620009", "Well child visit"),
    "prenatal_initial": _sct("424441002", "Prenatal initial visit"),
    "prenatal": _sct("424619006", "Prenatal visit"),
    "dental": _sct("34043003", "Dental consultation and report"),
    "vaccination": _sct("33879002", "Administration of vaccine to produce active immunity"),
}

CONDITIONS: dict[str, Concept] = {
    "hypertension": _sct("59621000", "Essential hypertension"),
    "diabetes": _sct("44054006", "Diabetes mellitus type 2"),
    "prediabetes": _sct("15777000", "Prediabetes"),
    "hyperlipidaemia": _sct("55822004", "Hyperlipidemia"),
    "obesity": _sct("414916001", "Obesity"),
    "asthma": _sct("195967001", "Asthma"),
    "allergic_rhinitis": _sct("61582004", "Allergic rhinitis"),
    "gerd": _sct("235595009", "Gastroesophageal reflux disease"),
    "uri": _sct("54150009", "Upper respiratory infection"),
    "pharyngitis": _sct("195662009", "Acute viral pharyngitis"),
    "sinusitis": _sct("444814009", "Viral sinusitis"),
    "bronchitis": _sct("10509002", "Acute bronchitis"),
    "influenza": _sct("6142004", "Influenza"),
    "otitis_media": _sct("65363002", "Otitis media"),
    "gastroenteritis": _sct("25374005", "Gastroenteritis"),
    "uti": _sct("68566005", "Urinary tract infectious disease"),
    "low_back_pain": _sct("279039007", "Low back pain"),
    "neck_pain": _sct("81680005", "Neck pain"),
    "knee_osteoarthritis": _sct("239873007", "Osteoarthritis of knee"),
    "dental_caries": _sct("80967001", "Dental caries"),
    "gingivitis": _sct("66383009", "Gingivitis"),
    "atopic_dermatitis": _sct("24079001", "Atopic dermatitis"),
    "acne": _sct("88616000", "Acne vulgaris"),
    "psoriasis": _sct("9014002", "Psoriasis"),
    "cataract": _sct("193570009", "Cataract"),
    "myopia": _sct("57190000", "Myopia"),
    "glaucoma": _sct("23986001", "Glaucoma"),
    "conjunctivitis": _sct("9826008", "Conjunctivitis"),
    "pregnancy": _sct("72892002", "Normal pregnancy"),
    "contraception": _sct("13197004", "Contraception"),
    "depression": _sct("35489007", "Depressive disorder"),
    "major_depression": _sct("36923009", "Major depression, single episode"),
    "anxiety": _sct("197480006", "Anxiety disorder"),
    "generalised_anxiety": _sct("21897009", "Generalized anxiety disorder"),
    "insomnia": _sct("193462001", "Insomnia"),
}

OBSERVATIONS: dict[str, Concept] = {
    "bp_panel": _loinc("85354-9", "Blood pressure panel with all children optional"),
    "systolic": _loinc("8480-6", "Systolic blood pressure"),
    "diastolic": _loinc("8462-4", "Diastolic blood pressure"),
    "heart_rate": _loinc("8867-4", "Heart rate"),
    "temperature": _loinc("8310-5", "Body temperature"),
    "height": _loinc("8302-2", "Body height"),
    "weight": _loinc("29463-7", "Body weight"),
    "bmi": _loinc("39156-5", "Body mass index (BMI) [Ratio]"),
    "head_circumference": _loinc("9843-4", "Head Occipital-frontal circumference"),
    "hba1c": _loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "glucose": _loinc("15074-8", "Glucose [Moles/volume] in Blood"),
    "creatinine": _loinc("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),
    "cholesterol": _loinc("14647-2", "Cholesterol [Moles/volume] in Serum or Plasma"),
    "hdl": _loinc("14646-4", "Cholesterol in HDL [Moles/volume] in Serum or Plasma"),
    "ldl": _loinc("22748-8", "Cholesterol in LDL [Moles/volume] in Serum or Plasma"),
    "triglyceride": _loinc("14927-8", "Triglyceride [Moles/volume] in Serum or Plasma"),
    "phq9": _loinc("44261-6",
                   "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
    "gad7": _loinc("70274-6",
                   "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
    "pain": _loinc("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
    "hcg_urine": _loinc("2106-3", "Choriogonadotropin (pregnancy test) [Presence] in Urine"),
    "due_date": _loinc("11778-8", "Delivery date Estimated"),
}  # fmt: skip
#: Questionnaire panels: each score is the total-score item above, a ``hasMember`` of its panel.
PANELS: dict[str, Concept] = {
    "phq9": _loinc("44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]"),
    "gad7": _loinc("69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
}
POSITIVE = _sct("10828004", "Positive")

REPORTS: dict[str, Concept] = {
    "lipid_panel": _loinc("24331-1", "Lipid 1996 panel - Serum or Plasma"),
    "diabetes_review": _loinc("11502-2", "Laboratory report"),
    "cervical_cytology": _loinc("10524-7",
                                "Microscopic observation [Identifier] in Cervix by Cyto stain"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Drug:
    concept: Concept
    product: str
    dosage: str
    quantity: int
    unit: str


def _drug(code: str, substance: str, product: str, dosage: str, quantity: int, unit: str) -> Drug:
    return Drug(_atc(code, substance), product, dosage, quantity, unit)


# fmt: off
MEDICATIONS: dict[str, Drug] = {
    "amlodipine": _drug("C08CA01", "amlodipine", "Amlodipine 5 mg tablet", "1 tablet once daily",
                        90, "tablet"),
    "losartan": _drug("C09CA01", "losartan", "Losartan 50 mg tablet", "1 tablet once daily", 90,
                      "tablet"),
    "metformin": _drug("A10BA02", "metformin", "Metformin 500 mg tablet",
                       "1 tablet twice daily with meals", 180, "tablet"),
    "gliclazide": _drug("A10BB09", "gliclazide", "Gliclazide 80 mg tablet",
                        "1 tablet once daily with breakfast", 90, "tablet"),
    "atorvastatin": _drug("C10AA05", "atorvastatin", "Atorvastatin 20 mg tablet",
                          "1 tablet once daily at night", 90, "tablet"),
    "simvastatin": _drug("C10AA01", "simvastatin", "Simvastatin 20 mg tablet",
                         "1 tablet once daily at night", 90, "tablet"),
    "salbutamol": _drug("R03AC02", "salbutamol", "Salbutamol 100 microgram inhaler",
                        "2 puffs when needed for wheeze", 1, "inhaler"),
    "budesonide": _drug("R03BA02", "budesonide", "Budesonide 200 microgram inhaler",
                        "1 puff twice daily", 1, "inhaler"),
    "sertraline": _drug("N06AB06", "sertraline", "Sertraline 50 mg tablet", "1 tablet once daily",
                        28, "tablet"),
    "escitalopram": _drug("N06AB10", "escitalopram", "Escitalopram 10 mg tablet",
                          "1 tablet once daily", 28, "tablet"),
    "zopiclone": _drug("N05CF01", "zopiclone", "Zopiclone 7.5 mg tablet",
                       "1 tablet at night when needed", 7, "tablet"),
    "amoxicillin": _drug("J01CA04", "amoxicillin", "Amoxicillin 500 mg capsule",
                         "1 capsule three times daily for 5 days", 15, "capsule"),
    "amoxicillin_clavulanate": _drug("J01CR02", "amoxicillin and beta-lactamase inhibitor",
                                     "Amoxicillin/clavulanate 625 mg tablet",
                                     "1 tablet twice daily for 7 days", 14, "tablet"),
    "paracetamol": _drug("N02BE01", "paracetamol", "Paracetamol 500 mg tablet",
                         "1-2 tablets every 6 hours when needed", 20, "tablet"),
    "paracetamol_syrup": _drug("N02BE01", "paracetamol", "Paracetamol 120 mg/5 mL syrup",
                               "weight-based dose every 6 hours when needed", 1, "bottle"),
    "ibuprofen": _drug("M01AE01", "ibuprofen", "Ibuprofen 400 mg tablet",
                       "1 tablet three times daily after meals", 15, "tablet"),
    "diclofenac_gel": _drug("M02AA15", "diclofenac", "Diclofenac 1% gel",
                            "apply thinly three times daily", 1, "tube"),
    "loratadine": _drug("R06AX13", "loratadine", "Loratadine 10 mg tablet", "1 tablet once daily",
                        10, "tablet"),
    "cetirizine": _drug("R06AE07", "cetirizine", "Cetirizine 10 mg tablet", "1 tablet once daily",
                        10, "tablet"),
    "chlorphenamine": _drug("R06AB04", "chlorphenamine", "Chlorphenamine 2 mg/5 mL syrup",
                            "5 mL three times daily", 1, "bottle"),
    "dextromethorphan": _drug("R05DA09", "dextromethorphan", "Dextromethorphan 15 mg/5 mL syrup",
                              "10 mL three times daily", 1, "bottle"),
    "omeprazole": _drug("A02BC01", "omeprazole", "Omeprazole 20 mg capsule",
                        "1 capsule once daily before breakfast", 28, "capsule"),
    "nitrofurantoin": _drug("J01XE01", "nitrofurantoin", "Nitrofurantoin 100 mg capsule",
                            "1 capsule twice daily for 5 days", 10, "capsule"),
    "hydrocortisone_cream": _drug("D07AA02", "hydrocortisone", "Hydrocortisone 1% cream",
                                  "apply thinly twice daily", 1, "tube"),
    "betamethasone_cream": _drug("D07AC01", "betamethasone", "Betamethasone valerate 0.1% cream",
                                 "apply thinly once daily", 1, "tube"),
    "tacrolimus_ointment": _drug("D11AH01", "tacrolimus", "Tacrolimus 0.1% ointment",
                                 "apply thinly twice daily", 1, "tube"),
    "adapalene_gel": _drug("D10AD03", "adapalene", "Adapalene 0.1% gel", "apply at night", 1,
                           "tube"),
    "calcipotriol": _drug("D05AX02", "calcipotriol", "Calcipotriol 50 microgram/g ointment",
                          "apply twice daily", 1, "tube"),
    "folic_acid": _drug("B03BB01", "folic acid", "Folic acid 5 mg tablet", "1 tablet once daily",
                        90, "tablet"),
    "ferrous_sulfate": _drug("B03AA07", "ferrous sulfate", "Ferrous sulfate 300 mg tablet",
                             "1 tablet once daily", 90, "tablet"),
    "combined_pill": _drug("G03AA07", "levonorgestrel and ethinylestradiol",
                           "Levonorgestrel 150 microgram / ethinylestradiol 30 microgram tablet",
                           "1 tablet daily for 21 days, then 7 days off", 3, "pack"),
    "atropine_drops": _drug("S01FA01", "atropine", "Atropine 0.01% eye drops",
                            "1 drop each eye at night", 1, "bottle"),
    "latanoprost": _drug("S01EE01", "latanoprost", "Latanoprost 0.005% eye drops",
                         "1 drop each eye at night", 1, "bottle"),
    "artificial_tears": _drug("S01XA20", "artificial tears and other indifferent preparations",
                              "Hypromellose 0.3% eye drops", "1-2 drops when needed", 1, "bottle"),
    "chloramphenicol_drops": _drug("S01AA01", "chloramphenicol", "Chloramphenicol 0.5% eye drops",
                                   "1 drop four times daily for 5 days", 1, "bottle"),
    "chlorhexidine_mouthwash": _drug("A01AB03", "chlorhexidine", "Chlorhexidine 0.2% mouthwash",
                                     "rinse 10 mL twice daily", 1, "bottle"),
    "oseltamivir": _drug("J05AH02", "oseltamivir", "Oseltamivir 75 mg capsule",
                         "1 capsule twice daily for 5 days", 10, "capsule"),
}
# fmt: on

VACCINES: dict[str, Concept] = {
    "bcg": _cvx("19", "BCG"),
    "hepb": _cvx("08", "Hep B, adolescent or pediatric"),
    "dtap_ipv": _cvx("130", "DTaP-IPV"),
    "pcv13": _cvx("133", "Pneumococcal conjugate PCV 13"),
    "mmr": _cvx("03", "MMR"),
    "varicella": _cvx("21", "varicella"),
    "mmrv": _cvx("94", "MMRV"),
    "hpv9": _cvx("165", "HPV9"),
    # CVX has no dTap-IPV; the reduced-antigen booster is coded as its Tdap component.
    "dtap_ipv_booster": _cvx("115", "Tdap"),
    "influenza": _cvx("150", "Influenza, injectable, quadrivalent, preservative free"),
    "ppsv23": _cvx("33", "pneumococcal polysaccharide PPV23"),
}
#: The Hong Kong Childhood Immunisation Programme: (age in days, vaccine, dose number,
#: girls only). Primary 1 is taken as age 6, Primary 5 as 10 and Primary 6 as 11.
HK_CHILDHOOD_PROGRAMME: tuple[tuple[int, str, int, bool], ...] = (
    (0, "bcg", 1, False), (0, "hepb", 1, False), (30, "hepb", 2, False),
    (61, "dtap_ipv", 1, False), (61, "pcv13", 1, False),
    (122, "dtap_ipv", 2, False), (122, "pcv13", 2, False),
    (183, "dtap_ipv", 3, False), (183, "pcv13", 3, False), (183, "hepb", 3, False),
    (365, "mmr", 1, False), (365, "varicella", 1, False), (365, "pcv13", 4, False),
    (548, "dtap_ipv", 4, False),
    (6 * 365, "mmrv", 2, False), (6 * 365, "dtap_ipv", 5, False),
    (10 * 365, "hpv9", 1, True), (11 * 365, "hpv9", 2, True),
    (11 * 365, "dtap_ipv_booster", 6, False),
)  # fmt: skip

PROCEDURES: dict[str, Concept] = {
    "physiotherapy": _sct("91251008", "Physical therapy procedure"),
    "exercise_therapy": _sct("229065009", "Exercise therapy"),
    "dental_exam": _sct("34043003", "Dental consultation and report"),
    "scaling": _sct("1260009003", "Removal of supragingival plaque and calculus from all teeth "
                                  "using dental instrument"),
    "restoration": _sct("1256042007", "Restoration of tooth with coverage of all cusps using "
                                      "dental filling material"),
    "fluoride": _sct("68071007", "Dental fluoride treatment"),
    "extraction": _sct("173291009", "Simple extraction of tooth"),
    "bitewing": _sct("241046008", "Dental plain X-ray bitewing"),
    "visual_acuity": _sct("16830007", "Visual acuity testing"),
    "cervical_screening": _sct("171149006", "Screening for malignant neoplasm of cervix"),
    "cbt": _sct("228557008", "Cognitive and behavioral therapy"),
}  # fmt: skip

#: (substance finding, category, criticality, reaction manifestation).
ALLERGIES: dict[str, tuple[Concept, str, str, Concept]] = {
    "penicillin": (_sct("91936005", "Allergy to penicillin"), "medication", "high",
                   _sct("126485001", "Urticaria")),
    "shellfish": (_sct("300913006", "Shellfish allergy"), "food", "high",
                  _sct("126485001", "Urticaria")),
    "peanut": (_sct("91935009", "Allergy to peanut"), "food", "high",
               _sct("39579001", "Anaphylaxis")),
}  # fmt: skip

CARE_PLANS: dict[str, tuple[Concept, tuple[Concept, ...]]] = {
    "hypertension": (_sct("443402002", "Lifestyle education regarding hypertension"),
                     (_sct("386463000", "Prescribed activity/exercise education"),
                      _sct("413473000", "Counseling about alcohol consumption"))),
    "diabetes": (_sct("698360004", "Diabetes self management plan"),
                 (_sct("160670007", "Diabetic diet"), _sct("229065009", "Exercise therapy"))),
    "hyperlipidaemia": (_sct("736285004", "Hyperlipidemia clinical management plan"),
                        (_sct("386463000", "Prescribed activity/exercise education"),)),
}  # fmt: skip

DOCUMENT_TYPES: dict[str, Concept] = {
    "progress": _loinc("11506-3", "Progress note"),
    "consult": _loinc("11488-4", "Consult note"),
}

#: DICOM modality and SOP class of each kind of imaging study the clinics take.
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
IMAGING: dict[str, tuple[Concept, str, Concept]] = {
    "bitewing": (Concept(DICOM, "IO", "Intra-oral Radiography"),
                 "1.2.840.10008.5.1.4.1.1.1.3",
                 _sct("700016008", "Structure of region of internal part of mouth")),
    "lumbar_xray": (Concept(DICOM, "DX", "Digital Radiography"),
                    "1.2.840.10008.5.1.4.1.1.1.1", _sct("122496007", "Lumbar spine structure")),
    "oct": (Concept(DICOM, "OPT", "Ophthalmic Tomography"),
            "1.2.840.10008.5.1.4.1.1.77.1.5.4", _sct("5665001", "Retinal structure")),
}  # fmt: skip

#: Fee items in HKD: (code, display, amount).
FEES: dict[str, tuple[str, str, int]] = {
    "general_practice": ("consult-gp", "General practice consultation with 3 days' medicine", 380),
    "paediatrics": ("consult-paed", "Paediatric consultation", 680),
    "womens_health": ("consult-og", "Obstetrics and gynaecology consultation", 1200),
    "mental_health": ("consult-psych", "Psychiatric consultation", 1800),
    "physiotherapy": ("physio-session", "Physiotherapy session", 650),
    "dental": ("dental-visit", "Dental check-up and treatment", 900),
    "dermatology": ("consult-derm", "Dermatology consultation", 1000),
    "ophthalmology": ("consult-eye", "Ophthalmology consultation", 1000),
    "lab": ("lab-panel", "Laboratory tests", 450),
    "vaccine": ("vaccine", "Vaccine and administration", 420),
    "imaging": ("imaging", "Imaging study", 600),
    "medication": ("medication", "Medicine supplied", 160),
}  # fmt: skip
