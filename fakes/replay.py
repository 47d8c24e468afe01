"""Strict replay: what of a request a recording keeps, and the error when a replay departs from it.

A recorded step stores the request it answered in the form ``request_fingerprint`` gives: the
conversation as roles and their text, tool calls and tool results, the offered tools, and the options
that shape the answer. Left out is what differs between a live run and its replay without changing
the conversation: how a provider split text into contents, provider-only contents (reasoning,
usage), ids of messages and responses, the model name (the fake has its own) and whether the call
streamed.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from agent_framework.exceptions import ChatClientException

from .recording import RecordedRequest, jsonable, result_text

COMPARED_CONTENTS = frozenset({"text", "function_call", "function_result"})
IGNORED_OPTIONS = frozenset({"tools", "stream", "additional_properties", "model"})
MAX_DIFF_LINES = 80


class ReplayMismatchError(ChatClientException):
    """A replayed run sent the fake a request the recording has no answer for.

    A chat client exception, so it fails the turn like a provider error and its message (with the
    diff) reaches whoever ran the turn: the HTTP reply, the CLI, the test.
    """


def request_fingerprint(request: RecordedRequest) -> dict[str, Any]:
    """The JSON form of ``request`` that recording stores and replay compares."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        contents: list[dict[str, Any]] = []
        for content in message.contents:
            if content.type not in COMPARED_CONTENTS:
                continue
            if content.type == "text":
                if contents and contents[-1]["type"] == "text":
                    contents[-1]["text"] += content.text or ""  # a stream's pieces are one text
                    continue
                contents.append({"type": "text", "text": content.text or ""})
            elif content.type == "function_call":
                contents.append(
                    {
                        "type": "function_call",
                        "call_id": content.call_id,
                        "name": content.name,
                        "arguments": _arguments(content.arguments),
                    }
                )
            else:
                contents.append(
                    {"type": "function_result", "call_id": content.call_id, "result": result_text(content)}
                )
        if contents:
            messages.append({"role": str(message.role), "contents": contents})
    options = {
        str(key): jsonable(value)
        for key, value in sorted(request.options.items(), key=lambda item: str(item[0]))
        if str(key) not in IGNORED_OPTIONS and not str(key).startswith("_") and value is not None
    }
    fingerprint = {"messages": messages, "tools": sorted(request.tools), "options": options}
    return json.loads(json.dumps(fingerprint, ensure_ascii=False))


def departure(
    recorded: Mapping[str, Any], received: Mapping[str, Any], *, where: str, number: int
) -> ReplayMismatchError:
    """The error for request ``number`` that differs from the recorded one at ``where``, with a diff."""
    diff = list(
        difflib.unified_diff(
            _lines(recorded),
            _lines(received),
            fromfile=f"recorded ({where})",
            tofile=f"received (request #{number})",
            lineterm="",
        )
    )
    if len(diff) > MAX_DIFF_LINES:
        diff = [*diff[:MAX_DIFF_LINES], f"... {len(diff) - MAX_DIFF_LINES} more diff lines"]
    return ReplayMismatchError(
        f"replay departs from the recording: request #{number} differs from {where}\n" + "\n".join(diff),
        log_level=None,
    )


def _lines(value: Mapping[str, Any]) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True).splitlines()


def _arguments(arguments: Any) -> Any:
    """Arguments as data: providers send a JSON string, the framework may have parsed it already."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return arguments
    return jsonable(arguments) if arguments is not None else {}
