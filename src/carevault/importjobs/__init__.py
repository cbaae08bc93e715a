"""``$import``: FHIR NDJSON sent by an integration client, loaded asynchronously as its writes."""
