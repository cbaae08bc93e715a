"""Bulk data: loading FHIR NDJSON files and transaction Bundles through the gate."""
