"""CareVault: patient data for clinic groups, built to survive a breach and to explain it."""

__version__ = "0.1.0"
