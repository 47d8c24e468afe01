"""Session identifiers: one durable entity instance per (agent, conversation)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import azure.durable_functions as df

ENTITY_PREFIX = "dafx-"
MAX_KEY_LENGTH = 256
"""In UTF-16 code units, as storage counts: Table keys hold 1 KiB of UTF-16, and the key shares the
`@dafx-name@key` instance id with an agent name of up to 100 characters."""
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Characters that break the Durable HTTP API path (`entities/{name}/{key}`) or the
# `@name@key` instance id; control characters break Table storage keys.
_BAD_KEY = re.compile(r"[/?#@\\\s\x00-\x1f\x7f-\x9f%]")


def entity_name_for(agent_name: str) -> str:
    """Entity name under which an agent's sessions are stored."""
    return f"{ENTITY_PREFIX}{agent_name}"


def validate_key(key: object) -> str:
    """Return `key` if it is usable as a session key, else raise ValueError saying why."""
    if not isinstance(key, str):
        raise ValueError(f"session key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("session key must not be empty")
    # A lone surrogate cannot be encoded: storage would drop it and two keys would share a history.
    if _SURROGATE.search(key):
        raise ValueError("session key contains a lone UTF-16 surrogate (not a Unicode character)")
    units = len(key.encode("utf-16-le")) // 2
    if units > MAX_KEY_LENGTH:
        raise ValueError(
            f"session key is {units} UTF-16 code units long; the limit is {MAX_KEY_LENGTH} "
            "(characters outside the Basic Multilingual Plane, such as emoji, count twice)"
        )
    if key in (".", ".."):
        raise ValueError(f"session key {key!r} cannot be used in a URL path (it names a folder)")
    bad = _BAD_KEY.search(key)
    if bad:
        raise ValueError(
            f"session key contains {bad.group()!r}; "
            "'/', '?', '#', '@', '%', '\\' and whitespace are not allowed"
        )
    return key


@dataclass(frozen=True)
class AgentSessionId:
    """Names one conversation: the agent it belongs to and a caller-chosen key."""

    name: str
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("agent name must be a non-empty string")
        if "@" in self.name:
            raise ValueError(f"agent name {self.name!r} must not contain '@'")
        validate_key(self.key)

    @classmethod
    def with_random_key(cls, name: str) -> AgentSessionId:
        return cls(name, uuid.uuid4().hex)

    def to_entity_id(self) -> df.EntityId:
        return df.EntityId(entity_name_for(self.name), self.key)

    @classmethod
    def from_entity_id(cls, entity_id: df.EntityId) -> AgentSessionId:
        name = entity_id.name
        if name.lower().startswith(ENTITY_PREFIX):
            name = name[len(ENTITY_PREFIX) :]
        return cls(name, entity_id.key)

    @classmethod
    def parse(cls, text: str) -> AgentSessionId:
        """Parse `@name@key` (the form `str()` gives)."""
        if not isinstance(text, str) or not text.startswith("@"):
            raise ValueError(f"session id {text!r} is not of the form '@name@key'")
        name, sep, key = text[1:].partition("@")
        if not sep:
            raise ValueError(f"session id {text!r} is not of the form '@name@key'")
        return cls(name, key)

    def __str__(self) -> str:
        return f"@{self.name}@{self.key}"
