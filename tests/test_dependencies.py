"""Every third-party module the package imports is installed by the extras that promise it.

tox installs the `dev` extra, which pulls in everything, so a module the README's
`pip install -e ".[harness,samples]"` leaves out is invisible to the rest of the suite (`httpx_sse`
was: `python -m harness chat` failed on a clean install). This test reads the imports of every
module (with `ast`, so nothing is imported) and checks each against the distributions that the
core dependencies plus the extras a part needs bring in, transitively, as pip would resolve them.
`.ci/newcomer.py` walks the same path for real in a fresh venv; this is the fast guard.
"""

from __future__ import annotations

import ast
import functools
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent

# Which extras a user of each part has installed. A module missing here is held to core + harness.
EXTRAS_FOR_PART = {
    "durableagent": (),
    "fakes": (),
    "harness": ("harness", "samples"),
}
# Modules that are only loaded when the user chose the extra (or the tool) that brings their imports.
EXTRAS_FOR_MODULE = {
    "durableagent/redis_streams.py": ("redis",),
    "durableagent/_http_streams.py": ("streams",),
    # Only for apps built on the HTTP streams extension, which bring it in themselves.
    "harness/host/triggers/asgi.py": ("streams",),
}
# Loaded by pytest only (an entry point of the pytest11 group), so pytest is there by definition.
PROVIDED = {"harness/pytest_plugin.py": {"pytest", "_pytest"}}


def imported_top_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@functools.cache
def closure(extras: tuple[str, ...]) -> set[str]:
    """Distributions that `pip install durableagent[extras]` installs, by canonical name."""
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("durableagent", extras)]
    while todo:
        name, wanted = todo.pop()
        key = f"{canonicalize_name(name)}[{','.join(sorted(wanted))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *wanted)):
                todo.append((req.name, tuple(sorted(req.extras))))
    return {key.split("[")[0] for key in seen}


@functools.cache
def providers() -> dict[str, frozenset[str]]:
    """Top-level module name -> canonical names of the installed distributions that provide it."""
    found = metadata.packages_distributions()
    return {name: frozenset(canonicalize_name(d) for d in dists) for name, dists in found.items()}


def module_files() -> list[Path]:
    return sorted(p for part in EXTRAS_FOR_PART for p in ROOT.joinpath(part).rglob("*.py"))


@pytest.mark.parametrize("path", module_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_is_installed_by_the_extras_that_promise_it(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    part = relative.split("/")[0]
    installed = closure(tuple(sorted({*EXTRAS_FOR_PART[part], *EXTRAS_FOR_MODULE.get(relative, ())})))
    own = set(EXTRAS_FOR_PART) | set(sys.stdlib_module_names) | PROVIDED.get(relative, set())
    missing = {
        name: sorted(providers().get(name, {"not installed"}))
        for name in imported_top_names(path) - own
        if not providers().get(name, frozenset()) & installed
    }
    assert not missing, f"{relative} imports modules its extras do not install: {missing}"
