"""The PKCS#11 key provider against a real SoftHSM2 token (see conftest.py)."""

from __future__ import annotations

import json
import secrets
import struct
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.attributes import AttributeMapper
from pkcs11.types import Session, WrapMixin

from carevault.keys.pkcs11 import Pkcs11KeyProvider
from carevault.keys.provider import (
    KeyIntegrityError,
    KeyProviderError,
    KeyProviderUnavailable,
    WrappedKey,
)
from tests.integration.keys.conftest import MODULE, USER_PIN, SoftHsm, Token

pytestmark = pytest.mark.softhsm

KEK_ATTRIBUTES = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.KEY_TYPE: KeyType.AES,
    Attribute.VALUE_LEN: 32,
    Attribute.SENSITIVE: True,
    Attribute.ALWAYS_SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.NEVER_EXTRACTABLE: True,
    Attribute.LOCAL: True,
    Attribute.KEY_GEN_MECHANISM: Mechanism.AES_KEY_GEN,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
    Attribute.COPYABLE: False,
}


def data_key() -> bytes:
    return secrets.token_bytes(32)


def labels(session: Session, *, token_objects: bool) -> list[str]:
    found = session.get_objects({Attribute.TOKEN: token_objects})
    return sorted(str(obj[Attribute.LABEL]) for obj in found)


def kek_object(session: Session, version: int) -> Any:
    (kek,) = session.get_objects({Attribute.LABEL: f"carevault-kek-v{version}"})
    return kek


def in_another_process(token: Token, action: str, **arguments: Any) -> Any:
    """Run ``action`` with a provider in a new Python process: a restart, or the CLI."""
    request = {"module": token.hsm.module, "label": token.label, "pin": USER_PIN, **arguments}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, action],
        input=json.dumps(request),  # the PIN goes on stdin, not on the command line
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


CHILD = """
import json, sys
from carevault.keys.pkcs11 import Pkcs11KeyProvider
from carevault.keys.provider import WrappedKey
request = json.load(sys.stdin)
provider = Pkcs11KeyProvider(request["module"], request["label"], request["pin"])
if sys.argv[1] == "unwrap":
    keys = [
        provider.unwrap(key_id, WrappedKey(version, bytes.fromhex(blob))).hex()
        for key_id, version, blob in request["blobs"]
    ]
    print(json.dumps({"versions": provider.versions(), "keys": keys}))
elif sys.argv[1] == "rotate":
    new = provider.create_version()
    provider.destroy_version(new - 1)
    print(json.dumps({"versions": provider.versions()}))
"""


@contextmanager
def token_store_moved_away(hsm: SoftHsm) -> Iterator[None]:
    """The token store disappears (disk unmounted, volume detached) and comes back."""
    away = hsm.tokens.with_name("tokens.away")
    hsm.tokens.rename(away)
    try:
        yield
    finally:
        away.rename(hsm.tokens)


# -- wrapping ---------------------------------------------------------------------------


def test_many_data_keys_round_trip_under_rfc_5649(provider: Pkcs11KeyProvider) -> None:
    keys = {f"patient-{n}": data_key() for n in range(200)}
    wrapped = {key_id: provider.wrap(key_id, key) for key_id, key in keys.items()}
    for key_id, blob in wrapped.items():
        assert blob.kek_version == 1
        # RFC 5649 of the 32-byte key and its 16-byte key-id tag: 48 + 8 bytes.
        assert len(blob.blob) == 56
        assert keys[key_id] not in blob.blob
        assert provider.unwrap(key_id, blob) == keys[key_id]
    assert len({blob.blob for blob in wrapped.values()}) == len(keys)


