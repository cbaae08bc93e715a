"""The patient card is built from what the gate returned, and only from that."""

from __future__ import annotations

from carevault.web.console.people import patient_card


def test_a_card_holds_names_record_number_and_contact() -> None:
    card = patient_card(
        "p1",
        {
            "name": [{"text": "Chan Tai Man"}, {"family": "陳", "given": ["大文"]}],
            "identifier": [{"system": "http://carevault.hk/sid/mrn", "value": "TM-1"}],
            "telecom": [
                {"system": "phone", "value": "+852 9000 0000"},
                {"system": "email", "value": "tm@example.hk"},
            ],
            "address": [{"line": ["Flat A, 3/F"], "district": "Tuen Mun"}],
        },
    )
    assert card.name == "Chan Tai Man / 陳 大文"
    assert (card.mrn, card.phones, card.emails) == ("TM-1", ("+852 9000 0000",), ("tm@example.hk",))
    assert card.address == ("Flat A, 3/F", "Tuen Mun")


def test_a_subsetted_resource_gives_a_card_with_nothing_it_lacks() -> None:
    card = patient_card("p2", {"resourceType": "Patient", "id": "p2"})
    assert (card.name, card.mrn, card.phones, card.address) == (None, None, (), ())
