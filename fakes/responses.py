"""Turning a chosen step into framework responses (whole or streamed).

Kept apart from the client so the mapping from script to ``ChatResponse`` /
``ChatResponseUpdate`` can be read in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_framework import ChatResponse, ChatResponseUpdate, Content, Message, UsageDetails

from .errors import ScriptError
from .recording import RecordedRequest
from .script import DEFAULT_ERROR_TYPE, Step, to_step
from .templating import render

MAX_FN_DEPTH = 10


@dataclass
class Reply:
    """A step with templates filled in and call ids assigned: ready to send."""

    text: str | None = None
    chunks: list[str] | None = None
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    usage: UsageDetails | None = None
    error: Exception | None = None
    delay: float = 0.0
    conversation_id: str | None = None
    chunk_delay: float = 0.0


def resolve_step(step: Step, request: RecordedRequest, variables: Mapping[str, str]) -> Reply:
    """Run ``fn`` steps, fill templates and compute usage for ``request``.

    Steps returned by a Python ``fn`` are taken literally (no templates): the function
    already saw the request and may legitimately produce braces.
    """
    delay = step.delay
    templated = True
    depth = 0
    while step.fn is not None:
        depth += 1
        if depth > MAX_FN_DEPTH:
            raise ScriptError(f"request #{request.number}: step functions nested deeper than {MAX_FN_DEPTH}")
        produced = step.fn(request)
        if produced is None:
            raise ScriptError(f"request #{request.number}: step function {step.describe()} returned None")
        step = to_step(produced, where=f"request #{request.number}: result of step function", variables=None)
        delay += step.delay
        templated = False

    def fill(value: Any) -> Any:
        if not templated:
            return value
        try:
            return render(value, variables)
        except KeyError as exc:
            raise ScriptError(f"{step.describe()}: unknown placeholder {{{exc.args[0]}}}") from None

    if step.error is not None:
        return Reply(error=(step.error_type or DEFAULT_ERROR_TYPE)(fill(step.error)), delay=delay)
    reply = Reply(
        text=fill(step.text),
        chunks=fill(list(step.chunks)) if step.chunks is not None else None,
        delay=delay,
        conversation_id=step.conversation_id,
        chunk_delay=step.chunk_delay,
    )
    for index, call in enumerate(step.tool_calls):
        call_id = call.call_id or f"call_{request.number}_{index + 1}"
        reply.tool_calls.append((call_id, call.name, fill(dict(call.arguments))))
    reply.usage = _usage(step.usage, request, reply)
    return reply


def build_response(reply: Reply, *, response_id: str, model: str) -> ChatResponse[Any]:
    """The non-streaming form: one assistant message (chunks joined)."""
    contents = _text_contents(reply) + _call_contents(reply)
    return ChatResponse(
        messages=[Message("assistant", contents, message_id=f"{response_id}-msg")],
        response_id=response_id,
        conversation_id=reply.conversation_id,
        model=model,
        finish_reason="tool_calls" if reply.tool_calls else "stop",
        usage_details=reply.usage,
    )


def build_updates(reply: Reply, *, response_id: str, model: str) -> list[ChatResponseUpdate]:
    """The streaming form: one update per chunk, then the tool calls; usage rides on the last one."""
    pieces: list[list[Content]] = [[Content.from_text(chunk)] for chunk in reply.chunks or []]
    if reply.chunks is None and reply.text is not None:
        pieces.append([Content.from_text(reply.text)])
    if reply.tool_calls:
        pieces.append(_call_contents(reply))
    if not pieces:
        pieces.append([])
    if reply.usage is not None:
        pieces[-1] = [*pieces[-1], Content.from_usage(reply.usage)]
    updates = [
        ChatResponseUpdate(
            role="assistant",
            contents=contents,
            response_id=response_id,
            message_id=f"{response_id}-msg",
            conversation_id=reply.conversation_id,
            model=model,
        )
        for contents in pieces
    ]
    updates[-1].finish_reason = "tool_calls" if reply.tool_calls else "stop"
    return updates


def _text_contents(reply: Reply) -> list[Content]:
    text = "".join(reply.chunks) if reply.chunks is not None else reply.text
    return [Content.from_text(text)] if text is not None else []


def _call_contents(reply: Reply) -> list[Content]:
    return [
        Content.from_function_call(call_id, name, arguments=arguments)
        for call_id, name, arguments in reply.tool_calls
    ]


def _usage(explicit: Mapping[str, int] | None, request: RecordedRequest, reply: Reply) -> UsageDetails:
    """Scripted figures where given; otherwise deterministic word counts so usage always exists."""
    given = dict(explicit or {})
    input_tokens = given.get("input_tokens", _request_words(request))
    output_tokens = given.get("output_tokens", _reply_words(reply))
    total_tokens = given.get("total_tokens", input_tokens + output_tokens)
    return UsageDetails(
        input_token_count=input_tokens,
        output_token_count=output_tokens,
        total_token_count=total_tokens,
    )


def _words(text: str) -> int:
    return len(text.split())


def _request_words(request: RecordedRequest) -> int:
    return sum(_content_words(content) for message in request.messages for content in message.contents)


# Words per content object, by identity: each request repeats the whole conversation, and the
# framework hands the fake the same content objects every time. An entry keeps its content
# alive, so an id is never reused while it is cached.
_WORDS: dict[int, tuple[Content, int]] = {}
WORD_CACHE_SIZE = 20_000


def _content_words(content: Content) -> int:
    hit = _WORDS.get(id(content))
    if hit is not None and hit[0] is content:
        return hit[1]
    if content.type == "text":
        count = _words(content.text or "")
    elif content.type == "function_call":
        count = 1 + _words(_as_text(content.arguments))
    elif content.type == "function_result":
        count = _words(_as_text(content.result))
    else:
        count = 0
    if len(_WORDS) >= WORD_CACHE_SIZE:
        _WORDS.clear()
    _WORDS[id(content)] = (content, count)
    return count


def _reply_words(reply: Reply) -> int:
    count = _words("".join(reply.chunks) if reply.chunks is not None else reply.text or "")
    for _, _, arguments in reply.tool_calls:
        count += 1 + _words(_as_text(arguments))
    return count


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
