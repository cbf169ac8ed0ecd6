"""System programs some tests need: missing, the test skips naming the Debian package, or fails under CI."""

from __future__ import annotations

import os
import shutil

import pytest

# Set by .ci/run: there a missing program is a failure, so CI never skips a test silently.
REQUIRE_VAR = "WORK_AGENT_REQUIRE_SYSTEM_TOOLS"
# Searched after PATH: Debian installs nginx in /usr/sbin, which a normal user's PATH may lack.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
MISSING = "needs {tool}: apt-get install {package}"
MISSING_REQUIRED = "{missing} ({var}=1 makes a missing system program a failure instead of a skip)"


def required() -> bool:
    """Whether missing programs fail the test (CI) instead of skipping it."""
    return os.environ.get(REQUIRE_VAR, "").strip().lower() in ("1", "true", "yes")


def find_tool(name: str, *dirs: str) -> str | None:
    """The path of program `name`: in `dirs` first, then on PATH, then in the sbin directories."""
    search = os.pathsep.join([*dirs, os.environ.get("PATH", os.defpath), *SBIN_DIRS])
    return shutil.which(name, path=search)


def require_tool(name: str, package: str, *dirs: str) -> str:
    """The path of program `name` (Debian package `package`); missing, skip the test or, under CI, fail it."""
    found = find_tool(name, *dirs)
    if found:
        return found
    missing = MISSING.format(tool=name, package=package)
    if required():
        pytest.fail(MISSING_REQUIRED.format(missing=missing, var=REQUIRE_VAR), pytrace=False)
    pytest.skip(missing)
