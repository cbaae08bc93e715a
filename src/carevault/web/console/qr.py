"""The QR code an authenticator app scans to enrol a TOTP secret, as inline SVG (no
image request, nothing the Content-Security-Policy has to allow)."""

from __future__ import annotations

import io

import segno
from markupsafe import Markup

from carevault.access import totp

ISSUER = "CareVault"


def enrolment_qr(secret: str, username: str, title: str) -> Markup:
    """The otpauth:// link for ``secret`` as an SVG element labelled ``title``."""
    link = totp.provisioning_uri(secret, username, ISSUER)
    buffer = io.BytesIO()
    segno.make(link, error="m").save(
        buffer,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=5,
        border=4,
        dark="#000",
        light="#fff",
        title=title,
        svgclass="qr",
        lineclass=None,
    )
    # segno writes only its own path data and the escaped title: safe to place as is.
    return Markup(buffer.getvalue().decode().replace("<svg ", '<svg role="img" ', 1))  # noqa: S704


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing it in by hand."""
    return " ".join(secret[index : index + 4] for index in range(0, len(secret), 4))
