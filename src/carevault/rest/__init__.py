"""FHIR REST interactions: turn requests into gate calls and gate results into FHIR.

Nothing here touches the database or keys; it speaks to the gate only.
"""