def test_softhsm_aes_key_wrap_pad_is_rfc_5649_and_kwp_is_refused(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    """The evidence for the mechanism the provider uses (SoftHSMv2 issue #726)."""
    kek_value, secret = secrets.token_bytes(32), secrets.token_bytes(48)
    session = token.session()
    common = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.TOKEN: False}
    known_kek = session.create_object(
        {**common, Attribute.KEY_TYPE: KeyType.AES, Attribute.VALUE: kek_value}
        | {Attribute.WRAP: True, Attribute.UNWRAP: True}
    )
    to_wrap = session.create_object(
        {**common, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET, Attribute.VALUE: secret}
        | {Attribute.EXTRACTABLE: True}
    )
    assert isinstance(known_kek, WrapMixin)
    wrapped = known_kek.wrap_key(to_wrap, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    assert wrapped == aes_key_wrap_with_padding(kek_value, secret)
    with pytest.raises(p11.MechanismInvalid):
        known_kek.wrap_key(to_wrap, mechanism=Mechanism.AES_KEY_WRAP_KWP)
    known_kek.destroy()
    to_wrap.destroy()
    session.close()


def test_a_data_key_must_have_32_bytes(provider: Pkcs11KeyProvider) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        provider.wrap("patient-1", b"short")


def test_kek_is_generated_in_the_token_and_cannot_leave_it(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    assert provider.create_version() == 2
    session = token.session()
    kek = kek_object(session, 1)
    assert kek.get_attributes(list(KEK_ATTRIBUTES)) == KEK_ATTRIBUTES
    with pytest.raises(p11.AttributeSensitive):
        kek[Attribute.VALUE]
    # Not by another key of this session, nor by the next KEK version, under any wrap.
    outsider = session.generate_key(
        KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
    )
    for wrapping_key in (outsider, kek_object(session, 2)):
        assert isinstance(wrapping_key, WrapMixin)
        for mechanism in (Mechanism.AES_KEY_WRAP_PAD, Mechanism.AES_KEY_WRAP):
            with pytest.raises(p11.KeyUnextractable):
                wrapping_key.wrap_key(kek, mechanism=mechanism)
    # Nor by widening it or copying it into an extractable key (CKR_ACTION_PROHIBITED).
    with pytest.raises(p11.PKCS11Error):
        kek[Attribute.ENCRYPT] = True
    with pytest.raises(p11.PKCS11Error):
        kek.copy({Attribute.EXTRACTABLE: True})
    outsider.destroy()
    session.close()


def test_only_keks_are_token_objects_after_many_wraps_and_unwraps(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    for n in range(100):
        key = data_key()
        assert provider.unwrap(f"p{n}", provider.wrap(f"p{n}", key)) == key
    session = token.session()
    assert labels(session, token_objects=True) == ["carevault-kek-v1"]
    # Session objects are visible to every session of the process: none was left behind.
    assert labels(session, token_objects=False) == []
    session.close()


def test_a_tampered_blob_raises_integrity_error(provider: Pkcs11KeyProvider) -> None:
    key = data_key()
    good = provider.wrap("patient-1", key)
    tampered = [bytes([good.blob[0] ^ 1]) + good.blob[1:]]
    tampered += [good.blob[:20] + bytes([good.blob[20] ^ 0x80]) + good.blob[21:]]
    tampered += [
        good.blob[:-1] + bytes([good.blob[-1] ^ 1]),
        good.blob[:-8],
        good.blob + good.blob[:8],
    ]
    tampered += [b"", secrets.token_bytes(56)]
    for blob in tampered:
        with pytest.raises(KeyIntegrityError) as raised:
            provider.unwrap("patient-1", WrappedKey(1, blob))
        assert key.hex() not in str(raised.value)
        assert "patient-1" in str(raised.value)
    assert provider.unwrap("patient-1", good) == key


def test_a_blob_moved_to_another_key_id_does_not_unwrap(provider: Pkcs11KeyProvider) -> None:
    blob = provider.wrap("patient-a", data_key())
    with pytest.raises(KeyIntegrityError, match="another key id"):
        provider.unwrap("patient-b", blob)


def test_a_blob_presented_under_another_kek_version_does_not_unwrap(
    provider: Pkcs11KeyProvider,
) -> None:
    blob = provider.wrap("patient-a", data_key())
    provider.create_version()
    with pytest.raises(KeyIntegrityError, match="version 2"):
        provider.unwrap("patient-a", WrappedKey(2, blob.blob))
    with pytest.raises(KeyIntegrityError, match="version 7 is not held"):
        provider.unwrap("patient-a", WrappedKey(7, blob.blob))


# -- versions and rotation --------------------------------------------------------------


def test_a_token_without_a_kek_says_to_run_init(token: Token) -> None:
    fresh = token.provider()
    assert fresh.versions() == []
    with pytest.raises(KeyProviderError, match="carevault init"):
        fresh.active_version()
    with pytest.raises(KeyProviderError, match="carevault init"):
        fresh.wrap("patient-1", data_key())


def test_rotation_keeps_old_blobs_until_their_version_is_destroyed(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    old_key, new_key = data_key(), data_key()
    old = provider.wrap("patient-1", old_key)
    assert provider.create_version() == 2
    assert provider.active_version() == 2
    assert provider.versions() == [1, 2]
    new = provider.wrap("patient-2", new_key)
    assert (old.kek_version, new.kek_version) == (1, 2)
    assert provider.unwrap("patient-1", old) == old_key
    assert provider.unwrap("patient-2", new) == new_key

    provider.destroy_version(1)
    assert provider.versions() == [2]
    with pytest.raises(KeyIntegrityError, match="version 1 is not held"):
        provider.unwrap("patient-1", old)
    assert provider.unwrap("patient-2", new) == new_key
    session = token.session()
    assert labels(session, token_objects=True) == ["carevault-kek-v2"]
    session.close()


def test_the_active_or_an_unknown_version_cannot_be_destroyed(
    provider: Pkcs11KeyProvider,
) -> None:
    with pytest.raises(KeyProviderError, match="rotate first"):
        provider.destroy_version(1)
    with pytest.raises(KeyProviderError, match="not held"):
        provider.destroy_version(5)
    assert provider.versions() == [1]


def test_state_survives_a_restart(token: Token, provider: Pkcs11KeyProvider) -> None:
    keys = [(f"patient-{n}", data_key()) for n in range(10)]
    blobs = [provider.wrap(key_id, key) for key_id, key in keys[:5]]
    provider.create_version()
    blobs += [provider.wrap(key_id, key) for key_id, key in keys[5:]]
    listed = [
        [key_id, blob.kek_version, blob.blob.hex()]
        for (key_id, _), blob in zip(keys, blobs, strict=True)
    ]
    answer = in_another_process(token, "unwrap", blobs=listed)
    assert answer["versions"] == [1, 2]
    assert answer["keys"] == [key.hex() for _, key in keys]
    assert {blob.kek_version for blob in blobs} == {1, 2}


def test_a_second_provider_in_the_process_shares_the_login(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    key = data_key()
    blob = provider.wrap("patient-1", key)
    second = token.provider()
    assert second.versions() == [1]
    assert second.unwrap("patient-1", blob) == key
    assert provider.unwrap("patient-1", second.wrap("patient-1", key)) == key


def test_a_rotation_by_another_process_is_seen(token: Token, provider: Pkcs11KeyProvider) -> None:
    key = data_key()
    old = provider.wrap("patient-1", key)
    assert provider.unwrap("patient-1", old) == key  # KEK version 1 is now cached
    assert in_another_process(token, "rotate") == {"versions": [2]}
    assert provider.active_version() == 2
    assert provider.wrap("patient-2", key).kek_version == 2
    with pytest.raises(KeyIntegrityError, match="version 1 is not held"):
        provider.unwrap("patient-1", old)


def test_a_cached_kek_destroyed_by_another_process_is_not_held(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    key = data_key()
    old = provider.wrap("patient-1", key)
    assert provider.unwrap("patient-1", old) == key  # KEK version 1 is now cached
    assert in_another_process(token, "rotate") == {"versions": [2]}
    # The first call after the rotation is the unwrap, on the stale KEK handle.
    with pytest.raises(KeyIntegrityError, match="version 1 is not held"):
        provider.unwrap("patient-1", old)


# -- KEKs the provider refuses ----------------------------------------------------------


def test_an_imported_look_alike_kek_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    session = token.session()
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.VALUE: secrets.token_bytes(32),
            Attribute.LABEL: "carevault-kek-v2",
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.WRAP: True,
            Attribute.UNWRAP: True,
        }
    )
    session.close()
    with pytest.raises(KeyProviderError, match="'carevault-kek-v2' .* is not a CareVault KEK"):
        provider.wrap("patient-1", data_key())
    with pytest.raises(KeyProviderError, match="not a CareVault KEK"):
        provider.versions()


def test_two_keks_with_one_label_are_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    session = token.session()
    session.generate_key(
        KeyType.AES,
        256,
        label="carevault-kek-v1",
        store=True,
        capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    session.close()
    with pytest.raises(KeyProviderError, match="two objects labelled 'carevault-kek-v1'"):
        provider.versions()


def test_a_kek_the_token_will_not_destroy_is_reported(token: Token) -> None:
    fresh = token.provider()
    assert fresh.versions() == []
    session = token.session()
    session.generate_key(
        KeyType.AES,
        256,
        label="carevault-kek-v1",
        store=True,
        capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.DESTROYABLE: False,
        },
    )
    session.close()
    assert fresh.create_version() == 2
    with pytest.raises(KeyProviderError, match="refused the operation"):
        fresh.destroy_version(1)
    assert fresh.versions() == [1, 2]


def test_other_keys_on_a_shared_token_are_left_alone(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    session = token.session()
    for label in ("another-application", "carevault-kek-v0", "carevault-kek-vX"):
        session.generate_key(KeyType.AES, 256, label=label, store=True)
    session.close()
    assert provider.versions() == [1]
    key = data_key()
    assert provider.unwrap("patient-1", provider.wrap("patient-1", key)) == key


def test_a_kek_restricted_to_another_mechanism_is_a_refusal_not_tampering(
    token: Token,
) -> None:
    restricted = token.provider()
    assert restricted.versions() == []
    mapper = AttributeMapper()
    mapper.register_handler(
        Attribute.ALLOWED_MECHANISMS,
        lambda mechanisms: struct.pack(f"{len(mechanisms)}L", *mechanisms),
        lambda packed: list(struct.unpack(f"{len(packed) // 8}L", packed)),
    )
    session = token.session(attribute_mapper=mapper)
    session.generate_key(
        KeyType.AES,
        256,
        label="carevault-kek-v1",
        store=True,
        capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        template={
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.ALLOWED_MECHANISMS: [Mechanism.AES_KEY_WRAP],
        },
    )
    session.close()
    assert restricted.versions() == [1]
    with pytest.raises(KeyProviderError, match=r"refused the operation \(MechanismInvalid\)"):
        restricted.wrap("patient-1", data_key())
    with pytest.raises(KeyProviderError, match="MechanismInvalid") as raised:
        restricted.unwrap("patient-1", WrappedKey(1, secrets.token_bytes(56)))
    assert not isinstance(raised.value, KeyIntegrityError)


# -- reaching the token -----------------------------------------------------------------


def test_a_wrong_pin_is_unavailable_says_so_and_is_not_retried(token: Token) -> None:
    wrong = "not-the-user-pin-8731"
    refused = token.provider(pin=wrong)
    for _ in range(2):
        with pytest.raises(KeyProviderUnavailable) as raised:
            refused.versions()
        message = str(raised.value)
        assert token.label in message
        assert "refused the user PIN (PinIncorrect)" in message
        assert "not tried again" in message
        assert wrong not in message
        assert USER_PIN not in message
    # The token itself is fine: the right PIN works.
    assert token.provider().versions() == []


def test_a_wrong_pin_is_refused_even_while_the_process_is_logged_in(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    # SoftHSM2 answers CKR_USER_ALREADY_LOGGED_IN before it checks the PIN.
    with pytest.raises(KeyProviderUnavailable, match="refused the user PIN"):
        token.provider(pin="not-the-user-pin-8731").versions()
    assert provider.versions() == [1]


def test_a_missing_token_is_unavailable(softhsm: SoftHsm) -> None:
    missing = Pkcs11KeyProvider(softhsm.module, "no-such-token", USER_PIN)
    with pytest.raises(KeyProviderUnavailable, match="no token labelled 'no-such-token'"):
        missing.wrap("patient-1", data_key())


def test_a_missing_module_is_unavailable() -> None:
    nowhere = Pkcs11KeyProvider("/nonexistent/libpkcs11.so", "carevault", USER_PIN)
    with pytest.raises(KeyProviderUnavailable, match="cannot be loaded") as raised:
        nowhere.versions()
    assert USER_PIN not in str(raised.value)


def test_service_stops_while_the_token_store_is_gone_and_returns_with_it(
    softhsm: SoftHsm, provider: Pkcs11KeyProvider
) -> None:
    key = data_key()
    blob = provider.wrap("patient-1", key)
    assert provider.unwrap("patient-1", blob) == key
    with token_store_moved_away(softhsm):
        with pytest.raises(KeyProviderUnavailable, match="cannot reach token"):
            provider.unwrap("patient-1", blob)
        # The module could not re-initialise without its store: it stays down, not wrong.
        with pytest.raises(KeyProviderUnavailable, match="cannot be loaded or initialised"):
            provider.wrap("patient-1", key)
        with pytest.raises(KeyProviderUnavailable):
            provider.versions()
    assert provider.unwrap("patient-1", blob) == key
    assert provider.unwrap("patient-1", provider.wrap("patient-1", key)) == key


def test_a_wrap_on_a_store_that_just_went_away_is_unavailable_not_empty(
    softhsm: SoftHsm, provider: Pkcs11KeyProvider
) -> None:
    # A search on a vanished store answers "no objects"; that must not read as "no KEK".
    with token_store_moved_away(softhsm), pytest.raises(KeyProviderUnavailable):
        provider.wrap("patient-1", data_key())
    assert provider.versions() == [1]


def test_a_library_reset_is_recovered_without_an_error(provider: Pkcs11KeyProvider) -> None:
    key = data_key()
    blob = provider.wrap("patient-1", key)
    library = pkcs11.lib(MODULE)
    library.reinitialize()  # every session of the process is gone, as after a reconnect
    assert provider.unwrap("patient-1", blob) == key
    library.finalize()  # the library is not even initialised
    assert provider.unwrap("patient-1", blob) == key
    library.reinitialize()
    assert provider.versions() == [1]


def test_concurrent_wraps_and_unwraps_from_a_thread_pool(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    def round_trip(n: int) -> bool:
        key = data_key()
        return provider.unwrap(f"p{n}", provider.wrap(f"p{n}", key)) == key

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(round_trip, range(400)))
    session = token.session()
    assert labels(session, token_objects=True) == ["carevault-kek-v1"]
    assert labels(session, token_objects=False) == []
    session.close()


# -- a module that misbehaves (no SoftHSM2 behaviour reaches these) ---------------------


class DroppingSession:
    """Every call fails as if the token had just closed the session."""

    def generate_random(self, nbits: int) -> bytes:
        raise p11.SessionHandleInvalid()


class FullSession:
    """A live session on a token with no room left for another key."""

    def __init__(self) -> None:
        # Enough of session.token.slot.get_token() to answer the provider's health probe.
        self.token = self.slot = self

    def get_token(self) -> FullSession:
        return self

    def generate_random(self, nbits: int) -> bytes:
        return bytes(nbits // 8)

    def get_objects(self, attrs: dict[Attribute, Any]) -> Iterator[Any]:
        return iter(())

    def generate_key(self, *args: Any, **kwargs: Any) -> Any:
        raise p11.DeviceMemory()


class FakeToken:
    def __init__(self, session: Any = None, failure: p11.PKCS11Error | None = None) -> None:
        self.session = session
        self.failure = failure
        self.opened = 0

    def open(self, rw: bool = False, user_pin: str | None = None) -> Any:
        self.opened += 1
        if self.failure is not None:
            raise self.failure
        return self.session


class FakeLibrary:
    def __init__(self, token: FakeToken) -> None:
        self.token = token

    def get_token(self, token_label: str) -> FakeToken:
        return self.token


def test_a_token_that_keeps_dropping_sessions_is_unavailable_after_one_retry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeToken(session=DroppingSession())
    monkeypatch.setattr(pkcs11, "lib", lambda module: FakeLibrary(fake))
    flaky = Pkcs11KeyProvider(str(tmp_path / "fake.so"), "flaky", USER_PIN)
    with pytest.raises(KeyProviderUnavailable, match="twice in a row"):
        flaky.versions()
    assert fake.opened == 2


def test_a_session_that_cannot_be_opened_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeToken(failure=p11.SessionCount())
    monkeypatch.setattr(pkcs11, "lib", lambda module: FakeLibrary(fake))
    full = Pkcs11KeyProvider(str(tmp_path / "fake.so"), "full", USER_PIN)
    with pytest.raises(KeyProviderUnavailable, match=r"cannot open a session .*SessionCount"):
        full.wrap("patient-1", data_key())
    assert repr(full) == f"Pkcs11KeyProvider(module={str(tmp_path / 'fake.so')!r}, token='full')"


def test_a_token_that_refuses_to_generate_a_kek_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeToken(session=FullSession())
    monkeypatch.setattr(pkcs11, "lib", lambda module: FakeLibrary(fake))
    full = Pkcs11KeyProvider(str(tmp_path / "fake.so"), "full", USER_PIN)
    with pytest.raises(KeyProviderError, match=r"refused the operation \(DeviceMemory\)"):
        full.create_version()
