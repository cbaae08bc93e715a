"""Production refuses to send notices in the clear to a remote relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from carevault.config import Settings, UnsafeConfiguration, check_production


def test_a_remote_relay_without_required_starttls_is_refused(tmp_path: Path) -> None:
    settings = Settings(environment="production", home=tmp_path, smtp_host="mx.example.hk")
    with pytest.raises(UnsafeConfiguration, match="CAREVAULT_SMTP_STARTTLS"):
        check_production(settings)
    required = Settings(environment="production", home=tmp_path, smtp_host="mx.example.hk",
                        smtp_starttls="required")  # fmt: skip
    with pytest.raises(UnsafeConfiguration) as refused:
        check_production(required)
    assert "SMTP" not in str(refused.value)
    local = Settings(environment="production", home=tmp_path, smtp_host="127.0.0.1")
    with pytest.raises(UnsafeConfiguration) as refused:
        check_production(local)
    assert "SMTP" not in str(refused.value)
