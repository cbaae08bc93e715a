"""FHIR R4 (4.0.1): the resource table, search parameters, Bundles, OperationOutcome."""
