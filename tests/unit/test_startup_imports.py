"""What a process imports before it does anything: every CLI command and every server
process (and each worker uvicorn restarts) pays for it, and the tests run about a hundred
of them. The scope engine's, the PDF makers' and the SMS channel's libraries are imported
where they are used, not at start-up."""

from __future__ import annotations

import subprocess
import sys

#: Imported only by the code that uses them (the scope engine and segment sealing; the
#: letters and reports; the SMS gateway channel).
LATE = ("pyarrow", "numpy", "duckdb", "reportlab", "pypdf", "httpx")


def test_the_cli_the_services_and_the_web_app_start_without_the_heavy_libraries() -> None:
    # A fresh interpreter: this test process has imported much more already.
    script = (
        "import sys\n"
        "import carevault.cli, carevault.bootstrap, carevault.web.app\n"
        f"print(' '.join(name for name in {LATE!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
