"""A real SoftHSM2 token for the PKCS#11 key provider's tests.

libsofthsm2 reads ``SOFTHSM2_CONF`` in C_Initialize, and python-pkcs11 keeps one loaded
library per module path for the whole process. So the token store is made once per test
run, by ``scripts/softhsm-setup`` in a temporary directory, and ``SOFTHSM2_CONF`` is set
for the run before the library is (re-)initialised. Each test then gets a token of its
own, with a fresh label, in that store: SoftHSM2 lists tokens at C_Initialize, so the
fixture re-initialises the library after making one (closing the sessions of earlier
tests, which are not used again).

If SoftHSM2 is not installed the tests fail with what to run: they never skip.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from pkcs11.attributes import AttributeMapper
from pkcs11.types import Session

from carevault.keys.pkcs11 import Pkcs11KeyProvider

MODULE = os.environ.get("CAREVAULT_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
SETUP = Path(__file__).resolve().parents[3] / "scripts" / "softhsm-setup"
SO_PIN = "so-pin-of-the-tests"
USER_PIN = "user-pin-of-the-tests"


@dataclass(frozen=True)
class SoftHsm:
    """The run's SoftHSM2 token store: ``<store>/softhsm2.conf`` and ``<store>/tokens``."""

    module: str
    store: Path

    @property
    def tokens(self) -> Path:
        return self.store / "tokens"

    def new_token(self) -> str:
        """Initialise a token with a label of its own and make the library see it."""
        label = f"cv-test-{secrets.token_hex(6)}"
        run_setup(self.store, label)
        pkcs11.lib(self.module).reinitialize()
        return label


@dataclass(frozen=True)
class Token:
    """One test's token, and ways to look at it past the provider."""

    hsm: SoftHsm
    label: str

    def provider(self, pin: str = USER_PIN) -> Pkcs11KeyProvider:
        return Pkcs11KeyProvider(self.hsm.module, self.label, pin)

    def session(self, attribute_mapper: AttributeMapper | None = None) -> Session:
        """A session of the test's own, sharing the provider's login (log a provider in first).

        PKCS#11 login belongs to the process, so this session opens without a PIN; and
        it is closed without logging the provider out.
        """
        token = pkcs11.lib(self.hsm.module).get_token(token_label=self.label)
        return token.open(rw=True, attribute_mapper=attribute_mapper)


def run_setup(store: Path, label: str) -> str:
    """Run scripts/softhsm-setup for ``label`` in ``store``; return SOFTHSM2_CONF."""
    environment = {
        **os.environ,
        "CAREVAULT_PKCS11_TOKEN_LABEL": label,
        "CAREVAULT_PKCS11_SO_PIN": SO_PIN,
        "CAREVAULT_PKCS11_PIN": USER_PIN,
    }
    done = subprocess.run(
        [str(SETUP), str(store)], env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/softhsm-setup failed:\n{done.stderr}", pytrace=False)
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("SOFTHSM2_CONF=")]
    return shlex.split(line)[0].removeprefix("SOFTHSM2_CONF=")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    if shutil.which("softhsm2-util") is None or not Path(MODULE).is_file():
        pytest.fail(
            f"SoftHSM2 is not installed (softhsm2-util, or the module {MODULE}, is missing):"
            " run scripts/softhsm-setup --install-only (it uses apt-get, as root or via sudo)",
            pytrace=False,
        )
    store = tmp_path_factory.mktemp("softhsm")
    conf = run_setup(store, "cv-test-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", conf)
        # If anything loaded the module earlier in this process, this makes it re-read
        # the configuration; otherwise it is the first C_Initialize.
        pkcs11.lib(MODULE).reinitialize()
        yield SoftHsm(module=MODULE, store=store)


@pytest.fixture
def token(softhsm: SoftHsm) -> Token:
    """A token of this test's own, with no key in it yet."""
    return Token(hsm=softhsm, label=softhsm.new_token())


@pytest.fixture
def provider(token: Token) -> Pkcs11KeyProvider:
    """A provider logged in to this test's token, holding KEK version 1."""
    made = token.provider()
    assert made.create_version() == 1
    return made
