"""Who receives a notice and how, from a Patient resource; hostile values made harmless."""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from carevault.notify.contacts import (
    Held,
    clean,
    contact_of,
    recipient_of,
    valid_email,
    valid_mobile,
)

TODAY = date(2026, 12, 1)


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Chan", "given": ["Tai Man"]},
            {"family": "陳", "given": ["大文"]}], "birthDate": "1970-01-01", **extra}  # fmt: skip


def test_chinese_speakers_get_chinese_and_their_chinese_name() -> None:
    for code in ("yue", "zh", "zh-HK", "zh-Hant"):
        who = recipient_of(
            "a", patient(communication=[{"language": {"coding": [{"code": code}]}}]), TODAY
        )
        assert (who.language, who.addressee) == ("zh", "陳大文")
    english = recipient_of("a", patient(), TODAY)
    assert (english.language, english.addressee) == ("en", "Tai Man Chan")


def test_channels_are_email_then_sms_then_letter_and_only_valid_ones() -> None:
    who = recipient_of("a", patient(telecom=[
        {"system": "email", "value": "bad\r\nBcc: x@y.z"},
        {"system": "email", "value": "good@example.com", "rank": 2},
        {"system": "phone", "value": "9123 4567"},
    ], address=[{"line": ["1 Queen's Road"], "district": "Central"}]), TODAY)  # fmt: skip
    assert who.channels == ("email", "sms", "letter")
    assert who.email == "good@example.com" and who.mobile == "+85291234567"
    assert recipient_of("a", patient(), TODAY).channels == ()


def test_a_minor_is_notified_through_their_guardian() -> None:
    guardian = {"relationship": [{"coding": [{"code": "PRN"}]}], "name": {"text": "Chan Siu Ying"},
                "telecom": [{"system": "phone", "value": "+852 6000 1111"}]}  # fmt: skip
    child = recipient_of("k", patient(birthDate="2012-06-01", contact=[guardian],
                                      telecom=[{"system": "email", "value": "kid@example.com"}]),
                         TODAY)  # fmt: skip
    assert child.minor and child.guardian and child.addressee == "Chan Siu Ying"
    assert child.email is None and child.mobile == "+85260001111"


def test_the_deceased_are_marked() -> None:
    assert recipient_of("d", patient(deceasedDateTime="2025-01-01"), TODAY).deceased


def test_hostile_text_is_cut_and_cleaned() -> None:
    assert clean("<b>x</b>\r\nBcc: y\u202e\u200bz") == "<b>x</b> Bcc: yz"
    assert len(clean("x" * 500)) == 120 and clean("x" * 500).endswith("…")
    assert valid_email("a@b.co\r\n") is None or "\n" not in str(valid_email("a@b.co\r\n"))
    assert valid_mobile("12") is None


@given(st.text(max_size=600))
def test_clean_never_returns_a_line_break_or_a_direction_override(text: str) -> None:
    cleaned = clean(text)
    assert "\n" not in cleaned and "\r" not in cleaned and len(cleaned) <= 120
    assert not any(ord(c) in (0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068,
                              0x2069, 0x200E, 0x200F) for c in cleaned)  # fmt: skip


def test_a_phishing_name_is_left_out_and_a_safe_form_of_it_used() -> None:
    phished = {"family": "Chan", "given": ["refund at evil.com"]}
    alone = recipient_of("a", patient(name=[phished]), TODAY)
    assert alone.addressee == "" and alone.patient_name == ""
    chinese = recipient_of("a", patient(name=[phished, {"family": "陳", "given": ["大文"]}]), TODAY)
    assert chinese.addressee == "陳大文"
    guardian = {"relationship": [{"coding": [{"code": "PRN"}]}],
                "name": {"text": "Call 6000 1111 now"}}  # fmt: skip
    child = recipient_of("k", patient(birthDate="2012-06-01", contact=[guardian]), TODAY)
    assert child.guardian and child.addressee == ""


def _held(patient_id: str, updated_us: int, **extra: Any) -> Held:
    return Held(recipient_of(patient_id, patient(**extra), TODAY), f"ps-{patient_id}", updated_us)


def test_a_persons_notice_goes_to_their_most_recently_updated_records_contact() -> None:
    """One person, two Patient records (one HKID), one notice: the record updated last
    holds their details as they last gave them; a record that gives no way to reach them
    is passed over for the next most recent that does; the newest saying they died is
    taken as it says."""
    email = [{"system": "email", "value": "old@example.com"}]
    phone = [{"system": "phone", "value": "9123 4567"}]
    old, new = _held("p1", 100, telecom=email), _held("p7", 200, telecom=phone)
    assert contact_of({"p1": old, "p7": new}) == ("p7", new)
    assert contact_of({"p7": new, "p1": old})[0] == "p7"
    silent = _held("p7", 300)
    assert contact_of({"p1": old, "p7": silent}) == ("p1", old)
    assert contact_of({"p1": _held("p1", 1), "p7": _held("p7", 1)})[0] == "p1"
    dead = _held("p7", 300, deceasedBoolean=True, telecom=phone)
    assert contact_of({"p1": old, "p7": dead})[1].recipient.deceased
    nowhere = {"p1": _held("p1", 5), "p7": _held("p7", 9)}
    assert contact_of(nowhere)[0] == "p7" and contact_of(nowhere)[1].recipient.channels == ()
