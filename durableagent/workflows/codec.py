"""JSON for what crosses a durable boundary in a workflow: messages between executors, shared
state, outputs and human-input requests.

Stored layout: a JSON scalar, list or string-keyed object is itself; a typed value is
`{"$type": "module:QualName", "$value": ...}` where `$value` is the dataclass's fields (each
encoded), a Pydantic model's `model_dump(mode="json")`, an agent-framework type's `to_dict()`, or an
enum member's value; an object whose own keys could be read as a typed value is wrapped as
`{"$dict": {...}}`.

Why not agent-framework's checkpoint encoding: it pickles, and orchestration histories are read
back by processes other than the one that wrote them (a host restart, a replay check of a history
exported from Azure). Here decoding only ever calls `model_validate`, `from_dict`, a dataclass's
constructor or an enum lookup, on a class that is one of those four kinds; nothing else named in
the data is instantiated. Values from HTTP bodies never go through `decode` at all: they are
converted to the start executor's input type by `convert_input`, which ignores `$type`.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

TYPE_KEY = "$type"
VALUE_KEY = "$value"
DICT_KEY = "$dict"


class CodecError(ValueError):
    """A value that cannot cross a durable boundary, or stored data that does not decode."""


def _type_key(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_serialization_mixin(value: object) -> bool:
    return callable(getattr(value, "to_dict", None)) and callable(getattr(type(value), "from_dict", None))


def encode(value: Any) -> Any:
    """`value` as JSON-ready data that `decode` turns back into an equal value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return {TYPE_KEY: _type_key(type(value)), VALUE_KEY: encode(value.value)}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise CodecError(
                f"a mapping with non-string keys cannot be stored: {sorted(map(repr, value))[:3]}"
            )
        body = {key: encode(item) for key, item in value.items()}
        return {DICT_KEY: body} if (TYPE_KEY in body or DICT_KEY in body) else body
    if isinstance(value, BaseModel):
        return {TYPE_KEY: _type_key(type(value)), VALUE_KEY: value.model_dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {TYPE_KEY: _type_key(type(value)), VALUE_KEY: fields}
    if _is_serialization_mixin(value):
        return {TYPE_KEY: _type_key(type(value)), VALUE_KEY: value.to_dict()}
    raise CodecError(
        f"a {type(value).__qualname__} cannot cross a workflow step: use a str, number, list, dict, "
        "dataclass, Pydantic model or agent-framework type"
    )


def _resolve(key: object) -> type:
    if not isinstance(key, str) or ":" not in key:
        raise CodecError(f"stored value names no type: {key!r}")
    module_name, qualname = key.split(":", 1)
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        raise CodecError(f"stored value's type {key} is not importable here") from None
    if not isinstance(target, type):
        raise CodecError(f"stored value's type {key} is not a class")
    return target


def decode(data: Any) -> Any:
    """The value `encode` stored as `data`."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if DICT_KEY in data and len(data) == 1:
        return {key: decode(item) for key, item in data[DICT_KEY].items()}
    if TYPE_KEY not in data:
        return {key: decode(item) for key, item in data.items()}
    cls = _resolve(data[TYPE_KEY])
    raw = data.get(VALUE_KEY)
    if issubclass(cls, enum.Enum):
        return cls(decode(raw))
    if issubclass(cls, BaseModel):
        return cls.model_validate(raw)
    if dataclasses.is_dataclass(cls):
        if not isinstance(raw, dict):
            raise CodecError(f"stored {data[TYPE_KEY]} has no fields")
        return cls(**{name: decode(item) for name, item in raw.items()})
    if callable(getattr(cls, "from_dict", None)) and callable(getattr(cls, "to_dict", None)):
        return cls.from_dict(raw)
    raise CodecError(
        f"stored value's type {data[TYPE_KEY]} is not a dataclass, model or agent-framework type"
    )


def plain(value: Any) -> Any:
    """`value` as plain JSON for HTTP clients (no type markers): what the status route shows."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    text = getattr(value, "text", None)
    if isinstance(text, str) and type(value).__name__ in ("AgentResponse", "Message"):
        return text
    if _is_serialization_mixin(value):
        return value.to_dict()
    return str(value)


def type_name(tp: Any) -> str:
    """A readable name for a type annotation (`str`, `Approval`, `list[str]`, `int | None`)."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def convert_input(raw: Any, targets: list[Any]) -> Any:
    """An HTTP body (already JSON-decoded, or text) as the first of `targets` it fits.

    Text bodies fit `str`; JSON fits a model/dataclass through Pydantic's validation (so a client
    cannot name a class of its choosing). Raises `CodecError` naming the types it tried.
    """
    problems: list[str] = []
    for target in targets:
        if target in (Any, object):
            return raw
        if target is str and isinstance(raw, str):
            return raw
        try:
            return TypeAdapter(target).validate_python(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            problems.append(f"{type_name(target)}: {where}: {first.get('msg')}")
        except Exception as exc:  # a type Pydantic cannot validate at all
            problems.append(f"{type_name(target)}: {exc}")
    raise CodecError("input does not fit " + "; ".join(problems) if problems else "no input type")


def input_types_of(types_: list[Any]) -> list[Any]:
    """Union members spelled out (`A | B` -> [A, B]) so each is tried on its own."""
    out: list[Any] = []
    for tp in types_:
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            out.extend(typing.get_args(tp))
        else:
            out.append(tp)
    # str last: a JSON object should become the model, not its text
    return sorted(out, key=lambda t: t is str)


def json_schema_of(tp: Any) -> dict[str, Any] | None:
    """The JSON schema of a response type, for forms and the status route; None if it has none."""
    try:
        return TypeAdapter(tp).json_schema()
    except Exception:
        return None


def dumps(value: Any) -> str:
    return json.dumps(encode(value))
