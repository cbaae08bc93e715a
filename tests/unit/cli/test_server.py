"""What ``carevault serve`` tells uvicorn about proxy headers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from carevault.cli.server import uvicorn_options
from carevault.config import Settings


def test_by_default_no_one_is_a_proxy_not_even_loopback() -> None:
    options = uvicorn_options(Settings())

    assert options["proxy_headers"] is False
    # An explicit empty list: uvicorn would otherwise read FORWARDED_ALLOW_IPS or trust
    # 127.0.0.1.
    assert options["forwarded_allow_ips"] == []


def test_configured_proxies_are_the_only_ones_believed() -> None:
    options = uvicorn_options(Settings(trusted_proxies=" 10.0.0.5 , 10.1.0.0/16,::1"))

    assert options["proxy_headers"] is True
    assert options["forwarded_allow_ips"] == ["10.0.0.5", "10.1.0.0/16", "::1"]


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.0/33", "0.0.0.0/0", "::/0"])
def test_anything_but_addresses_and_networks_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        Settings(trusted_proxies=value)


def test_the_public_url_may_be_given_as_the_fhir_base() -> None:
    assert Settings(public_base_url="https://ehr.example.hk/fhir/").public_base_url == (
        "https://ehr.example.hk"
    )


def test_the_demo_names_its_clinics_for_letters_unless_the_environment_does() -> None:
    from carevault.cli.server import demo_clinic_names
    from carevault.sim.group import build_group

    group = build_group(7)
    names = demo_clinic_names(group, {})
    settings = Settings(**names)  # type: ignore[arg-type]
    assert set(settings.clinic_names) == {clinic.id for clinic in group.clinics}
    first = group.clinics[0]
    assert settings.clinic_names_in("en")[first.id] == first.name
    assert settings.clinic_names_in("zh-Hant")[first.id] == first.name_zh
    assert set(demo_clinic_names(group, {"CAREVAULT_CLINIC_NAMES": "{}"})) == {"clinic_names_zh"}
