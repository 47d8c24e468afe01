"""The scripted chat client: a real agent-framework client whose "model" is a script.

``RawScriptedChatClient`` answers requests; ``ScriptedChatClient`` adds the same layers
the real OpenAI client has, so tool calls it emits are executed by the framework and the
results come back in the next request, exactly as with a real model.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

from agent_framework import (
    BaseChatClient,
    ChatAndFunctionMiddlewareTypes,
    ChatMiddlewareLayer,
    ChatOptions,
    ChatResponse,
    ChatResponseUpdate,
    FunctionInvocationConfiguration,
    FunctionInvocationLayer,
    Message,
    ResponseStream,
)
from agent_framework.observability import ChatTelemetryLayer

from .errors import ScriptError, ScriptExhaustedError
from .recording import RecordedRequest, append_record
from .replay import departure, request_fingerprint
from .responses import Reply, build_response, build_updates, resolve_step
from .script import Script, Step, StepLike, build_script, load_script, unused_steps_message

_FileSignature = tuple[int, int]
RELOAD_ATTEMPTS = 5
RELOAD_PAUSE_SECONDS = 0.05


class RawScriptedChatClient(BaseChatClient[ChatOptions[Any]]):
    """Answers each request from a script; no function invocation or middleware by itself."""

    OTEL_PROVIDER_NAME: ClassVar[str] = "scripted"

    def __init__(
        self,
        steps: Iterable[StepLike] | Script | None = None,
        *,
        rules: Iterable[Any] | None = None,
        default: StepLike | None = None,
        record_path: str | os.PathLike[str] | None = None,
        model: str = "scripted-model",
        keep_requests: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Build from a ``Script`` or from Python steps/rules/default (see ``fakes.script``).

        ``keep_requests`` bounds how many recent requests ``requests`` holds (all by default): a
        long-running process that reads them from ``record_path`` need not keep every one, with
        the whole conversation each carries, in memory."""
        super().__init__(**kwargs)
        if isinstance(steps, Script):
            if rules is not None or default is not None:
                raise ScriptError("pass either a Script or steps/rules/default, not both")
            script = steps
        else:
            script = build_script(list(steps or ()), list(rules or ()), default, source="<python script>")
        self.model = model
        self._lock = threading.Lock()
        self._script = script
        self._cursor = 0
        self._used: set[int] = set()
        self._count = 0
        if keep_requests is not None and keep_requests < 1:
            raise ValueError(f"keep_requests must be at least 1, not {keep_requests}")
        self._requests: deque[RecordedRequest] = deque(maxlen=keep_requests)
        self._record_path = Path(record_path) if record_path is not None else None
        self._script_path: Path | None = None
        self._script_signature: _FileSignature | None = None

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        record_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Load a ``.json``/``.toml`` script that is re-read whenever the file changes."""
        file = Path(path)
        signature = _signature(file)
        client = cls(load_script(file), record_path=record_path, **kwargs)
        client._script_path = file
        client._script_signature = signature
        return client

    # region inspection

    @property
    def script(self) -> Script:
        """The script currently in use (replaced when a watched file changes)."""
        return self._script

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (the latest ``keep_requests``), oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def record_path(self) -> Path | None:
        """Where requests are appended as JSON lines, if anywhere."""
        return self._record_path

    @property
    def remaining_steps(self) -> list[Step]:
        """Steps not yet consumed."""
        return [step for _, step in self._unused_steps()]

    def _unused_steps(self) -> list[tuple[int, Step]]:
        with self._lock:
            steps = self._script.steps
            return [(i, steps[i]) for i in range(self._cursor, len(steps)) if i not in self._used]

    def assert_complete(self) -> None:
        """Fail when scripted steps were never used: the conversation went differently than planned."""
        message = unused_steps_message(self._script, [index for index, _ in self._unused_steps()])
        if message:
            raise AssertionError(message)

    # endregion

    def _inner_get_response(
        self,
        *,
        messages: Sequence[Message],
        stream: bool,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> Awaitable[ChatResponse[Any]] | ResponseStream[ChatResponseUpdate, ChatResponse[Any]]:
        """Pick the step for this request and return it whole or as a stream of updates."""
        if stream:

            async def updates() -> AsyncIterator[ChatResponseUpdate]:
                reply, response_id = await self._prepare(messages, options, stream=True)
                for index, update in enumerate(
                    build_updates(reply, response_id=response_id, model=self.model)
                ):
                    if index and reply.chunk_delay:
                        await asyncio.sleep(reply.chunk_delay)
                    yield update

            return self._build_response_stream(updates(), response_format=options.get("response_format"))

        async def respond() -> ChatResponse[Any]:
            reply, response_id = await self._prepare(messages, options, stream=False)
            return build_response(reply, response_id=response_id, model=self.model)

        return respond()

    async def _prepare(
        self, messages: Sequence[Message], options: Mapping[str, Any], *, stream: bool
    ) -> tuple[Reply, str]:
        validated = await self._validate_options(options)
        request = RecordedRequest.of_call(messages, validated, stream=stream)
        await self._reload_if_changed()
        step, variables = self._take_step(request)
        reply = resolve_step(step, request, variables)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error is not None:
            raise reply.error
        return reply, f"scripted-{request.number}"

    def _take_step(self, request: RecordedRequest) -> tuple[Step, dict[str, str]]:
        """Record the request and choose its step; the lock makes this safe across threads.

        The record line says which part of the script answered (``answered_by``: ``steps[i]``,
        ``rules[i]`` or ``default``) or why nothing did (``error``), so a test in another process
        can tell which recorded steps were used and see a replay's departure.
        """
        with self._lock:
            self._count += 1
            request.number = self._count
            self._requests.append(request)
            try:
                step, variables, answered_by = self._choose(request)
            except Exception as exc:
                if self._record_path is not None:
                    append_record(self._record_path, request, error=f"{type(exc).__name__}: {exc}")
                raise
            if self._record_path is not None:
                append_record(self._record_path, request, answered_by=answered_by)
            return step, variables

    def _choose(self, request: RecordedRequest) -> tuple[Step, dict[str, str], str]:
        variables = {"user": request.user_text, "tool_result": request.tool_result}
        script = self._script
        found = self._next_step(request)
        if found is not None:
            return found[1], variables, f"steps[{found[0]}]"
        for index, rule in enumerate(script.rules):
            groups = rule.match(request)
            if groups is not None:
                return rule.then, {**variables, **groups}, f"rules[{index}]"
        if script.default is not None:
            return script.default, variables, "default"
        raise ScriptExhaustedError(
            f"{script.source} has nothing for request #{request.number} "
            f"(latest user message: {request.user_text!r}, "
            f"{'ends with a tool result' if request.after_tool else 'no tool result pending'}): "
            f"all {len(script.steps)} step(s) used, no rule matched and there is no default",
            log_level=None,
        )

    def _next_step(self, request: RecordedRequest) -> tuple[int, Step] | None:
        """The next unused step and its index (None when all are used); called with the lock held.

        A recorded step answers only the request it recorded. Concurrent turns (two sessions at
        once) may reach the fake in another order than when they were recorded, so a request that is
        not the next recorded one may take a later unused step recorded for exactly it; any other
        request fails with a diff against the next step, which stays unused.
        """
        steps = self._script.steps
        while self._cursor < len(steps) and self._cursor in self._used:
            self._used.discard(self._cursor)
            self._cursor += 1
        if self._cursor >= len(steps):
            return None
        index = self._cursor
        step = steps[index]
        if step.request is not None:
            received = request_fingerprint(request)
            if received != step.request:
                later = (
                    i
                    for i in range(index + 1, len(steps))
                    if i not in self._used and steps[i].request == received
                )
                found = next(later, None)
                if found is None:
                    raise departure(
                        step.request,
                        received,
                        where=f"steps[{index}] of {self._script.source}",
                        number=request.number,
                    )
                self._used.add(found)
                return found, steps[found]
        self._cursor += 1
        return index, step

    async def _reload_if_changed(self) -> None:
        """Swap in the new script (steps from the start) when the watched file changed.

        Runs on the request's event loop, which every agent turn of a host shares: it waits with
        ``asyncio.sleep`` and without the lock, so a half-written file holds up only this request.
        """
        if self._script_path is None:
            return
        signature = _signature(self._script_path)
        if signature == self._script_signature:
            return
        # A writer may be mid-way through the file: give it a moment before calling it malformed.
        for attempt in range(RELOAD_ATTEMPTS):
            try:
                script = load_script(self._script_path)
                break
            except ScriptError:
                if attempt == RELOAD_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(RELOAD_PAUSE_SECONDS)
                signature = _signature(self._script_path)
        with self._lock:
            if signature != self._script_signature:  # a concurrent request may have swapped it in
                self._script = script
                self._script_signature = signature
                self._cursor = 0
                self._used.clear()


def _signature(path: Path) -> _FileSignature:
    try:
        info = path.stat()
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read script: {exc}") from exc
    return (info.st_mtime_ns, info.st_size)


class ScriptedChatClient(
    FunctionInvocationLayer[ChatOptions[Any]],
    ChatMiddlewareLayer[ChatOptions[Any]],
    ChatTelemetryLayer[ChatOptions[Any]],
    RawScriptedChatClient,
):
    """Scripted fake model usable anywhere a chat client is: ``Agent(client=ScriptedChatClient(...))``.

    Layers are composed like ``OpenAIChatClient`` so the framework runs the tool calls the
    script emits and feeds their results into the next request.
    """

    def __init__(
        self,
        steps: Iterable[StepLike] | Script | None = None,
        *,
        middleware: Sequence[ChatAndFunctionMiddlewareTypes] | None = None,
        function_invocation_configuration: FunctionInvocationConfiguration | None = None,
        **kwargs: Any,
    ) -> None:
        """``steps`` and the other options (``rules``, ``default``, ``record_path``, ``model``,
        ``keep_requests``) are ``RawScriptedChatClient``'s; ``middleware`` and function invocation
        settings go to the layers."""
        super().__init__(
            steps=steps,
            middleware=middleware,
            function_invocation_configuration=function_invocation_configuration,
            **kwargs,
        )
