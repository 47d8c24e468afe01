"""Script data model: parsing and validation of steps, rules and the default step.

Scripts come from JSON/TOML files or from Python values; both go through the same
checks so a bad script fails early, with a message that says where the problem is.

Format (top-level keys ``steps``, ``rules``, ``default``; ``comment`` is allowed anywhere
a step or rule is and ignored)::

    step  = "text"  |  {text | chunks | tool_calls [+ text] | error [+ error_type] | fn,
                        usage?: {input_tokens, output_tokens, total_tokens}, delay?: seconds,
                        request?: {...}, conversation_id?: id,
                        chunk_delay?: seconds between streamed chunks}
    tool_calls = [{name, arguments: {...}, call_id?}]
    rule  = {when: {user?: regex, after_tool?: bool, tool?: name, offered?: name,
                    instructions?: regex} | callable,
             then: step}

``instructions`` matches the agent's instructions (how one script tells apart agents that get the
same input, such as the branches of a workflow's fan-out). Steps are consumed one per request;
then the first matching rule answers; then ``default``.
A step with ``request`` (written by ``fakes.recorder`` when a live run is recorded) is strict: it
answers only that request (see ``fakes.replay``), and ``conversation_id`` is the id the live model
gave its response, which tells the framework's tool loop to send only the new messages next.
Strings in text, chunks and tool-call arguments are templates: ``{user}``, ``{tool_result}``
and, in rules, the named groups of the ``user`` regex (case-insensitive); ``{{``/``}}`` escape.
"""

from __future__ import annotations

import builtins
import importlib
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_framework import exceptions as af_exceptions

from .errors import ScriptError
from .recording import RecordedRequest
from .templating import placeholders

StepFn = Callable[[RecordedRequest], Any]
"""A Python step: called with the request, returns a step (str, mapping or ``Step``)."""


STEP_KEYS = frozenset(
    {
        "text",
        "chunks",
        "tool_calls",
        "usage",
        "error",
        "error_type",
        "delay",
        "chunk_delay",
        "fn",
        "request",
        "conversation_id",
        "comment",
    }
)
TOOL_CALL_KEYS = frozenset({"name", "arguments", "call_id"})
USAGE_KEYS = frozenset({"input_tokens", "output_tokens", "total_tokens"})
RULE_KEYS = frozenset({"when", "then", "comment"})
WHEN_KEYS = frozenset({"user", "after_tool", "tool", "offered", "instructions"})
TOP_KEYS = frozenset({"steps", "rules", "default", "comment"})
BASE_VARIABLES = frozenset({"user", "tool_result"})
DEFAULT_ERROR_TYPE: type[Exception] = af_exceptions.ChatClientException


@dataclass(frozen=True)
class ToolCall:
    """A function call the fake model asks the framework to make."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    call_id: str | None = None

    def describe(self) -> str:
        """Short ``name(k=v)`` form for messages."""
        args = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Step:
    """One model response. Exactly what it does is decided by which fields are set."""

    text: str | None = None
    chunks: tuple[str, ...] | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Mapping[str, int] | None = None
    error: str | None = None
    error_type: type[Exception] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    """Seconds between the updates of a streamed reply (a model producing tokens over time)."""
    fn: StepFn | None = None
    request: Mapping[str, Any] | None = None
    """The request this step answered when it was recorded: replay fails on any other request."""
    conversation_id: str | None = None

    def __post_init__(self) -> None:
        problem = _step_problem(self)
        if problem:
            raise ScriptError(problem)

    def describe(self) -> str:
        """Readable one-line summary, used in error messages and ``assert_complete``."""
        parts: list[str] = []
        if self.fn is not None:
            parts.append(f"fn={getattr(self.fn, '__name__', repr(self.fn))}")
        if self.text is not None:
            parts.append(f"text={_short(self.text)!r}")
        if self.chunks is not None:
            parts.append(f"chunks={list(self.chunks)!r}")
        if self.tool_calls:
            parts.append("tool_calls=[" + ", ".join(call.describe() for call in self.tool_calls) + "]")
        if self.error is not None:
            parts.append(f"error={(self.error_type or DEFAULT_ERROR_TYPE).__name__}({self.error!r})")
        if self.delay:
            parts.append(f"delay={self.delay}")
        return "Step(" + ", ".join(parts) + ")"


StepLike = Step | str | Mapping[str, Any] | StepFn
"""Anything accepted where a step is expected."""


@dataclass(frozen=True)
class Condition:
    """The data form of a rule's ``when``: every given field must hold."""

    user: re.Pattern[str] | None = None
    after_tool: bool | None = None
    tool: str | None = None
    offered: str | None = None
    instructions: re.Pattern[str] | None = None

    def match(self, request: RecordedRequest) -> dict[str, str] | None:
        """Template variables (named regex groups) when the request matches, else None."""
        if self.instructions is not None and not self.instructions.search(
            str(request.options.get("instructions") or "")
        ):
            return None
        if self.after_tool is not None and request.after_tool != self.after_tool:
            return None
        if self.tool is not None and not (request.after_tool and request.tool_name == self.tool):
            return None
        if self.offered is not None and self.offered not in request.tools:
            return None
        if self.user is None:
            return {}
        found = self.user.search(request.user_text)
        if found is None:
            return None
        return {name: value or "" for name, value in found.groupdict().items()}


