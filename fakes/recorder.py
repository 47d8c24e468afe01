"""Record a live model's exchanges as a fake script that replays them offline.

``RecordingChatClient`` wraps an agent's real chat client. It has the same layers as the real
clients (function invocation, middleware, telemetry), and below them it hands each model call to
the real client's own request method: every call the tool loop makes is one exchange, recorded as
one step with the request it answered (``fakes.replay.request_fingerprint``), the text (the streamed
pieces as ``chunks``), the tool calls with their ids, the usage and the response's conversation id.
A failed call is recorded as an ``error`` step.

Where it is stored and why a crash is safe: the steps go to one ``.json`` script file. Each step
is added by reading the file, appending, writing a temporary file beside it and renaming it over the
original, so the file is a whole, valid script at every moment; a process killed mid-write leaves
at worst a stray ``.tmp`` file and loses that one exchange. Writers in one process share a lock per
file (several agents, concurrent turns); writers in several processes also take an advisory lock on
the file's folder (POSIX ``flock``, so no lock file is left beside the recording; where that does
not exist, only the in-process lock).
A step is written when its answer is complete, so concurrent turns land in the order they finished;
replay accepts them in either order (see ``RawScriptedChatClient._next_step``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agent_framework import (
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatOptions,
    ChatResponse,
    ChatResponseUpdate,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
)
from agent_framework.observability import ChatTelemetryLayer

from .errors import ScriptError
from .recording import RecordedRequest, jsonable
from .replay import request_fingerprint
from .templating import escape

try:  # POSIX only; elsewhere writers in one process are still serialised
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

RECORDING_COMMENT = (
    "Recorded from a live model by durableagent. Replay with --script FILE: each step answers only "
    "the request it recorded (its 'request'), in order."
)
USAGE_FIELDS = {
    "input_token_count": "input_tokens",
    "output_token_count": "output_tokens",
    "total_token_count": "total_tokens",
}


# region the script file


class ScriptFile:
    """One recording file; ``for_path`` gives every client in a process the same instance (one lock)."""

    _instances: ClassVar[dict[Path, ScriptFile]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def for_path(cls, path: str | os.PathLike[str]) -> ScriptFile:
        resolved = Path(path).expanduser().resolve()
        if resolved.suffix.lower() != ".json":
            raise ScriptError(f"{resolved}: a recording is written as JSON; name it *.json")
        with cls._instances_lock:
            return cls._instances.setdefault(resolved, cls(resolved))

    def start(self) -> None:
        """Make the file an empty script (a new recording replaces an old one of the same name)."""
        with self._locked():
            self._write({"comment": RECORDING_COMMENT, "steps": []})

    def append(self, step: Mapping[str, Any]) -> None:
        """Add ``step`` at the end; the file is replaced whole, never left half-written."""
        with self._locked():
            data = self._read()
            data.setdefault("steps", []).append(dict(step))
            self._write(data)

    def steps(self) -> list[dict[str, Any]]:
        """The steps recorded so far."""
        with self._locked():
            return list(self._read().get("steps", []))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                yield
                return
            # The folder, not the file: the file is replaced on each write, so a lock on it would
            # be on an inode the next writer no longer opens.
            folder = os.open(self.path.parent, os.O_RDONLY)
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)
                yield
            finally:
                os.close(folder)  # releases the lock

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"comment": RECORDING_COMMENT, "steps": []}
        except (OSError, ValueError) as exc:
            raise ScriptError(f"{self.path}: cannot add to this recording: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("steps", []), list):
            raise ScriptError(f"{self.path}: cannot add to this recording: it is not a script object")
        return data

    def _write(self, data: Mapping[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, ensure_ascii=False)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def start_recording(path: str | os.PathLike[str]) -> Path:
    """Create (or empty) the recording file at ``path``; returns its resolved path."""
    script = ScriptFile.for_path(path)
    script.start()
    return script.path


# endregion

# region turning an exchange into a step


def recorded_step(
    request: Mapping[str, Any], response: ChatResponse[Any], chunks: Sequence[str] | None = None
) -> dict[str, Any]:
    """The script step that replays ``response`` (streamed as ``chunks`` when given) for ``request``.

    Strings are escaped so the templates of the script format give them back unchanged.
    """
    step: dict[str, Any] = {}
    text = "".join(
        content.text or ""
        for message in response.messages
        for content in message.contents
        if content.type == "text"
    )
    calls = [
        content
        for message in response.messages
        for content in message.contents
        if content.type == "function_call"
    ]
    pieces = [piece for piece in chunks or () if piece]
    if pieces:
        step["chunks"] = escape(pieces)
    elif text or not calls:
        step["text"] = escape(text)
    if calls:
        step["tool_calls"] = [_tool_call(content) for content in calls]
    usage = {
        USAGE_FIELDS[key]: value
        for key, value in (response.usage_details or {}).items()
        if key in USAGE_FIELDS and isinstance(value, int) and not isinstance(value, bool) and value >= 0
    }
    if usage:
        step["usage"] = usage
    if response.conversation_id:
        step["conversation_id"] = response.conversation_id
    step["request"] = dict(request)
    return step


def error_step(request: Mapping[str, Any], error: BaseException) -> dict[str, Any]:
    """A step that fails the replayed call as the live one failed (framework and builtin types kept)."""
    step: dict[str, Any] = {"error": str(error) or type(error).__name__}
    kind = type(error)
    if kind.__module__ == "builtins" or kind.__module__.startswith("agent_framework"):
        step["error_type"] = (
            kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        )
    step["request"] = dict(request)
    return step


def _tool_call(content: Any) -> dict[str, Any]:
    arguments: Any = content.arguments
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = {"arguments": arguments}
    if not isinstance(arguments, Mapping):
        arguments = {"arguments": jsonable(arguments)}
    call: dict[str, Any] = {"name": content.name or "", "arguments": escape(jsonable(arguments))}
    if content.call_id:
        call["call_id"] = content.call_id
    return call


# endregion


class RawRecordingChatClient(BaseChatClient[ChatOptions[Any]]):
    """Sends each model call to ``inner``'s own request method and records the exchange."""

    OTEL_PROVIDER_NAME: ClassVar[str] = "recording"

    def __init__(self, inner: BaseChatClient[Any], path: str | os.PathLike[str], **kwargs: Any) -> None:
        if not isinstance(inner, BaseChatClient):
            raise TypeError(
                f"only a BaseChatClient can be recorded (its model calls are what is recorded), "
                f"not {type(inner).__name__}"
            )
        kwargs.setdefault("compaction_strategy", getattr(inner, "compaction_strategy", None))
        kwargs.setdefault("tokenizer", getattr(inner, "tokenizer", None))
        super().__init__(**kwargs)
        self.inner = inner
        self.script_file = ScriptFile.for_path(path)

    @property
    def record_path(self) -> Path:
        """The script file the exchanges are appended to."""
        return self.script_file.path

    def service_url(self) -> str:
        return self.inner.service_url()

    def __getattr__(self, name: str) -> Any:
        # Anything else an app or the framework reads off its client (model id, settings) is the
        # real client's; only reached for names this client does not have itself.
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _inner_get_response(
        self,
        *,
        messages: Sequence[Message],
        stream: bool,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> Awaitable[ChatResponse[Any]] | ResponseStream[ChatResponseUpdate, ChatResponse[Any]]:
        # The real client's raw method: our own layers already ran the tool loop and middleware.
        call = self.inner._inner_get_response  # noqa: SLF001 - the delegation this client exists for
        if stream:

            async def updates() -> AsyncIterator[ChatResponseUpdate]:
                request = await self._fingerprint(messages, options, stream=True)
                collected: list[ChatResponseUpdate] = []
                try:
                    inner = call(messages=messages, stream=True, options=options, **kwargs)
                    if not isinstance(inner, ResponseStream):
                        inner = await inner
                    async for update in inner:
                        collected.append(update)
                        yield update
                except Exception as exc:
                    self.script_file.append(error_step(request, exc))
                    raise
                response = ChatResponse.from_updates(collected)
                chunks = [update.text for update in collected if update.text]
                self.script_file.append(recorded_step(request, response, chunks))

            return self._build_response_stream(updates(), response_format=options.get("response_format"))

        async def respond() -> ChatResponse[Any]:
            request = await self._fingerprint(messages, options, stream=False)
            try:
                response = await call(messages=messages, stream=False, options=options, **kwargs)
            except Exception as exc:
                self.script_file.append(error_step(request, exc))
                raise
            self.script_file.append(recorded_step(request, response))
            return response

        return respond()

    async def _fingerprint(
        self, messages: Sequence[Message], options: Mapping[str, Any], *, stream: bool
    ) -> dict[str, Any]:
        """The request as replay will compare it: taken before the call, whose tool loop reuses lists."""
        validated = await self._validate_options(options)
        return request_fingerprint(RecordedRequest.of_call(messages, validated, stream=stream))


class RecordingChatClient(
    FunctionInvocationLayer[ChatOptions[Any]],
    ChatMiddlewareLayer[ChatOptions[Any]],
    ChatTelemetryLayer[ChatOptions[Any]],
    RawRecordingChatClient,
):
    """``RecordingChatClient(real_client, "recorded.json")``: the real model, every exchange recorded.

    Layered like the real clients and ``ScriptedChatClient``, so the same tool loop that runs here
    runs when the recording is replayed; the real client's middleware and function invocation
    settings are carried over.
    """

    def __init__(self, inner: BaseChatClient[Any], path: str | os.PathLike[str], **kwargs: Any) -> None:
        middleware = [*getattr(inner, "chat_middleware", ()), *getattr(inner, "function_middleware", ())]
        kwargs.setdefault("middleware", middleware or None)
        config = getattr(inner, "function_invocation_configuration", None)
        if config is not None:
            kwargs.setdefault("function_invocation_configuration", config)
        super().__init__(inner=inner, path=path, **kwargs)
