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


@pytest.mark.parametrize(
    "name",
    ["Clinics\r\nBcc: x@example.com", "Clinics\u2028Bcc: x@example.com", "Clinics\x85x",
     "Clinics\u202e", "", "C" * 121],
)  # fmt: skip
@pytest.mark.parametrize("setting", ["notify_group_name", "notify_group_name_zh"])
def test_a_group_name_that_cannot_head_a_notice_is_refused_at_start(
    tmp_path: Path, setting: str, name: str
) -> None:
    """The group's name is the From display name and in the Subject of every notice: a
    line break there (U+2028 and U+0085 are line breaks to the email package too) is not
    injected, but it stopped the send job midway, after some notices had gone; it is
    refused when the settings are read, naming the setting."""
    with pytest.raises(ValueError, match=f"CAREVAULT_{setting.upper()}"):
        Settings(home=tmp_path, **{setting: name})
    assert Settings(home=tmp_path, **{setting: "  Tuen Mun Clinics 屯門診所 "})