@dataclass(frozen=True)
class Rule:
    """Answer ``then`` to any request that ``when`` matches (tried once the steps run out).

    ``when`` is a ``Condition`` or a Python callable taking the ``RecordedRequest``; a callable
    may return a bool, a mapping of template variables or an ``re.Match``.
    """

    when: Condition | Callable[[RecordedRequest], Any]
    then: Step

    def match(self, request: RecordedRequest) -> dict[str, str] | None:
        """Template variables when the rule applies to ``request``, else None."""
        if isinstance(self.when, Condition):
            return self.when.match(request)
        result = self.when(request)
        if result is None or result is False:
            return None
        if isinstance(result, re.Match):
            return {name: value or "" for name, value in result.groupdict().items()}
        if isinstance(result, Mapping):
            return {str(name): str(value) for name, value in result.items()}
        return {} if result else None


@dataclass(frozen=True)
class Script:
    """A whole script: ordered steps, then rules, then the default."""

    steps: tuple[Step, ...] = ()
    rules: tuple[Rule, ...] = ()
    default: Step | None = None
    source: str = "<script>"


def unused_steps_message(script: Script, unused: Sequence[int]) -> str | None:
    """Why a script was not used up: its steps at ``unused``, one a line (None when there are none)."""
    if not unused:
        return None
    lines = [f"  steps[{index}]: {script.steps[index].describe()}" for index in unused]
    return f"{len(unused)} scripted step(s) of {script.source} were never used:\n" + "\n".join(lines)


# region parsing


def load_script(path: str | Path) -> Script:
    """Read and validate a ``.json`` or ``.toml`` script file."""
    file, data = _read_script_file(path)
    return parse_script(data, source=str(file))


def load_script_data(path: str | Path) -> dict[str, Any]:
    """The plain data of a ``.json`` or ``.toml`` script file, validated like ``load_script``.

    For callers that pass the script on as data (e.g. write it as JSON for a host's fake model):
    a bad file fails here, with the same message ``load_script`` gives.
    """
    file, data = _read_script_file(path)
    parse_script(data, source=str(file))
    return dict(data)


