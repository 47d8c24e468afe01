"""A local OpenAI-compatible HTTP server for tests: the model boundary, not a mock of the client.

The real ``agent_framework.openai`` clients talk to it over HTTP: ``OpenAIChatClient`` uses the
Responses API (``POST /v1/responses``), ``OpenAIChatCompletionClient`` the Chat Completions API
(``POST /v1/chat/completions``); both are served, whole or streamed as server-sent events, with text,
tool calls and usage. Its answers are a queue of ``ModelReply`` values taken in order, so a test knows
exactly what "the live model" said; every request body is kept in ``requests``. Nothing is stored
between runs: the server lives in a background thread of the test process.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from harness.processes import free_port


@dataclass(frozen=True)
class ModelReply:
    """One answer of the local model: text (sent in ``chunks`` pieces when streamed), tool calls, usage."""

    text: str = ""
    tool_calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    usage: tuple[int, int] = (11, 7)
    chunks: int = 3


@dataclass
class LocalOpenAI:
    """The server: ``start()`` it, point a client's ``base_url`` at ``base_url``, queue replies."""

    replies: list[ModelReply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _count: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: ModelReply | str) -> None:
        self.replies.extend(ModelReply(text=r) if isinstance(r, str) else r for r in replies)

    def start(self) -> LocalOpenAI:
        self.port = free_port("127.0.0.1")
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/v1/responses", self._responses)
            app.router.add_post("/v1/chat/completions", self._completions)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="local-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the local OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    # -- shared ----------------------------------------------------------------------------------

    async def _take(self, request: web.Request) -> tuple[dict[str, Any], ModelReply, int, str] | web.Response:
        """(body, the next reply, request number, model) or, with no reply queued, an HTTP 500."""
        body = await request.json()
        self.requests.append(body)
        self._count += 1
        if not self.replies:
            error = {"error": {"message": "the local model has no reply queued", "type": "server_error"}}
            return web.json_response(error, status=500)
        return body, self.replies.pop(0), self._count, str(body.get("model") or "local-model")

    @staticmethod
    async def _sse(request: web.Request, events: Iterable[tuple[str | None, Any]]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for name, data in events:
            prefix = f"event: {name}\n" if name else ""
            payload = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"{prefix}data: {payload}\n\n".encode())
        await response.write_eof()
        return response

    # -- Responses API ---------------------------------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        taken = await self._take(request)
        if isinstance(taken, web.Response):
            return taken
        body, reply, n, model = taken
        message = {
            "type": "message",
            "id": f"msg_{n}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
        }
        calls = [
            {
                "type": "function_call",
                "id": f"fc_{n}_{i}",
                "call_id": f"call_{n}_{i}",
                "name": name,
                "arguments": json.dumps(dict(arguments)),
                "status": "completed",
            }
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]
        output = ([message] if reply.text else []) + calls
        done = _response_object(n, model, "completed", output, reply.usage)
        if not body.get("stream"):
            return web.json_response(done)
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"response": _response_object(n, model, "in_progress", [], None)})
        ]
        index = 0
        if reply.text:
            empty = {**message, "status": "in_progress", "content": []}
            events.append(("response.output_item.added", {"output_index": 0, "item": empty}))
            for piece in _pieces(reply.text, reply.chunks):
                events.append(
                    (
                        "response.output_text.delta",
                        {
                            "item_id": message["id"],
                            "output_index": 0,
                            "content_index": 0,
                            "delta": piece,
                            "logprobs": [],
                        },
                    )
                )
            events.append(("response.output_item.done", {"output_index": 0, "item": message}))
            index = 1
        for offset, call in enumerate(calls, start=index):
            events.append(
                ("response.output_item.added", {"output_index": offset, "item": {**call, "arguments": ""}})
            )
            events.append(
                (
                    "response.function_call_arguments.delta",
                    {"item_id": call["id"], "output_index": offset, "delta": call["arguments"]},
                )
            )
            events.append(("response.output_item.done", {"output_index": offset, "item": call}))
        events.append(("response.completed", {"response": done}))
        numbered = [
            (name, {"type": name, "sequence_number": seq, **data}) for seq, (name, data) in enumerate(events)
        ]
        return await self._sse(request, numbered)

    # -- Chat Completions API --------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        taken = await self._take(request)
        if isinstance(taken, web.Response):
            return taken
        body, reply, n, model = taken
        calls = [
            {
                "index": i,
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(dict(arguments))},
            }
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]
        finish = "tool_calls" if calls else "stop"
        usage = {
            "prompt_tokens": reply.usage[0],
            "completion_tokens": reply.usage[1],
            "total_tokens": sum(reply.usage),
        }
        base = {"id": f"chatcmpl-{n}", "created": 0, "model": model}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return web.json_response(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            return {**base, "object": "chat.completion.chunk", "choices": [choice]}

        events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
        events += [(None, chunk({"content": piece})) for piece in _pieces(reply.text, reply.chunks)]
        if calls:
            events.append((None, chunk({"tool_calls": calls})))
        events.append((None, chunk({}, finish)))
        events.append((None, {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
        events.append((None, "[DONE]"))
        return await self._sse(request, events)


def _response_object(
    n: int, model: str, status: str, output: list[dict[str, Any]], usage: tuple[int, int] | None
) -> dict[str, Any]:
    return {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None
        if usage is None
        else {
            "input_tokens": usage[0],
            "output_tokens": usage[1],
            "total_tokens": sum(usage),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _pieces(text: str, count: int) -> list[str]:
    """``text`` cut into up to ``count`` non-empty pieces (the stream's deltas)."""
    if not text:
        return []
    size = max(1, -(-len(text) // max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)]
