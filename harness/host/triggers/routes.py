"""ASP.NET-style route templates as the Functions host understands them.

Supports `{name}`, `{name?}`, `{name=default}`, `{name:constraint(args)...}`, `{*rest}` / `{**rest}`,
case-insensitive literals, and precedence (literals before parameters, catch-alls last) so apps with
overlapping routes resolve like they do under `func`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

_PARAM = re.compile(r"\{([^{}]*)\}")
_CONSTRAINT = re.compile(r"([A-Za-z]+)(?:\((.*)\))?$")


class RouteTemplateError(ValueError):
    """A route template the host cannot parse (reported at start-up)."""


def _int_ok(value: str) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    """A constraint that holds when `parse` accepts the value."""

    def ok(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return ok


def _float_ok(value: str) -> bool:
    finite = value.strip().lower() not in {"nan", "inf", "-inf", "infinity", "-infinity"}
    return finite and _parses(float)(value)


_guid_ok = _parses(uuid.UUID)
_datetime_ok = _parses(datetime.fromisoformat)


def _constraint(name: str, arg: str | None) -> Callable[[str], bool]:
    """Build the check for one constraint; unknown constraints are an error, like in ASP.NET."""
    name = name.lower()
    nums = [a.strip() for a in arg.split(",")] if arg is not None else []
    simple: dict[str, Callable[[str], bool]] = {
        "int": _int_ok,
        "long": _int_ok,
        "float": _float_ok,
        "double": _float_ok,
        "decimal": lambda v: re.fullmatch(r"-?\d+(\.\d+)?", v) is not None,
        "bool": lambda v: v.lower() in {"true", "false"},
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _guid_ok,
        "datetime": _datetime_ok,
        "required": lambda v: v != "",
    }
    if name in simple:
        return simple[name]
    try:
        if name == "min":
            return lambda v: _int_ok(v) and int(v) >= int(nums[0])
        if name == "max":
            return lambda v: _int_ok(v) and int(v) <= int(nums[0])
        if name == "range":
            lo, hi = int(nums[0]), int(nums[1])
            return lambda v: _int_ok(v) and lo <= int(v) <= hi
        if name == "minlength":
            return lambda v: len(v) >= int(nums[0])
        if name == "maxlength":
            return lambda v: len(v) <= int(nums[0])
        if name == "length":
            if len(nums) == 1:
                return lambda v: len(v) == int(nums[0])
            lo, hi = int(nums[0]), int(nums[1])
            return lambda v: lo <= len(v) <= hi
        if name == "regex":
            pattern = re.compile(arg or "", re.IGNORECASE)
            return lambda v: pattern.search(v) is not None
    except (IndexError, ValueError, re.error) as exc:
        raise RouteTemplateError(f"bad constraint {name}({arg})") from exc
    raise RouteTemplateError(f"unknown route constraint {name!r}")


@dataclass
class _Param:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    checks: list[Callable[[str], bool]] = field(default_factory=list)


def _parse_param(spec: str) -> _Param:
    """Parse the inside of `{...}`."""
    catch_all = spec.startswith("*")
    spec = spec.lstrip("*")
    default = None
    if "=" in spec:
        spec, default = spec.split("=", 1)
    optional = spec.endswith("?")
    spec = spec.rstrip("?")
    name, _, rest = spec.partition(":")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise RouteTemplateError(f"bad route parameter name {name!r}")
    checks: list[Callable[[str], bool]] = []
    # Constraints are ':'-separated, but a regex argument may itself contain ':'.
    while rest:
        m = re.match(r"regex\((.*)\)$", rest, re.IGNORECASE)
        if m:
            checks.append(_constraint("regex", m.group(1)))
            break
        piece, _, rest = rest.partition(":")
        cm = _CONSTRAINT.match(piece)
        if not cm:
            raise RouteTemplateError(f"bad route constraint {piece!r}")
        checks.append(_constraint(cm.group(1), cm.group(2)))
    return _Param(
        name=name, optional=optional or catch_all, catch_all=catch_all, default=default, checks=checks
    )


@dataclass
class RouteTemplate:
    """A compiled route template: `match(path)` returns route params or None."""

    template: str
    regex: re.Pattern[str]
    params: list[_Param]
    precedence: tuple[int, ...]

    @classmethod
    def parse(cls, template: str) -> RouteTemplate:
        """Compile a template (without the route prefix)."""
        segments = [s for s in template.strip("/").split("/")] if template.strip("/") else []
        pattern = ""
        params: list[_Param] = []
        precedence: list[int] = []
        for index, segment in enumerate(segments):
            if segment == "":
                raise RouteTemplateError(f"empty segment in route {template!r}")
            parts = _PARAM.split(segment)  # literal, spec, literal, spec, ...
            specs = [_parse_param(p) for p in parts[1::2]]
            literals = parts[0::2]
            if any("{" in lit or "}" in lit for lit in literals):
                raise RouteTemplateError(f"unbalanced braces in route {template!r}")
            params.extend(specs)
            if len(specs) == 1 and literals == ["", ""]:
                p = specs[0]
                if p.catch_all:
                    if index != len(segments) - 1:
                        raise RouteTemplateError(f"catch-all must be last in route {template!r}")
                    pattern += f"(?:/(?P<{p.name}>.*))?"
                    precedence.append(5)
                elif p.optional or p.default is not None:
                    pattern += f"(?:/(?P<{p.name}>[^/]+))?"
                    precedence.append(4)
                else:
                    pattern += f"/(?P<{p.name}>[^/]+)"
                    precedence.append(2 if p.checks else 3)
                continue
            if any(p.catch_all for p in specs):
                raise RouteTemplateError(f"catch-all must be a whole segment in route {template!r}")
            seg = ""
            for i, lit in enumerate(literals):
                seg += re.escape(lit)
                if i < len(specs):
                    p = specs[i]
                    seg += f"(?P<{p.name}>[^/]+?)" + ("?" if p.optional else "")
            pattern += "/" + seg
            precedence.append(0 if not specs else 1)
        names = [p.name.lower() for p in params]
        if len(set(names)) != len(names):
            raise RouteTemplateError(f"duplicate parameter in route {template!r}")
        regex = re.compile(pattern + "/?$" if pattern else "/?$", re.IGNORECASE)
        return cls(template=template, regex=regex, params=params, precedence=tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """Match a path relative to the route prefix (leading '/' optional); apply constraints."""
        if not path.startswith("/"):
            path = "/" + path
        if path != "/" and path.endswith("/"):
            path = path[:-1]
        m = self.regex.match("" if path == "/" else path)
        if not m:
            return None
        values: dict[str, str] = {}
        for p in self.params:
            value = m.group(p.name)
            if value is None or value == "":
                if p.default is not None:
                    values[p.name] = p.default
                elif not p.optional:
                    return None
                continue
            if not all(check(value) for check in p.checks):
                return None
            values[p.name] = value
        return values


def sort_key(route: RouteTemplate) -> tuple[tuple[int, ...], int]:
    """More specific routes first: segment kinds left to right, then longer templates."""
    return (route.precedence, -len(route.precedence))