def _read_script_file(path: str | Path) -> tuple[Path, Any]:
    """Read and decode a script file by its suffix; problems are ScriptErrors naming the file."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ScriptError(f"{file}: script files must end in .json or .toml, not {suffix or 'nothing'!r}")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ScriptError(f"{file}: cannot read script: {exc}") from exc
    try:
        if suffix == ".json":
            return file, json.loads(raw.decode("utf-8"))
        return file, tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScriptError(f"{file}: script is not UTF-8 text: {exc}") from exc
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScriptError(f"{file}: not valid {suffix[1:].upper()}: {exc}") from exc


def parse_script(data: Any, *, source: str = "<script>") -> Script:
    """Validate the data form of a script (as loaded from JSON/TOML) and build a ``Script``."""
    if not isinstance(data, Mapping):
        raise ScriptError(f"{source}: a script must be an object/table, got {type(data).__name__}")
    _check_keys(data, TOP_KEYS, source, "top-level")
    steps = data.get("steps", [])
    rules = data.get("rules", [])
    if not isinstance(steps, list):
        raise ScriptError(f"{source}: 'steps' must be a list, got {type(steps).__name__}")
    if not isinstance(rules, list):
        raise ScriptError(f"{source}: 'rules' must be a list, got {type(rules).__name__}")
    return build_script(steps, rules, data.get("default"), source=source)


def build_script(
    steps: Sequence[Any] = (),
    rules: Sequence[Any] = (),
    default: Any = None,
    *,
    source: str = "<script>",
) -> Script:
    """Build a ``Script`` from Python values: steps may be strings, mappings, ``Step``s or callables."""
    return Script(
        steps=tuple(to_step(step, where=f"{source}: steps[{index}]") for index, step in enumerate(steps)),
        rules=tuple(to_rule(rule, where=f"{source}: rules[{index}]") for index, rule in enumerate(rules)),
        default=None if default is None else to_step(default, where=f"{source}: default"),
        source=source,
    )


def to_step(value: Any, *, where: str = "step", variables: frozenset[str] | None = BASE_VARIABLES) -> Step:
    """Coerce one step-like value; ``variables`` are the placeholders its templates may use."""
    if isinstance(value, Step):
        step = value
    elif isinstance(value, str):
        step = Step(text=value)
    elif isinstance(value, Mapping):
        step = _step_from_mapping(value, where)
    elif callable(value):
        step = Step(fn=value)
    else:
        raise ScriptError(
            f"{where}: a step must be an object, a string or a callable, got {type(value).__name__}"
        )
    if variables is not None:
        used = placeholders(
            [step.text, list(step.chunks or ()), [dict(c.arguments) for c in step.tool_calls]]
        )
        unknown = used - variables
        if unknown:
            names = ", ".join("{" + name + "}" for name in sorted(unknown))
            raise ScriptError(
                f"{where}: unknown placeholder(s) {names}; available: "
                + ", ".join("{" + name + "}" for name in sorted(variables))
                + " (write {{ and }} for literal braces)"
            )
    return step


def to_rule(value: Any, *, where: str = "rule") -> Rule:
    """Coerce one rule-like value (a ``Rule`` or a ``{"when": ..., "then": ...}`` mapping)."""
    if isinstance(value, Rule):
        return value
    if not isinstance(value, Mapping):
        raise ScriptError(
            f"{where}: a rule must be an object with 'when' and 'then', got {type(value).__name__}"
        )
    _check_keys(value, RULE_KEYS, where, "rule", "'when' and 'then'")
    if "then" not in value:
        raise ScriptError(f"{where}: a rule needs a 'then' step")
    when_value = value.get("when", {})
    if isinstance(when_value, Mapping):
        when: Condition | Callable[[RecordedRequest], Any] = _condition(when_value, f"{where}.when")
        variables: frozenset[str] | None = BASE_VARIABLES | set(when.user.groupindex if when.user else ())
    elif callable(when_value):
        when, variables = when_value, None
    else:
        raise ScriptError(f"{where}.when: must be an object or a callable, got {type(when_value).__name__}")
    return Rule(when=when, then=to_step(value["then"], where=f"{where}.then", variables=variables))


def _regex(data: Mapping[str, Any], key: str, where: str) -> re.Pattern[str] | None:
    """The case-insensitive regex under `key` of a condition, if given."""
    if key not in data:
        return None
    regex = _typed(data[key], str, f"{where}.{key}", "a regex string")
    try:
        return re.compile(regex, re.IGNORECASE)
    except re.error as exc:
        raise ScriptError(f"{where}.{key}: bad regex {regex!r}: {exc}") from exc


def _condition(data: Mapping[str, Any], where: str) -> Condition:
    _check_keys(data, WHEN_KEYS, where, "condition")
    pattern = _regex(data, "user", where)
    after_tool = (
        _typed(data["after_tool"], bool, f"{where}.after_tool", "true or false")
        if "after_tool" in data
        else None
    )
    tool = _typed(data["tool"], str, f"{where}.tool", "a tool name") if "tool" in data else None
    offered = _typed(data["offered"], str, f"{where}.offered", "a tool name") if "offered" in data else None
    instructions = _regex(data, "instructions", where)
    if tool is not None and after_tool is False:
        raise ScriptError(
            f"{where}: 'tool' means the request ends with that tool's result; it contradicts after_tool=false"
        )
    return Condition(
        user=pattern, after_tool=after_tool, tool=tool, offered=offered, instructions=instructions
    )


def _step_from_mapping(data: Mapping[str, Any], where: str) -> Step:
    _check_keys(data, STEP_KEYS, where, "step", f"some of {sorted(STEP_KEYS)}")
    kwargs: dict[str, Any] = {}
    if "text" in data:
        kwargs["text"] = _typed(data["text"], str, f"{where}.text", "a string")
    if "chunks" in data:
        chunks = data["chunks"]
        if not isinstance(chunks, list) or not chunks or not all(isinstance(c, str) for c in chunks):
            raise ScriptError(f"{where}.chunks: must be a non-empty list of strings")
        kwargs["chunks"] = tuple(chunks)
    if "tool_calls" in data:
        calls = data["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise ScriptError(
                f"{where}.tool_calls: must be a non-empty list of {{name, arguments, call_id?}}"
            )
        kwargs["tool_calls"] = tuple(
            _tool_call(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(calls)
        )
    if "usage" in data:
        kwargs["usage"] = _usage(data["usage"], f"{where}.usage")
    if "request" in data:
        kwargs["request"] = _typed(
            data["request"], dict, f"{where}.request", "an object (a recorded request)"
        )
    if "conversation_id" in data:
        kwargs["conversation_id"] = _typed(
            data["conversation_id"], str, f"{where}.conversation_id", "a string"
        )
    if "error" in data:
        kwargs["error"] = _typed(data["error"], str, f"{where}.error", "a message string")
    if "error_type" in data:
        kwargs["error_type"] = resolve_error_type(
            _typed(data["error_type"], str, f"{where}.error_type", "a name"), f"{where}.error_type"
        )
    for name in ("delay", "chunk_delay"):
        if name in data:
            delay = data[name]
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                raise ScriptError(f"{where}.{name}: must be a number of seconds >= 0, got {delay!r}")
            kwargs[name] = float(delay)
    if "fn" in data:
        if not callable(data["fn"]):
            raise ScriptError(f"{where}.fn: must be callable")
        kwargs["fn"] = data["fn"]
    if "comment" in data:
        _typed(data["comment"], str, f"{where}.comment", "a string")
    try:
        return Step(**kwargs)
    except ScriptError as exc:
        raise ScriptError(f"{where}: {exc}") from None


def _tool_call(data: Any, where: str) -> ToolCall:
    if not isinstance(data, Mapping):
        raise ScriptError(f"{where}: a tool call must be an object with 'name' and 'arguments'")
    _check_keys(data, TOOL_CALL_KEYS, where, "tool call")
    name = _typed(data.get("name"), str, f"{where}.name", "a tool name")
    if not name:
        raise ScriptError(f"{where}.name: must not be empty")
    arguments = data.get("arguments", {})
    if not isinstance(arguments, Mapping):
        raise ScriptError(f"{where}.arguments: must be an object, got {type(arguments).__name__}")
    call_id = _typed(data["call_id"], str, f"{where}.call_id", "a string") if "call_id" in data else None
    return ToolCall(name=name, arguments=dict(arguments), call_id=call_id)


def _usage(data: Any, where: str) -> dict[str, int]:
    if not isinstance(data, Mapping):
        raise ScriptError(f"{where}: must be an object with {sorted(USAGE_KEYS)}")
    _check_keys(data, USAGE_KEYS, where, "usage")
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScriptError(f"{where}.{key}: must be a whole number >= 0, got {value!r}")
    return dict(data)


_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def resolve_error_type(name: str, where: str = "error_type") -> type[Exception]:
    """Find an exception class by builtin name, agent-framework exception name or ``module.Class``.

    ``where`` names the field in error messages (e.g. ``script.json: steps[0].error_type``).
    """
    dotted = name.replace(":", ".")
    found: Any = None
    if not _DOTTED_NAME.fullmatch(dotted):
        pass  # empty parts (".X", "a..B"), spaces, ...: never a class name
    elif "." in dotted:
        module_name, _, attr = dotted.rpartition(".")
        try:
            found = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            found = None
        except Exception as exc:  # the module itself failed while importing
            raise ScriptError(
                f"{where}: importing {module_name!r} for {name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
    else:
        found = getattr(builtins, name, None) or getattr(af_exceptions, name, None)
    if not isinstance(found, type) or not issubclass(found, Exception):
        raise ScriptError(
            f"{where}: {name!r} is not a known exception class "
            "(use a builtin like 'ValueError', an agent_framework exception or 'module.Class')"
        )
    return found


def _step_problem(step: Step) -> str | None:
    acting = [
        name
        for name, present in (
            ("text", step.text is not None),
            ("chunks", step.chunks is not None),
            ("tool_calls", bool(step.tool_calls)),
            ("error", step.error is not None),
            ("fn", step.fn is not None),
        )
        if present
    ]
    if not acting:
        return "the step does nothing: give it text, chunks, tool_calls, error or fn"
    if step.text is not None and step.chunks is not None:
        return "give either 'text' or 'chunks', not both"
    if step.error is not None and len(acting) > 1:
        return f"an 'error' step cannot also have {[a for a in acting if a != 'error']}"
    if step.fn is not None and (len(acting) > 1 or step.usage is not None):
        return "a 'fn' step computes the whole response; only 'delay' may accompany it"
    if step.error_type is not None and step.error is None:
        return "'error_type' needs an 'error' message"
    if step.error is not None and step.usage is not None:
        return "an 'error' step has no usage"
    if step.delay < 0:
        return "'delay' must be >= 0"
    return None


def _check_keys(
    data: Mapping[str, Any], allowed: frozenset[str], where: str, what: str, expected: str | None = None
) -> None:
    """Reject keys outside ``allowed``: ``WHERE: unknown WHAT key(s) [...]; expected EXPECTED``."""
    unknown = set(data) - allowed
    if unknown:
        expected = expected if expected is not None else f"{sorted(allowed - {'comment'})}"
        raise ScriptError(f"{where}: unknown {what} key(s) {sorted(unknown, key=str)}; expected {expected}")


def _typed(value: Any, kind: type, where: str, expected: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ScriptError(f"{where}: must be {expected}, got {value!r}")
    return value


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# endregion
