"""The conversation a session entity keeps, and its serialized form."""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from agent_framework import AgentResponse, Message

from . import clock

SCHEMA_VERSION = 2
AGENT_MESSAGE_KIND = "agent_message"
"""`agent_response["kind"]` of a stored reply, as documented; lets a reader of raw state tell a
reply's record from other entries without relying on the field set."""
# Newest entries kept as objects in the stored state; older ones are folded into compressed chunks
# of this many entries.
RECENT_ENTRIES = 16
MAX_CHUNK_BYTES = 64 * 1024 * 1024  # far above 16 entries of at most ~1 MiB each
MAX_FORK_FAILURES = 8
"""Failed forks a session remembers (so a route waiting on one can answer why); older ones drop."""


def utc_now() -> str:
    return clock.utc_now().isoformat()


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


def _check_history(history: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise ValueError(f"stored {what} must be a list of objects")
    return history


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
        history = _check_history(migrated.pop("history", migrated.get("conversation_history", [])), "history")
        for entry in history:
            if entry.get("role") == "assistant":
                entry.setdefault("status", "success")
        migrated["conversation_history"] = history
    # Version 1 kept every entry in "conversation_history"; version 2 reads that as it is (it is also
    # the shape `get_state()` returns) and folds older entries into `earlier_history` as it grows.
    migrated["schema_version"] = SCHEMA_VERSION
    return migrated


def _correlation_ids(entries: list[dict[str, Any]]) -> tuple[str, ...]:
    ids = dict.fromkeys(str(e["correlation_id"]) for e in entries if e.get("correlation_id") is not None)
    return tuple(ids)


def turn_numbers(entries: Iterable[Mapping[str, Any]]) -> list[int]:
    """The turn (from 1) each entry belongs to: one request and the reply or failure answering it.

    A turn starts at a caller's message, or where the correlation id changes (a reply stored
    without its request). The CLI's `show`, the TUI and `fork` all number turns with this, so
    "turn 3" means the same entries everywhere.
    """
    numbers: list[int] = []
    turn = 0
    last: object = object()
    for entry in entries:
        correlation = entry.get("correlation_id")
        if entry.get("role") != "assistant" or correlation != last:
            turn += 1
        last = correlation
        numbers.append(turn)
    return numbers


@dataclass(frozen=True)
class HistoryChunk:
    """Older entries folded together: compressed JSON, plus the correlation ids they answer, so a
    lookup by correlation id opens only the chunk that holds it."""

    count: int
    correlation_ids: tuple[str, ...]
    data: str  # base64 of the zlib-compressed JSON list of entries

    @classmethod
    def pack(cls, entries: list[dict[str, Any]]) -> HistoryChunk:
        text = json.dumps(entries, separators=(",", ":"))
        data = base64.b64encode(zlib.compress(text.encode("utf-8"))).decode("ascii")
        return cls(len(entries), _correlation_ids(entries), data)

    def unpack(self) -> list[dict[str, Any]]:
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(base64.b64decode(self.data, validate=True), MAX_CHUNK_BYTES)
        except (ValueError, zlib.error):  # binascii.Error is a ValueError
            raise ValueError("a stored earlier_history chunk is not compressed data") from None
        if inflater.unconsumed_tail:
            raise ValueError(f"a stored earlier_history chunk unpacks to over {MAX_CHUNK_BYTES} bytes")
        try:
            entries = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("a stored earlier_history chunk is not JSON") from None
        entries = _check_history(entries, "earlier_history chunk")
        if len(entries) != self.count:
            raise ValueError(f"a stored earlier_history chunk holds {len(entries)} entries, not {self.count}")
        if _correlation_ids(entries) != self.correlation_ids:
            raise ValueError("a stored earlier_history chunk lists other correlation ids than it holds")
        return entries

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "correlation_ids": list(self.correlation_ids), "data": self.data}

    @cached_property
    def json_text(self) -> str:
        """`json.dumps(self.to_dict())`, made once: a chunk never changes, and a long session's
        stored text is mostly its chunks (`AgentState.to_json`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, value: Any) -> HistoryChunk:
        if isinstance(value, Mapping):
            count, ids, data = value.get("count"), value.get("correlation_ids"), value.get("data")
            if (
                type(count) is int
                and count > 0
                and isinstance(ids, list)
                and all(isinstance(i, str) for i in ids)
                and isinstance(data, str)
            ):
                return cls(count, tuple(ids), data)
        raise ValueError("stored earlier_history chunks must be {count, correlation_ids, data}")


class AgentState:
    """History of one session; what the entity persists between operations.

    The stored form keeps the newest entries as JSON objects (``recent_history``) and folds older
    ones, RECENT_ENTRIES at a time, into compressed chunks (``earlier_history``). Every turn and
    every poll of a waiting request decodes and re-encodes the whole stored state, so this keeps
    their cost nearly flat as a conversation grows (about an eighth of the size, and base64 needs
    no escaping). Chunks are opened only when the whole history is needed: the GET route, or a
    worker that has not cached the session's messages.
    """

    def __init__(self, agent_type: str = "Agent") -> None:
        self.agent_type = agent_type
        self.reset()

    # -- building -------------------------------------------------------
    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        self._recent.append(entry)
        while len(self._recent) >= 2 * RECENT_ENTRIES:
            self._fold(RECENT_ENTRIES)
        return entry

    def _fold(self, count: int) -> None:
        """Move the oldest `count` recent entries into a new compressed chunk."""
        moved, self._recent = self._recent[:count], self._recent[count:]
        if not moved:
            return
        self._chunks.append(HistoryChunk.pack(moved))
        if self._earlier is not None:
            self._earlier.extend(moved)
        self._earlier_count += len(moved)
        self._earlier_last_response = _last_success(moved, self._earlier_last_response)

    def add_user_message(
        self, content: str, correlation_id: str, role: str = "user", *, timestamp: str | None = None
    ) -> dict[str, Any]:
        """Append a caller's message (the documented signature: `role` may be given positionally)."""
        return self._append(
            {
                "role": role,
                "content": content,
                "timestamp": timestamp or utc_now(),
                "correlation_id": correlation_id,
            }
        )

    def add_assistant_message(
        self,
        content: str | AgentResponse,
        agent_response: AgentResponse | str | None = None,
        correlation_id: str | None = None,
        *,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """Append a successful reply: `add_assistant_message(content, agent_response)` as documented.

        `agent_response` (an agent-framework `AgentResponse`) supplies the tool calls, usage and
        messages the next turn replays; without it the reply is stored as its text alone.
        `correlation_id` defaults to the turn the reply answers: the newest entry's, when that is a
        message still waiting for its reply, else a new id. The earlier form
        `add_assistant_message(response, correlation_id)` is still accepted, so code written
        against it keeps working.
        """
        if isinstance(content, AgentResponse):  # the earlier (response, correlation_id) form
            if agent_response is not None and not isinstance(agent_response, str):
                raise TypeError("add_assistant_message(response, correlation_id): correlation_id is a str")
            content, agent_response, correlation_id = content.text, content, agent_response or correlation_id
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}")
        if agent_response is not None and not isinstance(agent_response, AgentResponse):
            raise TypeError(f"agent_response must be an AgentResponse, got {type(agent_response).__name__}")
        entry: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "timestamp": timestamp or utc_now(),
            "correlation_id": correlation_id or self._awaiting_reply() or uuid.uuid4().hex,
            "status": "success",
        }
        if agent_response is not None:
            entry["agent_response"] = {
                "kind": AGENT_MESSAGE_KIND,
                "text": agent_response.text,
                "tool_calls": tool_calls_of(agent_response.messages),
                "usage": usage_of(agent_response),
                "messages": [message_to_dict(message) for message in agent_response.messages],
            }
        return self._append(entry)

    def _awaiting_reply(self) -> str | None:
        """The correlation id of the newest entry when it is a message with no reply yet."""
        newest = self.entry_from_end(1)
        if newest is None or newest.get("role") == "assistant":
            return None
        correlation_id = newest.get("correlation_id")
        return correlation_id if isinstance(correlation_id, str) else None

    def add_error(self, correlation_id: str, error: str, *, timestamp: str | None = None) -> dict[str, Any]:
        return self._append(
            {
                "role": "assistant",
                "content": "",
                "timestamp": timestamp or utc_now(),
                "correlation_id": correlation_id,
                "status": "error",
                "error": error,
            }
        )

    def reset(self) -> None:
        """Clear the history (and what it was forked from: the copied turns are gone)."""
        self.forked_from: dict[str, Any] | None = None
        self.fork_failures: list[dict[str, Any]] = []
        self._recent: list[dict[str, Any]] = []
        self._chunks: list[HistoryChunk] = []
        self._earlier: list[dict[str, Any]] | None = []  # the chunks' entries, once unpacked
        self._earlier_count = 0
        self._earlier_last_response: str | None = None

    # -- reading --------------------------------------------------------
    def _earlier_entries(self) -> list[dict[str, Any]]:
        if self._earlier is None:
            self._earlier = [entry for chunk in self._chunks for entry in chunk.unpack()]
        return self._earlier

    @property
    def conversation_history(self) -> list[dict[str, Any]]:
        """Every entry, oldest first (a new list: change the state through its methods)."""
        return [*self._earlier_entries(), *self._recent]

    @property
    def message_count(self) -> int:
        return self._earlier_count + len(self._recent)

    @property
    def last_response(self) -> str | None:
        return _last_success(self._recent, self._earlier_last_response)

    def entry_from_end(self, position: int = 1) -> dict[str, Any] | None:
        """The `position`-th newest entry (1 = the newest), or None when there are fewer."""
        if position < 1:
            raise ValueError(f"position counts from 1 (the newest entry), not {position}")
        if position <= len(self._recent):
            return self._recent[-position]
        if position > self.message_count:
            return None
        return self._earlier_entries()[len(self._recent) - position]

    def reply_for(self, correlation_id: str) -> dict[str, Any] | None:
        """The assistant entry (reply or failure) answering `correlation_id`, if any yet."""
        return self._entry_for(correlation_id, reply=True)

    def request_message(self, correlation_id: str) -> str:
        """The message that asked for turn `correlation_id` ("" when the state has no such turn)."""
        entry = self._entry_for(correlation_id, reply=False)
        return "" if entry is None else str(entry.get("content") or "")

    def _entry_for(self, correlation_id: str, *, reply: bool) -> dict[str, Any] | None:
        """The newest entry of turn `correlation_id` that is (`reply`) or is not its assistant entry;
        only the chunks that hold the turn are unpacked."""
        found = _entry_in(self._recent, correlation_id, reply)
        for chunk in reversed(self._chunks):
            if found is not None:
                break
            if correlation_id in chunk.correlation_ids:
                found = _entry_in(chunk.unpack(), correlation_id, reply)
        return found

    def has_correlation(self, correlation_id: str) -> bool:
        in_recent = any(e.get("correlation_id") == correlation_id for e in self._recent)
        return in_recent or any(correlation_id in chunk.correlation_ids for chunk in self._chunks)

    @property
    def turn_count(self) -> int:
        """Turns in the history, numbered as `turn_numbers` numbers them."""
        if not self.message_count:
            return 0
        return turn_numbers(self.conversation_history)[-1]

    def first_turns(self, turns: int) -> list[dict[str, Any]]:
        """The entries of turns 1 to `turns` (a copy), or ValueError naming the range there is."""
        history = self.conversation_history
        numbers = turn_numbers(history)
        count = numbers[-1] if numbers else 0
        if type(turns) is not int or not 1 <= turns <= count:
            raise ValueError(f"turn {turns!r} is out of range: the session has {count} turn(s)")
        return [dict(entry) for entry, number in zip(history, numbers, strict=True) if number <= turns]

    # -- forking ----------------------------------------------------------
    def seed(self, entries: list[dict[str, Any]], forked_from: dict[str, Any]) -> bool:
        """Start this session as a copy of another's first turns; False when it already has turns
        (a fork never overwrites a conversation)."""
        if self.message_count:
            return False
        self.reset()
        for entry in _check_history(entries, "seed entries"):
            self._append(dict(entry))
        self.forked_from = dict(forked_from)
        return True

    def record_fork_failure(self, fork_id: str, error: str) -> None:
        """Keep why a fork of this session failed, for the route waiting on it (the newest few)."""
        self.fork_failures = [*self.fork_failures, {"fork_id": fork_id, "error": error}][-MAX_FORK_FAILURES:]

    def fork_failure(self, fork_id: str) -> str | None:
        return next((f.get("error") for f in self.fork_failures if f.get("fork_id") == fork_id), None)

    def to_messages(self, *, skip_last: bool = False) -> list[Message]:
        """History to give the agent: every successful earlier turn, tool calls included.

        `skip_last` leaves out the newest entry (the message of the turn being run)."""
        history = self.conversation_history
        if skip_last:
            history = history[:-1]
        failed = {e.get("correlation_id") for e in history if e.get("status") == "error"}
        messages: list[Message] = []
        for entry in history:
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
    def _header(self) -> dict[str, Any]:
        header = {
            "schema_version": SCHEMA_VERSION,
            "agent_type": self.agent_type,
            "message_count": self.message_count,
            "last_response": self.last_response,
        }
        if self.forked_from is not None:
            header["forked_from"] = self.forked_from
        return header

    def get_state(self) -> dict[str, Any]:
        """The whole session as the HTTP API shows it (every entry as an object)."""
        return {**self._header(), "conversation_history": self.conversation_history}

    def restore_state(self, data: Mapping[str, Any] | None) -> None:
        """Load either form: the stored one (`to_dict`) or the API's (`get_state`), any version."""
        self.reset()
        if not data:
            return
        if not isinstance(data, Mapping):
            raise ValueError(f"stored state must be a JSON object, got {type(data).__name__}")
        migrated = _migrate(data)
        self.agent_type = migrated.get("agent_type") or self.agent_type
        forked_from, failures = migrated.get("forked_from"), migrated.get("fork_failures")
        self.forked_from = dict(forked_from) if isinstance(forked_from, Mapping) else None
        self.fork_failures = (
            [dict(f) for f in failures if isinstance(f, Mapping)] if isinstance(failures, list) else []
        )
        if "recent_history" not in migrated:
            if "earlier_history" in migrated:
                raise ValueError("stored state has earlier_history but no recent_history")
            history = migrated.get("conversation_history") or []
            self._recent = list(_check_history(history, "conversation_history"))
            return
        self._recent = list(_check_history(migrated["recent_history"], "recent_history"))
        count, last, chunks = _earlier_part(migrated.get("earlier_history"))
        if count:
            self._earlier, self._chunks, self._earlier_count = None, chunks, count
            self._earlier_last_response = last

    def _stored_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The stored form around its chunks: what comes before `earlier_history`, and what after."""
        head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "agent_type": self.agent_type}
        if self.forked_from is not None:
            head["forked_from"] = self.forked_from
        if self.fork_failures:
            head["fork_failures"] = self.fork_failures
        tail = {
            "recent_history": self._recent,
            "message_count": self.message_count,
            "last_response": self.last_response,
        }
        return head, tail

    def to_dict(self) -> dict[str, Any]:
        """The stored form: newest entries as objects, older ones in compressed chunks.

        What only grows comes first and what changes every turn last, so the stored text of a
        long conversation changes near its end (storage may then write only what changed).
        """
        head, tail = self._stored_parts()
        earlier = {
            "chunks": [chunk.to_dict() for chunk in self._chunks],
            "count": self._earlier_count,
            "last_response": self._earlier_last_response,
        }
        return {**head, "earlier_history": earlier, **tail}

    def to_json(self) -> str:
        """`json.dumps(self.to_dict())`, with each chunk's text made once (`HistoryChunk.json_text`)
        instead of on every turn: what a turn encodes no longer grows with the conversation."""
        head, tail = self._stored_parts()
        chunks = ", ".join(chunk.json_text for chunk in self._chunks)
        count, last = json.dumps(self._earlier_count), json.dumps(self._earlier_last_response)
        return (
            f'{json.dumps(head)[:-1]}, "earlier_history": {{"chunks": [{chunks}], "count": {count}, '
            f'"last_response": {last}}}, {json.dumps(tail)[1:]}'
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, agent_type: str = "Agent") -> AgentState:
        state = cls(agent_type)
        state.restore_state(data)
        return state


def _earlier_part(earlier: Any) -> tuple[int, str | None, list[HistoryChunk]]:
    """(count, last_response, chunks) of a stored `earlier_history`, checked without unpacking it."""
    if earlier is None:
        return 0, None, []
    if isinstance(earlier, Mapping):
        count, last, chunks = earlier.get("count"), earlier.get("last_response"), earlier.get("chunks")
        if isinstance(last, str | None) and isinstance(chunks, list) and type(count) is int:
            parsed = [HistoryChunk.from_dict(chunk) for chunk in chunks]
            if count == sum(chunk.count for chunk in parsed):
                return count, last, parsed
    raise ValueError("stored earlier_history must be {count, last_response, chunks} with matching counts")


def _last_success(entries: list[dict[str, Any]], default: str | None) -> str | None:
    for entry in reversed(entries):
        if entry.get("role") == "assistant" and entry.get("status") == "success":
            return entry.get("content")
    return default


def _entry_in(entries: list[dict[str, Any]], correlation_id: str, reply: bool) -> dict[str, Any] | None:
    for entry in reversed(entries):
        if entry.get("correlation_id") == correlation_id and (entry.get("role") == "assistant") == reply:
            return entry
    return None
