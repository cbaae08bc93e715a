"""The gate: the one path through which patient data is read and written.

``core`` holds the gate itself (reads, searches, writes); ``registration`` the
privileged operations that change where a patient belongs (presence-proofed
registration at a clinic, transfer of the home clinic). The vault's decrypting
reads are imported in this package and nowhere else (import-linter).
"""

from __future__ import annotations

from carevault.db import WouldBlock
from carevault.gate.core import (
    SCHEDULING_TYPES,
    AccessDenied,
    Caller,
    CareSettings,
    ChangedMeanwhile,
    ClinicRequired,
    DecryptionBudget,
    Gate,
    MatchedMeanwhile,
    PatientRequired,
    ScopeDenied,
    SubsetWouldErase,
    UnseenMatch,
    Within,
    caller_event,
    method_detail,
    new_request_id,
    withholds_counts,
)

__all__ = [
    "SCHEDULING_TYPES",
    "AccessDenied",
    "Caller",
    "ChangedMeanwhile",
    "MatchedMeanwhile",
    "ClinicRequired",
    "CareSettings",
    "DecryptionBudget",
    "Gate",
    "PatientRequired",
    "ScopeDenied",
    "SubsetWouldErase",
    "UnseenMatch",
    "Within",
    "WouldBlock",
    "caller_event",
    "method_detail",
    "new_request_id",
    "withholds_counts",
]
