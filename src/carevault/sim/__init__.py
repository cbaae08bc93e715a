"""A deterministic synthetic Hong Kong clinic group and its patients, as FHIR R4 resources.

Pure Python: no I/O, no database. ``build_group`` makes the group (organizations,
locations, staff, practitioners, schedules, slots); ``generate_patients`` streams its
patients with their histories. Same seed, same output.
"""

from carevault.sim.facts import BookableSlot, Clinic, StaffMember
from carevault.sim.group import ClinicGroup, build_group
from carevault.sim.patients import PatientRecord, generate_patients

__all__ = [
    "BookableSlot",
    "Clinic",
    "ClinicGroup",
    "PatientRecord",
    "StaffMember",
    "build_group",
    "generate_patients",
]
