"""``/verify?code=`` as a script calls it (README, "For scripts"): integrator round 57."""

from __future__ import annotations

import pytest

from tests.integration.notify.conftest import Clinic
from tests.integration.notify.test_verify import _checks, _client

pytestmark = pytest.mark.postgres


def test_an_empty_code_is_no_code_not_a_code_that_is_not_genuine(clinic: Clinic) -> None:
    """README: "400 {"error"} without a code". A script that sends ``?code=$CODE`` with
    an empty variable was answered 200 ``{"genuine": false}``, and reported a patient's
    notice as not genuine (and told them to distrust it) when it had no code to check.
    Empty or blank, it is answered as no code: 400 for JSON, the form for a browser, and
    no check is made or recorded."""
    client = _client(clinic, "198.51.100.57")
    for empty in ("", " ", "%20%20"):
        answer = client.get(f"/verify?code={empty}", headers={"accept": "application/json"})
        assert answer.status_code == 400, (empty, answer.text)
        assert set(answer.json()) == {"error"}
        page = client.get(f"/verify?code={empty}")
        assert page.status_code == 200 and 'name="code"' in page.text
        assert "12 letters" not in page.text
    assert _checks(clinic) == []
