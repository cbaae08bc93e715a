"""Decoy contact details on hand-made values and entries: found wherever they appear,
in any spelling; a search for one or incoming data carrying one is critical at once;
planting one in a decoy record is not."""

from __future__ import annotations

import re

import pytest

from carevault.detect.decoys import MAX_TERMS, contact_terms, decoy_finding, generate
from carevault.detect.model import Access, Severity


def test_contact_terms_are_found_anywhere_in_any_spelling() -> None:
    resource = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "phone", "value": "+852 9123-4567"},
            {"system": "email", "value": "Ka.Ming.Chan@Example.ORG"},
        ],
        "note": [{"text": "call (852) 6123 4567 or write to lo.wai@mail.example.com."}],
        "identifier": [{"value": "A1234563"}],
    }
    assert contact_terms([resource]) == {
        ("phone", "91234567"),
        ("email", "ka.ming.chan@example.org"),
        ("phone", "61234567"),
        ("email", "lo.wai@mail.example.com"),
    }
    assert contact_terms(["2026-03-02", "12:30", "one 1234 two"]) == set()


def test_generated_decoys_look_real_and_differ() -> None:
    emails = {generate("email", "Mail.Example.ORG") for _ in range(20)}
    assert len(emails) == 20
    assert all(re.fullmatch(r"[a-z.]+\d{6}@mail\.example\.org", e) for e in emails)
    phones = {generate("phone", "") for _ in range(20)}
    assert all(re.fullmatch(r"[5679]\d{7}", p) for p in phones) and len(phones) > 15
    with pytest.raises(ValueError, match="kind"):
        generate("fax", "")
    with pytest.raises(ValueError, match="domain"):
        generate("email", "not a domain")


def _entry(tag: str, pseudonym: str | None = "p1", **detail: object) -> Access:
    return Access(
        position=7, at_us=1_000, tag=tag, outcome="success", principal="staff:ann",
        role="front_desk", patient_pseudonym=pseudonym, detail=dict(detail),
    )  # fmt: skip


def test_a_search_for_a_decoy_is_critical() -> None:
    finding = decoy_finding(
        _entry("fhir:resource:search", None, decoy_contact=["phone"]), frozenset()
    )
    assert finding is not None
    assert (finding.detector, finding.severity) == ("decoy-contact", Severity.CRITICAL)
    assert "searched for a decoy phone number" in finding.explanation


def test_incoming_data_with_a_decoy_is_critical_but_not_when_planting_it() -> None:
    entry = _entry("fhir:resource:create", "p1", decoy_contact=["email"])
    finding = decoy_finding(entry, frozenset())
    assert finding is not None and finding.detector == "decoy-contact-data"
    assert finding.severity is Severity.CRITICAL and finding.patients == ("p1",)
    assert decoy_finding(entry, frozenset({"p1"})) is None
    assert decoy_finding(_entry("fhir:resource:create"), frozenset()) is None


@pytest.mark.parametrize(
    "value",
    [
        "9123.4567",
        "9123 4567",
        "9123-4567",
        "+852 9123 4567",
        "+852.9123.4567",
        "+852-9123-4567",
        "(852) 9123-4567",
        "85291234567",
        "phone|+852 9123.4567",
        " \t9123\u00a04567 ",
        "\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # full-width digits
        "61234567,9123 4567",
    ],
)
def test_a_searched_phone_number_is_one_term_however_it_is_spelled(value: str) -> None:
    assert ("phone", "91234567") in contact_terms([value])


@pytest.mark.parametrize(
    "value",
    [
        "kai.wong@mail.example.org",
        "  Kai.Wong@Mail.Example.ORG\t",
        "KAI.WONG@MAIL.EXAMPLE.ORG",
        "\u212aai.wong@mail.example.org",  # KELVIN SIGN: folds to k, and the index folds it
        "email|kai.wong@mail.example.org",
        "\uff4b\uff41\uff49.wong\uff20mail.example.org",  # full-width letters and at sign
    ],
)
def test_a_searched_email_address_is_case_folded_and_trimmed(value: str) -> None:
    assert ("email", "kai.wong@mail.example.org") in contact_terms([value])


def test_casefold_not_lower_so_sharp_s_matches_as_the_index_does() -> None:
    # The blind index folds with casefold: STRAẞE@… finds strasse@…, so must this.
    assert ("email", "strasse@mail.example.org") in contact_terms(["STRAẞE@mail.example.org"])


def test_crafted_megabytes_are_scanned_in_linear_time_and_a_decoy_after_them_is_found() -> None:
    """Inputs built to make a backtracking pattern quadratic. The pattern this replaced,
    ``[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+``, took 0.21 s on 20,000
    letters and one ``@``, 0.84 s on 40,000 (quadratic: about 9 minutes for a megabyte);
    these scans take a fraction of a second (measured numbers in docs/detection.md)."""
    megabyte = 1_000_000
    crafted = [
        "a" * megabyte + "@",
        "a@" + "a." * (megabyte // 2) + "-",
        "@" * megabyte,
        "a@" * (megabyte // 2),
        "1 " * (megabyte // 2),
        "+" + "9" * megabyte,
        ".-" * (megabyte // 2),
    ]
    for text in crafted:
        found = contact_terms([{"resourceType": "Patient", "note": [{"text": text}]}])
        assert all(len(term) < 400 for _, term in found)
    tail = "a" * megabyte + "@ then write to kai.wong@mail.example.org or 9123 4567"
    assert {("email", "kai.wong@mail.example.org"), ("phone", "91234567")} <= contact_terms(
        [{"note": [{"text": tail}]}]
    )


def test_terms_are_bounded_per_request_and_contact_points_come_first() -> None:
    note = " ".join(f"person{n}@mail.example.org" for n in range(3 * MAX_TERMS))
    resource = {
        "note": [{"text": note}],
        "telecom": [{"system": "phone", "value": "+852 9123.4567"}],
    }
    found = contact_terms([resource])
    assert len(found) == MAX_TERMS
    assert ("phone", "91234567") in found
