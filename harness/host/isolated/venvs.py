"""A venv with an app's requirements, in the Python its `.python-version` names: what the tests and the
benchmarks run Durable Functions 2.x apps in (a user makes the app's `.venv` as with Core Tools).

The venv is kept under `~/.cache/durableagent/` by a key of the Python and the requirements, and made
once: `.installed` is written only after pip succeeded, so a run killed half-way makes it again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

CACHE = Path.home() / ".cache" / "durableagent"


class NoPython(LookupError):
    """The Python version the app names is not on this machine."""


def find_python(version: str) -> str | None:
    """The newest pyenv install of Python `version`, else a `pythonX.Y` on PATH that runs (pyenv's
    shim is on PATH for versions installed but not enabled, and fails when run)."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "--version"], capture_output=True, timeout=30).returncode == 0:
        return found
    return None


def app_venv(app_dir: Path) -> str:
    """The interpreter of a venv holding `app_dir`'s requirements (made now if needed); NoPython when
    the Python its `.python-version` names is missing."""
    version = (app_dir / ".python-version").read_text(encoding="utf-8").split()[0]
    base = find_python(version)
    if base is None:
        raise NoPython(f"{app_dir.name} needs Python {version}, which this machine does not have")
    requirements = (app_dir / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + base.encode()).hexdigest()[:12]
    venv = CACHE / f"app-venv-{key}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    if not done.is_file():
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        install = [str(python), "-m", "pip", "install", "--quiet", "-r", str(app_dir / "requirements.txt")]
        subprocess.run(install, check=True, timeout=900)
        done.write_text("ok\n")
    return str(python)
