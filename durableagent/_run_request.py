"""Validation of what callers send, before anything reaches an entity: the run body, and for the
HTTP run route everything else it reads from the request (headers, query string, `Accept`), so a
turn's request is parsed in this one place."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .session import validate_key

MAX_MESSAGE_CHARS = 256 * 1024
# The signal carrying a turn is JSON-encoded twice on its way to the entity; durable backends
# cap a signal (the local host at 1 MiB), so the encoded size is what must fit.
MAX_SIGNAL_BYTES = 1024 * 1024 - 1024
ALLOWED_ROLES = ("user", "system")
SESSION_FIELDS = ("sessionId", "sessionKey", "session_id", "thread_id")
"""Where a caller may name the session, in the body or the query string: ours (`sessionId`,
`sessionKey`) and Microsoft's agent-framework-azurefunctions (`session_id`, older `thread_id`), so a
client written for either package works against this one."""
SCHEMA_FIELDS = ("response_schema", "response_format")
"""A JSON schema for the reply: ours (`response_schema`) and Microsoft's (`response_format`)."""
WAIT_FIELD = "wait_for_response"
IDEMPOTENCY_HEADER = "Idempotency-Key"
WAIT_HEADER = "x-ms-wait-for-response"
EVENT_STREAM = "text/event-stream"
_KNOWN_FIELDS = {
    "message",
    *SESSION_FIELDS,
    "role",
    "enable_tool_calls",
    *SCHEMA_FIELDS,
    "correlationId",
    WAIT_FIELD,
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
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
    wait_for_response: bool | None = None
    """The body's `wait_for_response`; None when absent (the route then waits, unless the header or
    query string says otherwise). Not part of the entity input: only the route acts on it."""

    def entity_input(self, correlation_id: str) -> dict[str, Any]:
        """The `run_agent` operation input."""
        return {
            "message": self.message,
            "role": self.role,
            "correlation_id": correlation_id,
            "enable_tool_calls": self.enable_tool_calls,
            "response_schema": self.response_schema,
        }


def _check_schema(schema: object, field: str = "response_schema") -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise RequestError(f"'{field}' must be a JSON object (a JSON schema)")
    try:
        import jsonschema

        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise RequestError(f"'{field}' is not a valid JSON schema: {exc.message}") from None
    return schema


def parse_flag(value: str, what: str) -> bool:
    """A yes/no from a header or query string (`true`/`false`, `1`/`0`, `yes`/`no`, any case)."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise RequestError(f"{what} must be true or false, got {value[:40]!r}")


def one_session_key(candidates: list[tuple[str, object]]) -> str | None:
    """The session key named by any of `candidates` (where, value); they must agree.

    A client may name the session in several places (our spelling, Microsoft's, body and query
    string); sending two different ids is a mistake that would otherwise silently pick one."""
    named = [(where, value) for where, value in candidates if value is not None]
    if not named:
        return None
    first_where, first = named[0]
    for where, value in named[1:]:
        if value != first:
            raise RequestError(f"{first_where} and {where} name different sessions; send one session id")
    try:
        return validate_key(first)
    except ValueError as exc:
        raise RequestError(f"invalid 'sessionId' ({first_where}): {exc}") from None


def one_schema(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reply schema from `response_schema` or `response_format` (both: they must be equal)."""
    given = [(field, data[field]) for field in SCHEMA_FIELDS if data.get(field) is not None]
    if len(given) == 2 and given[0][1] != given[1][1]:
        raise RequestError("'response_schema' and 'response_format' differ; send one of them")
    if not given:
        return None
    return _check_schema(given[0][1], given[0][0])


def is_text_body(content_type: str | None) -> bool:
    """Whether a run body is the message as plain text (Microsoft's contract) rather than JSON.

    Only `text/plain` is: any other or no content type is parsed as JSON, as before, so clients
    that send JSON without a content type (`curl -d` sends a form type) keep working."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "text/plain"


def parse_run_request(body: bytes, *, text: bool = False) -> RunRequest:
    """Parse a `POST .../run` body (`text`: the body is the message itself); every problem is a
    RequestError naming it."""
    decoded = decode_body(body)
    if text:
        return validate_run_request({"message": decoded.strip()})
    return validate_run_request(parse_json_text(decoded, '{"message": "hello"}'))


def decode_body(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("request body is not valid UTF-8") from None


def parse_json_text(text: str, example: str) -> object:
    """A JSON request body (`example` shows what to send when it is empty); RequestError if not JSON."""
    if not text.strip():
        raise RequestError(f"request body is empty; send JSON like {example}")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None


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


def reject_unknown_fields(data: Mapping[str, object], known: Iterable[str]) -> None:
    """RequestError naming every field of `data` not in `known`, with the closest known name.

    Called before any other check of a body: otherwise a typo (`mesage`) is reported as the field
    it was meant to be missing ("'message' is required"), and the caller looks for the wrong mistake.
    A suggestion is a known field the body does not already have, matched ignoring case."""
    names = sorted(known)
    unknown = sorted(field for field in data if field not in names)
    if not unknown:
        return
    absent = {name.lower(): name for name in names if name not in data}
    named = []
    for field in unknown:
        close = difflib.get_close_matches(str(field).lower(), list(absent), n=1, cutoff=0.6)
        named.append(f"{field!r} (did you mean {absent[close[0]]!r}?)" if close else repr(field))
    raise RequestError(f"unknown field(s) {', '.join(named)}; known: {', '.join(names)}")


def validate_run_request(data: object) -> RunRequest:
    """Check a parsed run body field by field; every problem is a RequestError naming it."""
    if json_depth(data) > MAX_JSON_DEPTH:
        raise RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {type(data).__name__}")
    reject_unknown_fields(data, _KNOWN_FIELDS)
    message = data.get("message")
    if message is None:
        raise RequestError("'message' is required")
    if not isinstance(message, str):
        raise RequestError(f"'message' must be a string, got {type(message).__name__}")
    if not message.strip():
        raise RequestError("'message' must not be empty")
    if len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(f"'message' is {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}", 413)
    key = one_session_key([(f"'{field}'", data.get(field)) for field in SESSION_FIELDS])
    role = data.get("role", "user")
    if role not in ALLOWED_ROLES:
        raise RequestError(f"'role' must be one of {', '.join(ALLOWED_ROLES)}, got {role!r}")
    enable_tools = data.get("enable_tool_calls", True)
    if not isinstance(enable_tools, bool):
        raise RequestError("'enable_tool_calls' must be true or false")
    schema = one_schema(data)
    wait = data.get(WAIT_FIELD)
    if wait is not None and not isinstance(wait, bool):
        raise RequestError(f"'{WAIT_FIELD}' must be true or false")
    correlation_id = data.get("correlationId")
    if correlation_id is not None:
        correlation_id = check_correlation_id(correlation_id)
    request = RunRequest(message, key, role, enable_tools, schema, correlation_id, wait)
    encoded = len(json.dumps(json.dumps(request.entity_input("0" * 32))).encode("utf-8"))
    if encoded > MAX_SIGNAL_BYTES:
        raise RequestError(
            f"request is {encoded} bytes once encoded for the entity; the limit is {MAX_SIGNAL_BYTES}", 413
        )
    return request


@dataclass(frozen=True)
class HttpRunRequest:
    """Everything the run route reads from one HTTP request, checked."""

    request: RunRequest
    correlation_id: str | None
    """The caller's turn id (`Idempotency-Key` header or body `correlationId`), None when not given."""
    session_key: str | None
    wait: bool
    events: bool
    """`Accept` asks for Server-Sent Events."""
    plain_text: bool
    """Answer the reply as plain text: the body was `text/plain` and `Accept` does not ask for JSON."""


def parse_http_run(body: bytes, headers: Mapping[str, str], params: Mapping[str, str]) -> HttpRunRequest:
    """The run route's request from its body, headers and query string; every problem is a
    RequestError naming it. `headers` must look names up case-insensitively (as the host's do)."""
    text = is_text_body(headers.get("Content-Type"))
    request = parse_run_request(body, text=text)
    correlation_id = caller_correlation_id(headers.get(IDEMPOTENCY_HEADER), request.correlation_id)
    session_key = one_session_key(
        [("the body's session id", request.session_key)]
        + [(f"query parameter {field!r}", params.get(field)) for field in SESSION_FIELDS]
    )
    wait = wait_for_response(headers.get(WAIT_HEADER), params.get(WAIT_FIELD), request.wait_for_response)
    accept = headers.get("Accept")
    return HttpRunRequest(
        request,
        correlation_id,
        session_key,
        wait,
        wants_events(accept),
        text and not accepts_json(accept),
    )


def wait_for_response(header: str | None, query: str | None, from_body: bool | None) -> bool:
    """Whether the route waits for the reply: the `x-ms-wait-for-response` header decides, then the
    `wait_for_response` query parameter, then the body field (Microsoft's order); default yes."""
    if header is not None:
        return parse_flag(header, f"header {WAIT_HEADER}")
    if query is not None:
        return parse_flag(query, f"query parameter {WAIT_FIELD!r}")
    return True if from_body is None else from_body


def accepts_json(accept: str | None) -> bool:
    """Whether `Accept` asks for JSON (`application/json` or a `+json` type)."""
    for part in (accept or "").lower().split(","):
        media = part.split(";", 1)[0].strip()
        if media == "application/json" or media.endswith("+json"):
            return True
    return False


def caller_correlation_id(header: str | None, from_body: str | None) -> str | None:
    """The caller's turn id: the `Idempotency-Key` header or the body's `correlationId` (one value)."""
    if header is None:
        return from_body
    header = check_correlation_id(header, f"header {IDEMPOTENCY_HEADER}")
    if from_body is not None and from_body != header:
        raise RequestError(f"header {IDEMPOTENCY_HEADER} and 'correlationId' differ; send one of them")
    return header


def wants_events(accept: str | None) -> bool:
    """Whether an `Accept` header asks for Server-Sent Events: listed with a quality above 0 and not
    below any other type's (`text/event-stream;q=0.5, application/json` prefers the JSON reply,
    `..., text/plain` a text one, `..., */*` either; `q=0` refuses events)."""
    events = others = 0.0
    for part in (accept or "").split(","):
        media, *params = (item.strip().lower() for item in part.split(";"))
        if not media:
            continue
        if media == EVENT_STREAM:
            events = max(events, _quality(params))
        else:
            others = max(others, _quality(params))
    return events > 0 and events >= others


def _quality(params: list[str]) -> float:
    """An `Accept` entry's `q` (1 when absent; one that is no number in 0..1 is read leniently as 1,
    as browsers and servers do with a malformed one)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                return 1.0
            return quality if 0.0 <= quality <= 1.0 else 1.0
    return 1.0
