"""Letters render: one PDF per patient in their language, and one merged print file;
a page turned into an image is not blank."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from starlette.testclient import TestClient

from carevault.notify.job import notice_key
from carevault.notify.letters import merge_letters
from carevault.notify.scope import parse_scope
from carevault.notify.service import channels_of, send_job
from carevault.web.app import create_app
from tests.integration.notify.conftest import Clinic

pytestmark = pytest.mark.postgres
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def _ink(pdf: Path, tmp_path: Path) -> float:
    """The share of a rendered first page that is not white."""
    stem = tmp_path / pdf.stem
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(stem)],
                   check=True, capture_output=True)  # fmt: skip
    (image_path,) = tmp_path.glob(f"{pdf.stem}*.png")
    image = Image.open(image_path).convert("L")
    histogram = image.histogram()
    return sum(histogram[:200]) / sum(histogram)


def test_letters_render_in_their_language_and_merge(clinic: Clinic, tmp_path: Path) -> None:
    # No email and no SMS: everyone gets a letter.
    channels = {"letter": channels_of(clinic.settings, clinic.services.now_us())["letter"]}
    scope = parse_scope(clinic.scope)
    progress = send_job(clinic.services, channels).run(scope, ("confirmed",))
    incident = scope.incident.incident_id
    folder = clinic.settings.notify_letters_dir / incident  # type: ignore[operator]
    letters = sorted(folder.glob("*.pdf"))
    assert len(letters) == 8
    chinese = folder / (notice_key(incident, clinic.ids["letter_only"]) + ".pdf")
    english = folder / (notice_key(incident, clinic.ids["en_email"]) + ".pdf")
    text_zh = "".join(page.extract_text() for page in PdfReader(chinese).pages)
    text_en = "".join(page.extract_text() for page in PdfReader(english).pages)
    assert "核實碼" in text_zh and "/verify" in text_zh and "彌敦道" in text_zh
    assert "Dear Alice Smith" in text_en and "medical records" in text_en.replace("\n", " ")
    assert _ink(chinese, tmp_path) > 0.01
    assert _ink(english, tmp_path) > 0.01
    assert all(oct(path.stat().st_mode)[-3:] == "600" for path in letters)
    assert progress.print_file is not None
    assert len(PdfReader(progress.print_file).pages) >= 8
    assert merge_letters(letters[:2], tmp_path / "two.pdf") == 2
    # A letter's code verifies as sent by post: its address is not kept, so an address
    # typed with it is neither matched nor refused.
    code = CODE.findall(text_en)[0]
    client = TestClient(
        create_app(clinic.settings, clinic.services),
        base_url="https://clinics.example.hk",
        client=("198.51.100.5", 1),
    )
    answer = client.get("/verify", params={"code": code, "to": "alice@example.com"},
                        headers={"accept": "application/json"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["channel"] == "letter" and answer.json()["sent_to_address"] is None
    page = client.get("/verify", params={"code": code, "to": "alice@example.com"})
    assert "sent by post" in page.text
