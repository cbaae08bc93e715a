"""A data directory the ``carevault`` command runs on in a test, with fast hashing."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.bootstrap import Services, build_services
from tests.conftest import make_settings


def cli_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Services on ``tmp_path/home``, with the environment the CLI reads set to match
    (test mode, cheap Argon2, checkpoints at once). The caller closes them."""
    for name, value in (("ENVIRONMENT", "test"), ("ARGON2_MEMORY_KIB", "8192"),
                        ("ARGON2_TIME_COST", "1"), ("CHECKPOINT_SECONDS", "0")):  # fmt: skip
        monkeypatch.setenv(f"CAREVAULT_{name}", value)
    return build_services(make_settings(tmp_path / "home"), create_keys=True, migrate=True)
