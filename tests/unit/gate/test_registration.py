"""What keeps a patient's ties when another clinic registers them (``gate.registration``)."""

from __future__ import annotations

from carevault.gate.registration import ATTENDED_TYPES


def test_what_says_someone_attended_is_what_no_desk_writes() -> None:
    """The records that keep a patient's ties are clinicians', billing's and the
    system's: health data and claims, never the patient, a booking or a visit's
    administrative record, which a desk writes."""
    assert {"Observation", "Condition", "MedicationRequest", "Claim"} <= set(ATTENDED_TYPES)
    assert not {"Patient", "Appointment", "Encounter"} & set(ATTENDED_TYPES)
