"""Envelope encryption and key providers.

Per-patient data keys encrypt records; a key-encryption key held by a key provider
(a local keyring file, or a PKCS#11 token) wraps them. Every unwrap is logged by
the key service before the key is handed out.
"""
