"""The end-to-end tests' outside tools (Chromium, nginx, the pinned Node clients): installed by
tests/install-tooling.sh, once per test run, only when something is missing, so that plain
`uv run pytest` passes on a fresh machine as well as under .ci/run."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "install-tooling.sh"
INSTALL_TIMEOUT = 20 * 60


@functools.cache
def install_missing_tooling() -> str:
    """Run the install script (idempotent); returns its output, for failure messages."""
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{SCRIPT.name} did not finish within {INSTALL_TIMEOUT} s"
    return f"{SCRIPT.name} exited {result.returncode}: {(result.stdout + result.stderr)[-2000:]}"
