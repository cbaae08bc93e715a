"""Sealed offsets: where the next page of a search starts, for a caller who may not be
told positions it has not been shown.

A role that may not read government ids searches by identifier only for the records it
matches, named in the ledger and charged to the release budget (``gate/core.py:
withholds_counts``). A page asked at a position the caller chose tells what lies before
it without naming it: a page at ``_offset=k`` with entries says that k records before
them match, and nothing names those. So such a search moves on only by the server's own links:
the offset of a next (or previous) link is sealed here, and a sealed offset is issued
only after every record before it was shown to that caller, on pages of the same
criteria, each named in the ledger. What a page reached by one can then reveal is either
named (its entries) or that nothing more matches.

The offset goes out encrypted and authenticated (AES-GCM under the vault's paging key,
the one history cursors use; ``rest/cursor.py``), padded to one length, bound to the
caller's principal, the resource type and the search's criteria (every applied
parameter but ``_count`` and ``_offset``, in a fixed order): replayed by anyone else, on
another identifier, another sort or another type, or altered, it is refused (400). It
is not bound to a time: replayed later, when records matching the criteria were written
or deleted meanwhile, it starts at the same position among what matches then, so the
page may repeat a record already named or pass over one not yet shown (never one the
caller was not let see: each entry is still judged and named as it leaves).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carevault.fhir import jsonio
from carevault.fhir.outcome import FhirError, bad_request

_FORMAT = b"\x03"
_NONCE_BYTES = 12
#: The offset as digits, padded with spaces: every cursor is the same length.
_OFFSET_BYTES = 16
#: Base64url of format + nonce + offset + tag, without padding.
LENGTH = len(base64.urlsafe_b64encode(b"\0" * (1 + _NONCE_BYTES + _OFFSET_BYTES + 16)).rstrip(b"="))
#: Parameters a sealed offset is not bound to: the page's size may change between pages
#: (what lies before the offset was shown whatever the size), and the offset is itself.
_PAGING = frozenset({"_count", "_offset"})


def criteria(applied: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The parameters a sealed offset is bound to: every applied one but the paging, in
    a fixed order (a client may send them in any)."""
    return sorted((name, value) for name, value in applied if name not in _PAGING)


def _binding(principal: str, type_name: str, bound: Sequence[tuple[str, str]]) -> bytes:
    return _FORMAT + jsonio.dumps(["search", principal, type_name, [list(p) for p in bound]])


def is_sealed(value: str) -> bool:
    """Whether an ``_offset`` value is (shaped as) a sealed offset, not a position."""
    return len(value) == LENGTH and not value.isdigit()


def seal(
    key: bytes, principal: str, type_name: str, bound: Sequence[tuple[str, str]], at: int
) -> str:
    """The sealed offset ``at`` of this caller's search of ``type_name`` by ``bound``."""
    plain = str(at).encode("ascii")
    if at < 0 or len(plain) > _OFFSET_BYTES:
        raise ValueError("an offset out of range to seal")
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(
        nonce, plain.ljust(_OFFSET_BYTES, b" "), _binding(principal, type_name, bound)
    )
    return base64.urlsafe_b64encode(_FORMAT + nonce + sealed).rstrip(b"=").decode("ascii")


def opened(
    key: bytes, principal: str, type_name: str, bound: Sequence[tuple[str, str]], value: str
) -> int:
    """The offset ``value`` seals, if this server sealed it for this caller and these
    criteria; otherwise a 400 that says no more than that."""
    if not is_sealed(value):
        raise _refused()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:
        raise _refused() from error
    if raw[:1] != _FORMAT:
        raise _refused()
    nonce, sealed = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, sealed, _binding(principal, type_name, bound))
    except InvalidTag as error:
        raise _refused() from error
    return int(plain.rstrip(b" "))


def _refused() -> FhirError:
    return bad_request(
        "_offset of this search is taken only from a link this server gave the same caller "
        "for the same criteria"
    )
