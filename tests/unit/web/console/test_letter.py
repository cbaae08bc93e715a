"""The console's access letter holds a patient's name to the notices' check."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader

from carevault.web.console.letter import FONT_CANDIDATES, access_letter
from carevault.web.console.people import PatientCard

pytestmark = pytest.mark.skipif(
    not any(path.is_file() for path, _ in FONT_CANDIDATES), reason="no CJK font installed"
)
REPORT: dict[str, Any] = {"accesses": [], "tree_size": 1, "checkpoint": "carevault\n1\nx=\n"}


def _words(card: PatientCard, language: str, **extra: Any) -> str:
    values: dict[str, Any] = {
        "clinics": {}, "group": "Harbour Clinics", "font": None, "signed_by": "Ada Lau",
        "made_us": 1_764_547_200_000_000,
    } | extra  # fmt: skip
    pdf = access_letter(card, REPORT, language=language, zone=ZoneInfo("Asia/Hong_Kong"), **values)
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _card(*names: str) -> PatientCard:
    return PatientCard("p1", names, None, (), (), ("Flat 3, 12 Nathan Road",))


def test_a_phishing_name_is_not_printed_on_the_letter(tmp_path: Path) -> None:
    for name in ("Refund at evil.com", "Call 98765432", "x@evil.example"):
        english = _words(_card(name), "en")
        assert "evil" not in english and "98765432" not in english
        assert "Dear patient," in english and "Nathan Road" in english
        chinese = _words(_card(name), "zh-Hant")
        assert "病人：" in chinese and "evil" not in chinese


def test_a_real_name_is_printed_and_greeted() -> None:
    words = _words(_card("Alice Smith", "Refund at evil.com"), "en")
    assert "Dear Alice Smith," in words and "evil" not in words


def test_clinic_and_group_names_are_the_configured_ones() -> None:
    from carevault.config import Settings

    settings = Settings(
        clinic_names={"clinic-tm": "Tuen Mun Clinic", "clinic-tw": "Tsuen Wan Clinic"},
        clinic_names_zh={"clinic-tm": "屯門診所"},
    )
    report = {**REPORT, "accesses": [
        {"at_us": 1_764_547_200_000_000, "name": "Dr Lee", "role": "physician",
         "clinics": ["clinic-tm", "clinic-tw", "clinic-new"], "categories": ["identity"],
         "action": "fhir:patient:read", "outcome": "success", "seq": 1, "proof": []},
    ]}  # fmt: skip
    for language, expected in (("en", ["Tuen Mun Clinic", "Tsuen Wan Clinic"]),
                               ("zh-Hant", ["屯門診所", "Tsuen Wan Clinic"])):  # fmt: skip
        pdf = access_letter(
            _card("Alice Smith"), report, language=language, zone=ZoneInfo("Asia/Hong_Kong"),
            clinics=settings.clinic_names_in(language), group="Harbour Clinics", font=None,
            signed_by="Ada Lau", made_us=1_764_547_200_000_000,
        )  # fmt: skip
        words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
        flat = "".join(words.split())  # a table cell wraps where it must
        assert all("".join(name.split()) in flat for name in expected), words
        assert "clinic-new" in flat  # not configured: its id, nothing read from a record
        assert "HarbourClinics·" in flat and "CareVault·" not in flat


@pytest.mark.parametrize(
    "names",
    [{"not an id!": "x"}, {"clinic-tm": ""}, {"clinic-tm": "Tuen\x1b[2J Mun"},
     {"clinic-tm": "x" * 121}],
)  # fmt: skip
def test_a_bad_clinic_name_setting_is_refused(names: dict[str, str]) -> None:
    from pydantic import ValidationError

    from carevault.config import Settings

    with pytest.raises(ValidationError, match="CAREVAULT_CLINIC_NAMES"):
        Settings(clinic_names=names)


@pytest.mark.parametrize(
    ("language", "cut", "after"),
    [
        ("en", "not the whole list: it shows the 1 most recent of 3", "2 more accesses"),
        ("zh-Hant", "只列出3次存取中最近的1次", "另有2次存取"),
    ],
)
def test_an_incomplete_report_says_so_on_the_letter(language: str, cut: str, after: str) -> None:
    line = {
        "at_us": 1_764_547_200_000_000, "name": "Dr Lee", "role": "physician", "clinics": [],
        "categories": ["identity"], "action": "fhir:patient:read", "outcome": "success",
        "seq": 5, "proof": [],
    }  # fmt: skip
    report = {
        **REPORT, "tree_size": 9, "accesses": [line], "complete": False, "total": 3,
        "left_out": 2, "older_before": 5, "after_checkpoint": 2,
    }  # fmt: skip
    pdf = access_letter(
        _card("Alice Smith"), report, language=language, zone=ZoneInfo("Asia/Hong_Kong"),
        clinics={}, group="Harbour Clinics", font=None, signed_by="Ada Lau",
        made_us=1_764_547_200_000_000,
    )  # fmt: skip
    words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = " ".join(words.split()) if language == "en" else "".join(words.split())
    assert cut in flat and after in flat
    whole = "".join(
        page.extract_text()
        for page in PdfReader(
            io.BytesIO(
                access_letter(
                    _card("Alice Smith"),
                    {**report, "complete": True, "after_checkpoint": 0},
                    language=language,
                    zone=ZoneInfo("Asia/Hong_Kong"),
                    clinics={},
                    group="Harbour Clinics",
                    font=None,
                    signed_by="Ada Lau",
                    made_us=1_764_547_200_000_000,
                )  # fmt: skip
            )
        ).pages
    )
    assert cut not in " ".join(whole.split()) and after not in "".join(whole.split())
