"""Which Python runs an app: the host's own (in-process, the 1.x SDK's JSON protocol) or the app's.

Durable Functions 2.x (`azure-functions-durable>=2`) needs Python 3.13 and speaks the Durable Task
protocol, so an app on it runs in its own interpreter: the one `--python` names, else the app
folder's `.venv` when that holds the 2.x SDK (Core Tools' convention for an app's packages). An app
whose requirements ask for 2.x with neither is refused with what to do, rather than imported into
the host's interpreter, where the 1.x SDK would run it differently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import AppLoadError

# `azure-functions-durable` with a version of 2 or more asked for (==2.0.0rc3, >=2, ~=2.0, ...)
_WANTS_2X = re.compile(
    r"^\s*azure[-_]functions[-_]durable\s*(?:\[[^\]]*\])?\s*(?:==|>=|~=|===)\s*([2-9]|\d\d)", re.I | re.M
)


def venv_python(app_dir: Path) -> Path | None:
    """The app folder's `.venv` interpreter, if there is one."""
    for candidate in (app_dir / ".venv" / "bin" / "python", app_dir / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def venv_sdk_major(app_dir: Path) -> int | None:
    """The major version of azure-functions-durable in the app's `.venv`, None when absent."""
    for info in sorted(
        (app_dir / ".venv").glob("lib/python*/site-packages/azure_functions_durable-*.dist-info")
    ):
        version = info.name.split("-")[1]
        if version[:1].isdigit():
            return int(re.match(r"\d+", version).group())  # type: ignore[union-attr]
    return None


def wants_2x(app_dir: Path) -> bool:
    """Whether the app's requirements.txt asks for azure-functions-durable 2.x."""
    requirements = app_dir / "requirements.txt"
    try:
        return bool(_WANTS_2X.search(requirements.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def app_python(app_dir: Path, python: str | os.PathLike[str] | None) -> str | None:
    """The interpreter to run the app in, None for the host's own (see the module docstring)."""
    if python is not None:
        path = Path(python).expanduser()
        if not path.is_absolute() and path.parent == Path("."):
            return str(python)  # a name on PATH, e.g. python3.13: the start says if it cannot run
        if not path.is_file():
            raise AppLoadError(f"--python {python}: no such file")
        if not os.access(path, os.X_OK):
            raise AppLoadError(f"--python {python}: not executable")
        # Absolute (the app's process starts in the app folder), links kept (a venv's `bin/python`
        # links to its base interpreter, which has none of the venv's packages).
        return os.path.abspath(path)
    venv = venv_python(app_dir)
    if venv is not None and (venv_sdk_major(app_dir) or 0) >= 2:
        return str(venv)
    if wants_2x(app_dir):
        raise AppLoadError(
            f"{app_dir / 'requirements.txt'} asks for azure-functions-durable 2.x, which runs on Python 3.13 "
            "in the app's own interpreter: pass --python PATH (a Python with the app's requirements "
            "installed) or make the app's .venv (python3.13 -m venv .venv && .venv/bin/pip install "
            "-r requirements.txt)"
        )
    return None


def require_2x(description: dict[str, object], python: str) -> str:
    """The SDK version the app's interpreter reported; AppLoadError unless it is 2.x or later (an app
    runs in its own interpreter only on the Durable Task protocol)."""
    sdk = str(description.get("sdk") or "")
    if not sdk[:1].isdigit() or int(re.match(r"\d+", sdk).group()) < 2:  # type: ignore[union-attr]
        found = f"azure-functions-durable {sdk}" if sdk else "no azure-functions-durable"
        raise AppLoadError(
            f"{python} has {found}: an app runs in its own interpreter only on Durable Functions 2.x; "
            "run a 1.x app without --python (in the host's interpreter)"
        )
    return sdk
