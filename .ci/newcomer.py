"""The newcomer's path, as a user on a clean machine walks it.

tox installs the `dev` extra, which pulls in everything, so a module that `python -m harness` imports
but the README's extras do not install stays invisible to the test run (it happened: `httpx_sse`).
This check builds a fresh venv with exactly the README's install command (read from the README, so
the two cannot drift), runs `python -m harness --help` and a headless `ask` against the weather
sample with `--fresh`, then gives each sample's `requirements.txt` a venv of its own (of the Python its
`.python-version` names, if any: Durable Functions 2.x needs 3.13) and imports the sample's
`function_app.py` there (a sample without one, a standalone worker and client, has each of its
modules imported). Any failure prints what failed and exits 1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_install_command() -> list[str]:
    """The `pip install ...` that the README's first command runs before `python -m harness chat`."""
    for line in README.read_text(encoding="utf-8").splitlines():
        if "python -m harness chat" in line and "pip install" in line:
            for part in line.split("&&"):
                words = shlex.split(part.strip())
                if words[:2] == ["pip", "install"]:
                    return words[2:]
    sys.exit("newcomer: README.md has no line 'pip install ... && python -m harness chat ...'")


def make_venv(where: Path, python: str | None = None) -> Path:
    """A venv of this Python, or of `python` (a sample's own version: see `sample_python`)."""
    if python is None:
        venv.EnvBuilder(with_pip=True, clear=True).create(where)
    else:
        run([python, "-m", "venv", "--clear", where])
    return where / "bin" / "python"


def sample_python(sample: Path) -> str | None:
    """The Python a sample names in `.python-version` (pyenv's file), found under pyenv's versions or
    as `pythonX.Y` on PATH; None when it names none (this Python is used)."""
    wanted = sample / ".python-version"
    if not wanted.is_file():
        return None
    version = wanted.read_text(encoding="utf-8").split()[0]
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
    if pyenv:  # before PATH: pyenv's shim is there for installed versions not enabled, and fails
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    if found is None:
        sys.exit(f"newcomer: samples/{sample.name} needs Python {version}, which this machine does not have")
    return found


def run(args: list[str], *, cwd: Path = ROOT, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    shown = " ".join(shlex.quote(str(a)) for a in args)
    print("+", shown.splitlines()[0][:200], flush=True)
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        sys.exit(f"newcomer: exit {done.returncode} from {' '.join(str(a) for a in args)}")
    return done.stdout


def clean_env() -> dict[str, str]:
    """The machine's environment without anything that would point Python at this checkout or tox."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


def check_readme_path(work: Path) -> None:
    python = make_venv(work / "readme-venv")
    run([python, "-m", "pip", "install", "--quiet", *readme_install_command()])
    env = clean_env()
    help_text = run([python, "-m", "harness", "--help"], env=env)
    if "chat" not in help_text:
        sys.exit("newcomer: `python -m harness --help` does not list the chat command")
    reply = run(
        [python, "-m", "harness", "ask", "WeatherAgent", "Weather in Paris?", "--fresh", "--json"],
        env=env,
        timeout=600,
    )
    answer = json.loads(reply)
    if answer.get("agent") != "WeatherAgent" or not answer.get("response") or not answer.get("toolCalls"):
        sys.exit(f"newcomer: ask gave no reply: {reply[:500]}")
    print("newcomer: README install, --help and ask WeatherAgent work", flush=True)


def sample_requirements(sample: Path) -> tuple[str, ...]:
    lines = sample.joinpath("requirements.txt").read_text(encoding="utf-8").splitlines()
    return tuple(sorted({ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")}))


def sample_settings(sample: Path) -> dict[str, str]:
    settings = sample / "local.settings.json"
    if not settings.is_file():
        return {}
    values = json.loads(settings.read_text(encoding="utf-8")).get("Values", {})
    return {str(k): str(v) for k, v in values.items()}


# Loads a sample's function_app.py as the Functions worker would (by path, from its own folder) and
# checks that it indexes at least one function.
IMPORT_CHECK = """
import runpy, sys
module = runpy.run_path("function_app.py")
app = module.get("app")
functions = app.get_functions() if app is not None else []
if not functions:
    sys.exit("function_app.py defines no app with functions")
print(len(functions), "functions")
"""

# A sample that is not a Functions app (samples/durabletask: a standalone worker and client, which
# need a running scheduler or sidecar to do anything): each module is loaded without running its main.
MODULES_CHECK = """
import pathlib, runpy, sys
modules = sorted(pathlib.Path(".").glob("*.py"))
if not modules:
    sys.exit("no function_app.py and no modules")
for module in modules:
    runpy.run_path(str(module), run_name="newcomer_import")
print(len(modules), "modules")
"""


def check_samples(work: Path) -> None:
    groups: dict[tuple[str | None, ...], list[Path]] = {}
    for sample in sorted(ROOT.joinpath("samples").iterdir()):
        if sample.joinpath("requirements.txt").is_file():
            groups.setdefault((sample_python(sample), *sample_requirements(sample)), []).append(sample)
    for number, ((version, *requirements), samples) in enumerate(groups.items()):
        python = make_venv(work / f"sample-venv-{number}", version)
        # `durableagent` is this checkout; every other line comes from the package index as on Azure.
        wanted = [str(ROOT) if re.fullmatch(r"durableagent\b.*", r) else r for r in requirements]
        run([python, "-m", "pip", "install", "--quiet", *wanted])
        for sample in samples:
            env = clean_env() | sample_settings(sample)
            check = IMPORT_CHECK if sample.joinpath("function_app.py").is_file() else MODULES_CHECK
            out = run([python, "-c", check], cwd=sample, env=env, timeout=300)
            print(f"newcomer: samples/{sample.name} imports with its requirements.txt ({out.strip()})")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="durableagent-newcomer-") as tmp:
        check_readme_path(Path(tmp))
        check_samples(Path(tmp))


if __name__ == "__main__":
    main()
