"""Validation of what callers send, before anything reaches an entity."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .session import validate_key

MAX_MESSAGE_CHARS = 256 * 1024
# The signal carrying a turn is JSON-encoded twice on its way to the entity; durable backends
# cap a signal (the local host at 1 MiB), so the encoded size is what must fit.
MAX_SIGNAL_BYTES = 1024 * 1024 - 1024
ALLOWED_ROLES = ("user", "system")
_KNOWN_FIELDS = {
    "message",
    "sessionId",
    "sessionKey",
    "role",
    "enable_tool_calls",
    "response_schema",
    "correlationId",
}
# JSON schemas in practice nest a few dozen levels. Deeper input is refused before anything walks
# it: the schema check, the entity and the durable client all recurse and would hit Python's
# recursion limit (a RecursionError is a 500, not a caller mistake).
MAX_JSON_DEPTH = 64
MAX_CORRELATION_ID_CHARS = 128
# Visible ASCII only: the id is echoed in headers and JSON, stored with the history and compared
# byte for byte, so nothing that encodes, normalizes or prints differently is allowed.
_CORRELATION_ID = re.compile(r"[!-~]+")


class RequestError(ValueError):
    """A caller mistake; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RunRequest:
    message: str
    session_key: str | None = None
    role: str = "user"
    enable_tool_calls: bool = True
    response_schema: dict[str, Any] | None = None
    correlation_id: str | None = None
    """The caller's id for this turn (`correlationId`, or the `Idempotency-Key` header): a repeat with
    the same id in the same session never runs the turn twice."""

    def entity_input(self, correlation_id: str) -> dict[str, Any]:
        """The `run_agent` operation input."""
        return {
            "message": self.message,
            "role": self.role,
            "correlation_id": correlation_id,
            "enable_tool_calls": self.enable_tool_calls,
            "response_schema": self.response_schema,
        }


def _check_schema(schema: object) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise RequestError("'response_schema' must be a JSON object (a JSON schema)")
    try:
        import jsonschema

        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise RequestError(f"'response_schema' is not a valid JSON schema: {exc.message}") from None
    return schema


def parse_run_request(body: bytes) -> RunRequest:
    """Parse a `POST .../run` body; every problem is a RequestError naming it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("request body is not valid UTF-8") from None
    if not text.strip():
        raise RequestError('request body is empty; send JSON like {"message": "hello"}')
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    return validate_run_request(data)


def json_depth(value: object, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), counted without recursion.

    Stops counting once past `limit`: the answer is then only known to be over it."""
    depth = 0
    level: list[object] = [value]
    while level and depth <= limit:
        children: list[object] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if not children and not any(isinstance(item, dict | list) for item in level):
            break
        depth += 1
        level = children
    return depth


def check_correlation_id(value: object, what: str = "'correlationId'") -> str:
    """A caller-chosen turn id: 1 to 128 visible ASCII characters."""
    if not isinstance(value, str):
        raise RequestError(f"{what} must be a string, got {type(value).__name__}")
    if not value or len(value) > MAX_CORRELATION_ID_CHARS or not _CORRELATION_ID.fullmatch(value):
        raise RequestError(
            f"{what} must be 1 to {MAX_CORRELATION_ID_CHARS} visible ASCII characters (no spaces)"
        )
    return value


def validate_run_request(data: object) -> RunRequest:
    """Check a parsed run body field by field; every problem is a RequestError naming it."""
    if json_depth(data) > MAX_JSON_DEPTH:
        raise RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {type(data).__name__}")
    message = data.get("message")
    if message is None:
        raise RequestError("'message' is required")
    if not isinstance(message, str):
        raise RequestError(f"'message' must be a string, got {type(message).__name__}")
    if not message.strip():
        raise RequestError("'message' must not be empty")
    if len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(f"'message' is {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}", 413)
    if "sessionId" in data and "sessionKey" in data and data["sessionId"] != data["sessionKey"]:
        raise RequestError("'sessionId' and 'sessionKey' are aliases; send one of them")
    key = data.get("sessionId", data.get("sessionKey"))
    if key is not None:
        try:
            validate_key(key)
        except ValueError as exc:
            raise RequestError(f"invalid 'sessionId': {exc}") from None
    role = data.get("role", "user")
    if role not in ALLOWED_ROLES:
        raise RequestError(f"'role' must be one of {', '.join(ALLOWED_ROLES)}, got {role!r}")
    enable_tools = data.get("enable_tool_calls", True)
    if not isinstance(enable_tools, bool):
        raise RequestError("'enable_tool_calls' must be true or false")
    schema = data.get("response_schema")
    if schema is not None:
        schema = _check_schema(schema)
    correlation_id = data.get("correlationId")
    if correlation_id is not None:
        correlation_id = check_correlation_id(correlation_id)
    unknown = sorted(k for k in data if k not in _KNOWN_FIELDS)
    if unknown:
        raise RequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(_KNOWN_FIELDS))}"
        )
    request = RunRequest(message, key, role, enable_tools, schema, correlation_id)
    encoded = len(json.dumps(json.dumps(request.entity_input("0" * 32))).encode("utf-8"))
    if encoded > MAX_SIGNAL_BYTES:
        raise RequestError(
            f"request is {encoded} bytes once encoded for the entity; the limit is {MAX_SIGNAL_BYTES}", 413
        )
    return request
