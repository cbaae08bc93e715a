"""The encrypted record store: resource versions sealed per patient, blind indexes.

Only the gate may call the decrypting reads (an import-linter contract checks it).
"""
