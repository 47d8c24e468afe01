"""Which Python runs an app (`harness/host/isolated/interpreter.py`): named, the app's `.venv` when it
holds Durable Functions 2.x, else the host's own; and the refusals, each one line saying what to do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.host.errors import AppLoadError
from harness.host.isolated.interpreter import app_python


def make_venv(app: Path, sdk_version: str) -> Path:
    """A `.venv` as `python -m venv` lays it out, with the SDK's dist-info (nothing runs it here)."""
    python = app / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    site = app / ".venv" / "lib" / "python3.13" / "site-packages"
    (site / f"azure_functions_durable-{sdk_version}.dist-info").mkdir(parents=True)
    return python


def test_the_apps_venv_with_the_2x_sdk_runs_it(tmp_path: Path) -> None:
    python = make_venv(tmp_path, "2.0.0rc3")
    assert app_python(tmp_path, None) == str(python)


def test_a_venv_with_the_1x_sdk_leaves_the_app_in_the_host(tmp_path: Path) -> None:
    make_venv(tmp_path, "1.7.0")
    assert app_python(tmp_path, None) is None


def test_no_venv_and_no_2x_requirement_runs_in_the_host(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("azure-functions\nazure-functions-durable>=1.2\n")
    assert app_python(tmp_path, None) is None


@pytest.mark.parametrize(
    "line",
    ["azure-functions-durable==2.0.0rc3", "azure_functions_durable >= 2", "azure-functions-durable~=2.0"],
)
def test_a_2x_requirement_without_its_python_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "requirements.txt").write_text(f"azure-functions\n{line}\n")
    with pytest.raises(AppLoadError, match=r"pass --python PATH"):
        app_python(tmp_path, None)


def test_a_named_python_wins_over_the_venv(tmp_path: Path) -> None:
    make_venv(tmp_path, "2.0.0rc3")
    other = tmp_path / "other-python"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert app_python(tmp_path, other) == str(other)


def test_a_named_python_that_is_missing_or_not_executable(tmp_path: Path) -> None:
    with pytest.raises(AppLoadError, match="no such file"):
        app_python(tmp_path, tmp_path / "nope")
    plain = tmp_path / "plain"
    plain.write_text("")
    os.chmod(plain, 0o644)
    with pytest.raises(AppLoadError, match="not executable"):
        app_python(tmp_path, plain)


def test_a_relative_python_is_made_absolute_without_following_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's process starts in the app folder, so a relative path must not be left relative; and
    a venv's `bin/python` links to its base interpreter, which has none of the venv's packages."""
    base = tmp_path / "base-python"
    base.write_text("#!/bin/sh\n")
    base.chmod(0o755)
    link = tmp_path / "venv" / "bin" / "python"
    link.parent.mkdir(parents=True)
    link.symlink_to(base)
    monkeypatch.chdir(tmp_path)
    assert app_python(tmp_path / "app", Path("venv/bin/python")) == str(link)
