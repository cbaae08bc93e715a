"""The tamper-evident audit ledger: RFC 6962 Merkle tree, signed checkpoints, proofs."""
