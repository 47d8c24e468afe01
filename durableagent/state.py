"""The conversation a session entity keeps, and its serialized form."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent_framework import AgentResponse, Message

SCHEMA_VERSION = 1


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _jsonable(value: Any) -> Any:
    """Tool arguments and results may be any object; state must stay JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value[:1] in "{[" else value
        except ValueError:
            return value
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def tool_calls_of(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Pair each function call in a run with its result, in call order."""
    calls: dict[str, dict[str, Any]] = {}
    for message in messages:
        for content in message.contents:
            if content.type == "function_call":
                call_id = content.call_id or f"call_{len(calls)}"
                calls[call_id] = {
                    "call_id": call_id,
                    "name": content.name,
                    "arguments": _jsonable(content.arguments) if content.arguments is not None else {},
                    "result": None,
                }
            elif content.type == "function_result" and content.call_id in calls:
                result = content.result
                if content.exception is not None:
                    result = f"error: {content.exception}"
                    calls[content.call_id]["error"] = str(content.exception)
                calls[content.call_id]["result"] = _jsonable(result)
    return list(calls.values())


def _compact(value: Any) -> Any:
    """Drop what `from_dict` restores by itself (empty extras, default flags).

    Every turn stores its messages and every poll of a waiting request reads them back, so
    the stored form is kept small.
    """
    if isinstance(value, list):
        return [_compact(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {
        k: _compact(v)
        for k, v in value.items()
        if not (k == "additional_properties" and not v) and not (k == "hosted" and v is False)
    }
    return out


def message_to_dict(message: Message) -> dict[str, Any]:
    """A message in its stored form: agent-framework's `to_dict()`, compacted."""
    return _compact(message.to_dict())


def tool_failures(messages: Iterable[Message]) -> list[str]:
    """'name: error' for every tool call of a run that raised (the framework hands the error to
    the model and carries on; we treat the turn as failed)."""
    return [f"{call['name']}: {call['error']}" for call in tool_calls_of(messages) if "error" in call]


def usage_of(response: AgentResponse) -> dict[str, int]:
    """Token usage in the OpenAI-style names the HTTP API promises."""
    usage = response.usage_details or {}
    prompt = int(usage.get("input_token_count") or 0)
    completion = int(usage.get("output_token_count") or 0)
    total = int(usage.get("total_token_count") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _migrate(data: Mapping[str, Any]) -> dict[str, Any]:
    """Bring stored state written by an older version up to SCHEMA_VERSION."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ValueError(
            f"unsupported state schema_version {version!r} (this version reads <= {SCHEMA_VERSION})"
        )
    migrated = dict(data)
    if version == 0:
        # Version 0 (unreleased) stored the list under "history" and had no statuses.
        history = migrated.pop("history", migrated.get("conversation_history", []))
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise ValueError("stored history must be a list of objects")
        for entry in history:
            if entry.get("role") == "assistant":
                entry.setdefault("status", "success")
        migrated["conversation_history"] = history
    migrated["schema_version"] = SCHEMA_VERSION
    return migrated


class AgentState:
    """History of one session; what the entity persists between operations."""

    def __init__(self, agent_type: str = "Agent") -> None:
        self.agent_type = agent_type
        self.conversation_history: list[dict[str, Any]] = []

    # -- building -------------------------------------------------------
    def add_user_message(
        self, content: str, correlation_id: str, *, role: str = "user", timestamp: str | None = None
    ) -> dict[str, Any]:
        entry = {
            "role": role,
            "content": content,
            "timestamp": timestamp or utc_now(),
            "correlation_id": correlation_id,
        }
        self.conversation_history.append(entry)
        return entry

    def add_assistant_message(
        self, response: AgentResponse, correlation_id: str, *, timestamp: str | None = None
    ) -> dict[str, Any]:
        entry = {
            "role": "assistant",
            "content": response.text,
            "timestamp": timestamp or utc_now(),
            "correlation_id": correlation_id,
            "status": "success",
            "agent_response": {
                "text": response.text,
                "tool_calls": tool_calls_of(response.messages),
                "usage": usage_of(response),
                "messages": [message_to_dict(message) for message in response.messages],
            },
        }
        self.conversation_history.append(entry)
        return entry

    def add_error(self, correlation_id: str, error: str, *, timestamp: str | None = None) -> dict[str, Any]:
        entry = {
            "role": "assistant",
            "content": "",
            "timestamp": timestamp or utc_now(),
            "correlation_id": correlation_id,
            "status": "error",
            "error": error,
        }
        self.conversation_history.append(entry)
        return entry

    def reset(self) -> None:
        self.conversation_history = []

    # -- reading --------------------------------------------------------
    @property
    def message_count(self) -> int:
        return len(self.conversation_history)

    @property
    def last_response(self) -> str | None:
        for entry in reversed(self.conversation_history):
            if entry.get("role") == "assistant" and entry.get("status") == "success":
                return entry.get("content")
        return None

    def reply_for(self, correlation_id: str) -> dict[str, Any] | None:
        """The assistant entry (reply or failure) answering `correlation_id`, if any yet."""
        for entry in reversed(self.conversation_history):
            if entry.get("correlation_id") == correlation_id and entry.get("role") == "assistant":
                return entry
        return None

    def has_correlation(self, correlation_id: str) -> bool:
        return any(entry.get("correlation_id") == correlation_id for entry in self.conversation_history)

    def to_messages(self) -> list[Message]:
        """History to give the agent: every successful earlier turn, tool calls included."""
        failed = {e.get("correlation_id") for e in self.conversation_history if e.get("status") == "error"}
        messages: list[Message] = []
        for entry in self.conversation_history:
            if entry.get("correlation_id") in failed:
                continue
            if entry.get("role") == "assistant":
                stored = (entry.get("agent_response") or {}).get("messages")
                if stored:
                    try:
                        messages.extend(Message.from_dict(m) for m in stored)
                    except Exception as exc:  # from_dict raises several types on bad input
                        raise ValueError(
                            f"stored message of turn {entry.get('correlation_id')} is unreadable: {exc}"
                        ) from None
                    continue
            messages.append(
                Message(role=entry.get("role", "user"), contents=[str(entry.get("content") or "")])
            )
        return messages

    # -- serialization ----------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "agent_type": self.agent_type,
            "message_count": self.message_count,
            "last_response": self.last_response,
            "conversation_history": self.conversation_history,
        }

    def restore_state(self, data: Mapping[str, Any] | None) -> None:
        if not data:
            self.conversation_history = []
            return
        if not isinstance(data, Mapping):
            raise ValueError(f"stored state must be a JSON object, got {type(data).__name__}")
        migrated = _migrate(data)
        history = migrated.get("conversation_history") or []
        if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
            raise ValueError("stored conversation_history must be a list of objects")
        self.agent_type = migrated.get("agent_type") or self.agent_type
        self.conversation_history = history

    def to_dict(self) -> dict[str, Any]:
        return self.get_state()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, agent_type: str = "Agent") -> AgentState:
        state = cls(agent_type)
        state.restore_state(data)
        return state
