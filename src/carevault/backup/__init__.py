"""Online backups of a data directory and their restore.

A backup is two parts that are kept apart: the data (the records database and the key
store's database, both consistent copies taken while the server runs) and the key files
(the local keyring, the token and ledger signing keys). Wrapped data keys travel with the
data; the key-encryption keys that unwrap them travel only with the key files, so a copy
of the data part alone decrypts nothing, and destroying an old KEK version after an
erasure closes every older data backup at once (docs/operations.md, "Backups").
"""
