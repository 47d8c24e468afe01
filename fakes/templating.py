"""Tiny ``{name}`` template language used by script text and tool-call arguments.

``str.format`` is avoided on purpose: it chokes on stray braces and attribute syntax,
while scripts only need plain named placeholders (``{{`` and ``}}`` escape braces).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(value: Any) -> set[str]:
    """Return every placeholder name used in ``value`` (strings inside lists/dicts included)."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.group(1) for m in _TOKEN.finditer(value) if m.group(1))
    elif isinstance(value, Mapping):
        for item in value.values():
            found |= placeholders(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= placeholders(item)
    return found


def render(value: Any, variables: Mapping[str, str]) -> Any:
    """Substitute placeholders in ``value``; unknown names raise ``KeyError`` naming the placeholder."""
    if isinstance(value, str):
        return _TOKEN.sub(lambda m: _replace(m, variables), value)
    if isinstance(value, Mapping):
        return {key: render(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, variables) for item in value]
    return value


def _replace(match: re.Match[str], variables: Mapping[str, str]) -> str:
    token = match.group(0)
    if token == "{{":
        return "{"
    if token == "}}":
        return "}"
    name = match.group(1)
    if name not in variables:
        raise KeyError(name)
    return variables[name]


def escape(value: Any) -> Any:
    """Make ``value`` render as itself: every brace doubled (strings inside lists/dicts included)."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, Mapping):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape(item) for item in value]
    return value
