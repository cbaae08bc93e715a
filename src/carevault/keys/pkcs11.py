"""PKCS#11 key provider: key-encryption keys (KEKs) that never leave the token.

Security contract:

* KEKs are AES-256 keys generated inside the token, as private token objects with
  CKA_SENSITIVE=true, CKA_EXTRACTABLE=false, CKA_WRAP/CKA_UNWRAP=true and every other
  use (encrypt, decrypt, sign, verify, derive) false, labelled ``carevault-kek-v<N>``.
  Before using an object with such a label the provider checks those attributes and
  also CKA_LOCAL and CKA_NEVER_EXTRACTABLE: it refuses a look-alike that was imported,
  or that could ever leave the token.
* Data keys are wrapped with RFC 5649 (AES key wrap with padding), which SoftHSM2 2.6
  implements as CKM_AES_KEY_WRAP_PAD (0x210A); it rejects CKM_AES_KEY_WRAP_KWP (0x210B).
  RFC 5649 has no associated data, so the wrapped secret is the data key followed by a
  16-byte tag, SHA-256 of the key id: the tag travels inside the wrap, whose integrity
  check covers it, and ``unwrap`` compares it. A blob copied onto another key id raises
  ``KeyIntegrityError`` here, so the unwrap log can never name the wrong patient.
  Blob: 56 bytes = RFC 5649 of (32-byte data key ‖ 16-byte tag).
* A plaintext data key is inside the token only as a session object (CKA_TOKEN=false,
  generic secret, no capability but being wrapped or read back) for one call; it is
  destroyed before the call returns, and dies with the session in any case.
* Cannot load the module, find the token, open a session or log in:
  ``KeyProviderUnavailable``. A blob that does not unwrap, was re-bound, or names a KEK
  version the token no longer holds: ``KeyIntegrityError``. Other refusals:
  ``KeyProviderError``. Messages name the module, the token label, the KEK version and
  the PKCS#11 error class; never a PIN or key material.
* A PIN the token refuses is not tried again by this provider: a real HSM locks its
  user PIN after a few failures, and retrying on every request would lock it for all.
* Threads: one lock per PKCS#11 module in the process, held for every call into it.
  python-pkcs11 initialises the module with NULL arguments, which tells it (per PKCS#11)
  that calls are never concurrent; SoftHSM2 then runs without its own mutexes, while
  python-pkcs11 releases the GIL during calls. So a session per thread would not be
  safe, and one logged-in session per provider under that lock is used.
* Recovery: an error that means the session or the token went away drops the session;
  the call is retried once on a new one. If the token is not found, the module is
  re-initialised (C_Finalize, C_Initialize) to rescan its slots, which is how SoftHSM2
  (and many HSM clients) see a token that came back; this resets every session of that
  module in the process, which every provider instance recovers from the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Final, Protocol, TypeVar, cast

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import Key, Object, Session, Token, UnwrapMixin, WrapMixin

from carevault.keys.provider import (
    KeyIntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
    WrappedKey,
)

T = TypeVar("T")

DATA_KEY_BYTES = 32
_TAG_BYTES = 16
_TAG_DOMAIN = b"carevault/pkcs11-wrap/v1\x00"
_KEK_LABEL = re.compile(r"carevault-kek-v([1-9][0-9]*)")

# RFC 5649, under the code SoftHSM2 2.6 gives it (SoftHSMv2 issue #726): its
# CKM_AES_KEY_WRAP_PAD is OpenSSL's EVP_aes_256_wrap_pad. Passed explicitly because
# python-pkcs11 defaults AES to RFC 3394 without padding.
_RFC5649 = Mechanism.AES_KEY_WRAP_PAD

_NO_USE: Final[dict[Attribute, Any]] = {
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
}
_KEK_TEMPLATE: Final[dict[Attribute, Any]] = {
    **_NO_USE,
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    # Nobody with the PIN may later widen its uses or copy it.
    Attribute.MODIFIABLE: False,
    Attribute.COPYABLE: False,
}
_KEK_MUST_HAVE: Final[dict[Attribute, Any]] = {
    **_NO_USE,
    Attribute.KEY_TYPE: KeyType.AES,
    Attribute.VALUE_LEN: 32,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
}
_TRANSIENT: Final[dict[Attribute, Any]] = {
    **_NO_USE,
    Attribute.CLASS: ObjectClass.SECRET_KEY,
    Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.EXTRACTABLE: True,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
}
# Imported to be wrapped: wrapping needs CKA_EXTRACTABLE, not a readable CKA_VALUE.
_TO_WRAP: Final[dict[Attribute, Any]] = {**_TRANSIENT, Attribute.SENSITIVE: True}
# Unwrapped to be read back: CKA_VALUE is readable only if not sensitive and extractable.
_UNWRAPPED: Final[dict[Attribute, Any]] = {**_TRANSIENT, Attribute.SENSITIVE: False}

_Errors = tuple[type[p11.PKCS11Error], ...]
# The session is gone or the token is: re-open.
_SESSION_GONE: _Errors = (p11.SessionHandleInvalid, p11.SessionClosed, p11.UserNotLoggedIn)
_SESSION_GONE += (p11.DeviceRemoved, p11.DeviceError, p11.TokenNotPresent, p11.TokenNotRecognised)
# A KEK handle no longer names an object: another process destroyed it. Re-read.
_STALE_HANDLE: _Errors = (p11.KeyHandleInvalid, p11.ObjectHandleInvalid)
_STALE_HANDLE += (p11.WrappingKeyHandleInvalid, p11.UnwrappingKeyHandleInvalid)
# What a token answers to a blob that fails RFC 5649's integrity check
# (SoftHSM2 2.6: CKR_GENERAL_ERROR; the specification: CKR_WRAPPED_KEY_INVALID).
_BAD_BLOB: _Errors = (p11.GeneralError, p11.FunctionFailed, p11.WrappedKeyInvalid)
_BAD_BLOB += (p11.WrappedKeyLenRange, p11.EncryptedDataInvalid, p11.EncryptedDataLenRange)
_BAD_BLOB += (p11.DataInvalid, p11.DataLenRange)
_PIN_REFUSED: _Errors = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinLocked)
_PIN_REFUSED += (p11.PinExpired, p11.UserPinNotInitialized)

_module_locks: dict[str, threading.Lock] = {}
_module_locks_guard = threading.Lock()
# (module, token label) -> SHA-256 of the PIN that logged this process in; read and
# written under that module's lock.
_logins: dict[tuple[str, str], bytes] = {}


def _module_lock(module: str) -> threading.Lock:
    with _module_locks_guard:
        return _module_locks.setdefault(os.path.realpath(module), threading.Lock())


def _binding_tag(key_id: str) -> bytes:
    return hashlib.sha256(_TAG_DOMAIN + key_id.encode()).digest()[:_TAG_BYTES]


def _kek_label(version: int) -> str:
    return f"carevault-kek-v{version}"


def _destroy(transient: Object) -> None:
    # A session object that cannot be destroyed is on a session that is already gone,
    # and session objects go with their session.
    with suppress(p11.PKCS11Error):
        transient.destroy()


class _Kek(Protocol):
    """A token key checked to be a CareVault KEK (python-pkcs11 builds its class at run time)."""

    def wrap_key(self, key: Key, mechanism: Mechanism | None = None) -> bytes: ...

    def unwrap_key(
        self,
        object_class: ObjectClass,
        key_type: KeyType,
        key_data: bytes,
        *,
        mechanism: Mechanism | None = None,
        capabilities: MechanismFlag | None = None,
        template: dict[Attribute, Any] | None = None,
    ) -> Key: ...

    def destroy(self) -> None: ...


class _Retry(Exception):
    """Raised inside an operation: run it once more after forgetting stale state."""

    drop_session = False


class _SessionLost(_Retry):
    drop_session = True


class _StaleKek(_Retry):
    pass


class Pkcs11KeyProvider:
    """A ``KeyProvider`` whose KEKs live in a PKCS#11 token (see the module docstring)."""

    name = "pkcs11"

    def __init__(self, module: str, token_label: str, user_pin: str) -> None:
        """Remember where the token is; nothing is loaded or opened until first use."""
        self._module = module
        self._label = token_label
        self._pin = user_pin
        self._lock = _module_lock(module)
        self._session: Session | None = None
        self._keks: dict[int, _Kek] = {}
        self._refusal: str | None = None

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(module={self._module!r}, token={self._label!r})"

    def active_version(self) -> int:
        return self._run(lambda session: self._newest(self._load_keks(session)))

    def versions(self) -> list[int]:
        return self._run(lambda session: sorted(self._load_keks(session)))

    def wrap(self, key_id: str, data_key: bytes) -> WrappedKey:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"a data key has {DATA_KEY_BYTES} bytes, not {len(data_key)}")
        secret = data_key + _binding_tag(key_id)

        def wrap_in(session: Session) -> WrappedKey:
            # Read afresh: another process (the CLI) may have rotated since the last call.
            keks = self._load_keks(session)
            version = self._newest(keks)
            try:
                transient = cast(Key, session.create_object({**_TO_WRAP, Attribute.VALUE: secret}))
                try:
                    blob = keks[version].wrap_key(transient, mechanism=_RFC5649)
                finally:
                    _destroy(transient)
            except p11.PKCS11Error as error:
                raise self._translate(session, error) from error
            return WrappedKey(kek_version=version, blob=blob)

        return self._run(wrap_in)

    def unwrap(self, key_id: str, wrapped: WrappedKey) -> bytes:
        failed = f"data key {key_id!r} did not unwrap under KEK version {wrapped.kek_version}"

        def unwrap_in(session: Session) -> bytes:
            kek = self._kek(session, wrapped.kek_version)
            try:
                transient = kek.unwrap_key(
                    ObjectClass.SECRET_KEY,
                    KeyType.GENERIC_SECRET,
                    wrapped.blob,
                    mechanism=_RFC5649,
                    capabilities=MechanismFlag(0),
                    template=_UNWRAPPED,
                )
                try:
                    secret = transient[Attribute.VALUE]
                finally:
                    _destroy(transient)
            except p11.PKCS11Error as error:
                raise self._translate(session, error, bad_blob=failed) from error
            if (
                not isinstance(secret, bytes)
                or len(secret) != DATA_KEY_BYTES + _TAG_BYTES
                or not hmac.compare_digest(secret[DATA_KEY_BYTES:], _binding_tag(key_id))
            ):
                raise KeyIntegrityError(f"{failed}: it was wrapped for another key id")
            return secret[:DATA_KEY_BYTES]

        return self._run(unwrap_in)

    def create_version(self) -> int:
        def create_in(session: Session) -> int:
            version = max(self._load_keks(session), default=0) + 1
            label = _kek_label(version)
            try:
                generated = session.generate_key(
                    KeyType.AES,
                    256,
                    label=label,
                    store=True,
                    capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
                    template=_KEK_TEMPLATE,
                )
                # Checked like any KEK found later: a module that ignored the template fails.
                self._keks[version] = self._checked_kek(generated, label)
            except p11.PKCS11Error as error:
                raise self._translate(session, error) from error
            return version

        return self._run(create_in)

    def destroy_version(self, version: int) -> None:
        def destroy_in(session: Session) -> None:
            keks = self._load_keks(session)
            if version not in keks:
                raise KeyProviderError(
                    f"KEK version {version} is not held by token {self._label!r}"
                )
            if version == max(keks):
                raise KeyProviderError("the active KEK version cannot be destroyed; rotate first")
            try:
                keks[version].destroy()
            except p11.PKCS11Error as error:
                raise self._translate(session, error) from error
            del self._keks[version]

        self._run(destroy_in)

    # -- sessions ---------------------------------------------------------------------

    def _run(self, operation: Callable[[Session], T]) -> T:
        with self._lock:
            if self._refusal is not None:
                raise KeyProviderUnavailable(self._refusal)
            try:
                return operation(self._open_session())
            except _Retry as retry:
                self._forget(retry)
            try:
                return operation(self._open_session())
            except _Retry as retry:
                self._forget(retry)
                raise KeyProviderUnavailable(
                    f"PKCS#11 token {self._label!r} lost the session or the key handles"
                    " twice in a row"
                ) from None

    def _forget(self, retry: _Retry) -> None:
        self._keks = {}
        if retry.drop_session:
            # Not closed: python-pkcs11 logs out on close, and login state belongs to the
            # whole process. A dropped session is dead already, or goes at C_Finalize.
            self._session = None

    def _open_session(self) -> Session:
        if self._session is None:
            self._session = self._log_in(self._find_token())
        return self._session

    def _find_token(self) -> Token:
        try:
            library = pkcs11.lib(self._module)
        except p11.PKCS11Error as error:
            raise KeyProviderUnavailable(
                f"PKCS#11 module {self._module} cannot be loaded or initialised"
                f" ({type(error).__name__}: {error})"
            ) from error
        with suppress(p11.PKCS11Error):
            return library.get_token(token_label=self._label)
        # Modules list their tokens at C_Initialize: rescan for one that (re)appeared.
        try:
            library.reinitialize()
            return library.get_token(token_label=self._label)
        except p11.NoSuchToken as error:
            raise KeyProviderUnavailable(
                f"no token labelled {self._label!r} in PKCS#11 module {self._module}"
            ) from error
        except p11.PKCS11Error as error:
            raise KeyProviderUnavailable(
                f"PKCS#11 module {self._module} cannot reach token {self._label!r}"
                f" ({type(error).__name__})"
            ) from error

    def _log_in(self, token: Token) -> Session:
        login = (os.path.realpath(self._module), self._label)
        pin = hashlib.sha256(self._pin.encode()).digest()
        try:
            try:
                session = token.open(rw=True, user_pin=self._pin)
                _logins[login] = pin
                return session
            except p11.UserAlreadyLoggedIn:
                # Login belongs to the application, not the session: another provider in
                # this process is logged in to this token, and a new session shares it.
                # The token answers so before it looks at the PIN: compare it here.
                known = _logins.get(login)
                if known is not None and not hmac.compare_digest(known, pin):
                    raise p11.PinIncorrect() from None
                return token.open(rw=True)
        except _PIN_REFUSED as error:
            self._refusal = (
                f"token {self._label!r} refused the user PIN ({type(error).__name__});"
                " it is not tried again: correct the configured PIN and restart"
            )
            raise KeyProviderUnavailable(self._refusal) from error
        except p11.PKCS11Error as error:
            raise KeyProviderUnavailable(
                f"cannot open a session on token {self._label!r} ({type(error).__name__})"
            ) from error

    def _token_answers(self, session: Session) -> bool:
        try:
            session.token.slot.get_token()
        except p11.PKCS11Error:
            return False
        return True

    def _translate(
        self, session: Session, error: p11.PKCS11Error, *, bad_blob: str | None = None
    ) -> Exception:
        """What to raise for ``error``: a retry, an integrity failure, or a refusal."""
        if isinstance(error, _SESSION_GONE) or not self._token_answers(session):
            return _SessionLost()
        if isinstance(error, _STALE_HANDLE):
            return _StaleKek()
        if bad_blob is not None and isinstance(error, _BAD_BLOB):
            return KeyIntegrityError(bad_blob)
        return KeyProviderError(
            f"PKCS#11 token {self._label!r} refused the operation ({type(error).__name__})"
        )

    # -- key-encryption keys ----------------------------------------------------------

    def _newest(self, keks: dict[int, _Kek]) -> int:
        if not keks:
            raise KeyProviderError(
                f"token {self._label!r} holds no CareVault KEK: run `carevault init`"
            )
        return max(keks)

    def _kek(self, session: Session, version: int) -> _Kek:
        kek = self._keks.get(version)
        if kek is None:
            # Not seen yet (created by another process since), or never: read the token.
            kek = self._load_keks(session).get(version)
        if kek is None:
            raise KeyIntegrityError(
                f"KEK version {version} is not held by token {self._label!r}"
                " (destroyed, or never created)"
            )
        return kek

    def _load_keks(self, session: Session) -> dict[int, _Kek]:
        """The KEK versions the token holds now, checked; also refreshes the cache."""
        keks: dict[int, _Kek] = {}
        try:
            # python-pkcs11 0.10 leaves a search that failed to start marked active, and
            # its finaliser then raises; on a dead session C_GenerateRandom fails first.
            session.generate_random(64)
            found = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: True}
                )
            )
            for candidate in found:
                label = candidate[Attribute.LABEL]
                match = _KEK_LABEL.fullmatch(label) if isinstance(label, str) else None
                if match is None:
                    continue
                version = int(match.group(1))
                if version in keks:
                    raise KeyProviderError(
                        f"token {self._label!r} holds two objects labelled {label!r};"
                        " refusing to guess which is the KEK"
                    )
                keks[version] = self._checked_kek(candidate, label)
        except p11.PKCS11Error as error:
            raise self._translate(session, error) from error
        # A token whose storage went away answers a search with nothing rather than an error.
        if not self._token_answers(session):
            raise _SessionLost()
        self._keks = keks
        return keks

    def _checked_kek(self, candidate: Object, label: str) -> _Kek:
        held = candidate.get_attributes(list(_KEK_MUST_HAVE))
        if (
            all(held.get(attribute) == value for attribute, value in _KEK_MUST_HAVE.items())
            and isinstance(candidate, WrapMixin)
            and isinstance(candidate, UnwrapMixin)
        ):
            return cast(_Kek, candidate)
        raise KeyProviderError(
            f"object {label!r} on token {self._label!r} is not a CareVault KEK (an AES-256"
            " key generated in the token, never extractable, for wrapping only); refusing it"
        )
