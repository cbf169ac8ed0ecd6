"""tests/system.py: a missing system program skips the test naming its Debian package, or fails it under CI."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.system import REQUIRE_VAR, require_tool

ABSENT = "work-agent-no-such-program"


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_found_program_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_VAR, "1")
    program = executable(tmp_path, ABSENT)
    assert require_tool(ABSENT, "some-package", str(tmp_path)) == str(program)
    monkeypatch.setenv("PATH", str(tmp_path))  # found on PATH as well
    assert require_tool(ABSENT, "some-package") == str(program)


def test_a_file_that_is_not_executable_does_not_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_VAR, raising=False)
    (tmp_path / ABSENT).write_text("not a program\n")
    with pytest.raises(pytest.skip.Exception):
        require_tool(ABSENT, "some-package", str(tmp_path))


def test_missing_skips_with_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_VAR, raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        require_tool(ABSENT, "some-package")
    assert str(info.value) == f"needs {ABSENT}: apt-get install some-package"


@pytest.mark.parametrize("value", ["1", "true"])
def test_missing_fails_when_ci_requires_the_tools(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(REQUIRE_VAR, value)
    with pytest.raises(pytest.fail.Exception) as info:
        require_tool(ABSENT, "some-package")
    message = str(info.value)
    assert message.count("\n") == 0 and "apt-get install some-package" in message and REQUIRE_VAR in message


def test_ci_requires_the_tools_before_it_runs_the_tests() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    exported = re.search(rf"^export {REQUIRE_VAR}=1\b", script, re.MULTILINE)
    tests = re.search(r"^python -m pytest\b", script, re.MULTILINE)
    assert exported and tests and exported.start() < tests.start()
