"""What the fake model received: in-memory records and the JSON-lines record file.

The record file lets a test in one process see the requests a fake answered in another
process (a Functions host), so every line is self-contained, JSON-safe and flushed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_framework import Content, Message

RECORDED_MESSAGES = 100


@dataclass
class RecordedRequest:
    """One model request as the fake saw it (the framework objects, not copies)."""

    messages: list[Message]
    tools: list[str]
    options: dict[str, Any]
    stream: bool
    number: int = 0
    """1-based position of this request among all requests the client received."""
    _call_names: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of_call(
        cls, messages: Sequence[Message], options: Mapping[str, Any], *, stream: bool
    ) -> RecordedRequest:
        """The request of one model call, from its messages and validated options."""
        return cls(
            messages=list(messages),
            tools=tool_names(options.get("tools")),
            options=dict(options),
            stream=stream,
        )

    def __post_init__(self) -> None:
        for message in self.messages:
            for content in message.contents:
                if content.type == "function_call" and content.call_id:
                    self._call_names[content.call_id] = content.name or ""

    @property
    def user_text(self) -> str:
        """Text of the latest user message ("" when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    @property
    def after_tool(self) -> bool:
        """True when the request ends with a tool result, i.e. the model is asked to use it."""
        return bool(self.messages) and any(c.type == "function_result" for c in self.messages[-1].contents)

    @property
    def tool_result(self) -> str:
        """Text of the most recent tool result in the request ("" when there is none)."""
        result = self._last_result()
        return result_text(result) if result is not None else ""

    @property
    def tool_name(self) -> str:
        """Name of the tool that produced the most recent tool result ("" when unknown)."""
        result = self._last_result()
        if result is None or not result.call_id:
            return ""
        return self._call_names.get(result.call_id, "")

    def _last_result(self) -> Content | None:
        for message in reversed(self.messages):
            for content in reversed(message.contents):
                if content.type == "function_result":
                    return content
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form written to the record file.

        Only the last RECORDED_MESSAGES messages are written (`omitted_messages` counts the rest):
        every request carries the whole conversation, so full copies would make the record file
        grow with the square of a long chat's length.
        """
        kept = self.messages[-RECORDED_MESSAGES:]
        return {
            "messages": [
                {
                    "role": str(message.role),
                    "text": message.text,
                    "contents": [_content_dict(content) for content in message.contents],
                }
                for message in kept
            ],
            "omitted_messages": len(self.messages) - len(kept),
            "tools": list(self.tools),
            "options": {str(key): _options_value(key, value) for key, value in self.options.items()},
            "stream": self.stream,
        }


def tool_names(tools: Any) -> list[str]:
    """Names of the tools offered in a request's ``tools`` option, whatever form they take."""
    if tools is None:
        return []
    if not isinstance(tools, Sequence) or isinstance(tools, str | bytes):
        tools = [tools]
    names: list[str] = []
    for tool in tools:
        if isinstance(tool, Mapping):
            function = tool.get("function")
            name = tool.get("name") or (function.get("name") if isinstance(function, Mapping) else None)
        else:
            name = getattr(tool, "name", None) or getattr(tool, "__name__", None)
        names.append(str(name) if name else type(tool).__name__)
    return names


def jsonable(value: Any) -> Any:
    """Convert ``value`` into something ``json.dumps`` accepts, stringifying anything odd."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return jsonable(to_dict())
        except Exception:  # a broken to_dict must not break recording
            pass
    return str(value)


def _content_dict(content: Content) -> Any:
    # The common kinds directly from their fields: Content.to_dict is slow and this runs for
    # every message of every request.
    if content.type == "text":
        return {"type": "text", "text": content.text}
    if content.type == "function_call":
        return {
            "type": "function_call",
            "call_id": content.call_id,
            "name": content.name,
            "arguments": jsonable(content.arguments),
        }
    if content.type == "function_result":
        return {"type": "function_result", "call_id": content.call_id, "result": result_text(content)}
    try:
        return jsonable(content.to_dict())
    except Exception:  # fall back to a readable string
        return {"type": str(content.type), "repr": str(content)}


def _options_value(key: Any, value: Any) -> Any:
    if key == "tools":
        return tool_names(value)
    return jsonable(value)


def result_text(content: Content) -> str:
    if isinstance(content.result, str) and content.result:
        return content.result
    items = getattr(content, "items", None) or []
    texts = [item.text for item in items if getattr(item, "type", None) == "text" and item.text]
    if texts:
        return "\n".join(texts)
    return "" if content.result is None else str(content.result)


def append_record(path: str | os.PathLike[str], request: RecordedRequest, **outcome: Any) -> None:
    """Append ``request`` (plus ``outcome``: what answered it) as one JSON line, flushed so another
    process can read it at once."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    record = {**request.to_dict(), **jsonable(outcome)}
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (valid in a JSON string, not in UTF-8) must not fail the model call it
        # records: escaped as \udXXX, the line is ASCII and reads back to the same text.
        line = json.dumps(record)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()


def read_recorded(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a record file written by the fake; a missing file means nothing was recorded yet.

    A final line without its newline may still be being written, so it is skipped when it
    does not parse.
    """
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break
            raise ValueError(f"{target}: line {index + 1} is not valid JSON") from None
    return records
