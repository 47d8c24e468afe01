"""Output bindings: what a function sets on its `func.Out` parameters (or returns as `$return`).

As the Functions host does, outputs are written only after the function returned, and a failed
write fails the invocation (an HTTP call answers 500, a queue message is retried, an activity
fails). Queue outputs (`@app.queue_output`) go to Azure Storage queues (Azurite), each message
base64-encoded as the host does by default (host.json's
`extensions.queues.messageEncoding`), one message per item when the value is a list (the values the
Python worker's own converter takes, and no others).
Other output kinds (blob, table, ...) get a `func.Out` whose value is dropped; the start-up banner
says so. A crash after the function returned and before its messages were sent loses them unless
the trigger is delivered again (queue messages and activities are; an HTTP caller sees no reply).
Every message of an output is encoded and checked (64 KiB, UTF-8 without base64) before the first
is sent, so an output that cannot be written sends none of its messages.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.queue import QueueMessageOutConverter
from azure.storage.queue.aio import QueueServiceClient

from ..changes import KeyedChanges
from ..errors import AppLoadError
from ..loader import Outputs, call_function
from ..storage.api_version import versioned
from ..storage.queue_storage import connection_string, ensure_queue, queue_name

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_MESSAGE = 64 * 1024
"""Azure Storage's limit for one queue message's text (after base64), in bytes."""


class Out(func.Out[T]):
    """The value holder a function's output parameter receives (the worker's own is not public)."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:  # type: ignore[return-value]  # None until the function sets it
        return self._value  # type: ignore[return-value]


def message_bodies(value: Any, param: str) -> list[bytes]:
    """The messages one output value stands for, as the Python worker encodes it (its own converter):
    none for None, `str` / `bytes` / a `func.QueueMessage` as one message, any other iterable of
    `str` or queue messages as one message per item. What the worker refuses (a number, a list of
    dicts, ...) fails the invocation here too, so it does not first fail on Azure.
    """
    if value is None:
        return []
    try:
        datum = QueueMessageOutConverter.encode(value, expected_type=None)
    except NotImplementedError as exc:
        raise TypeError(
            f"queue output {param!r} got {type(value).__name__}, which the Functions worker cannot send: "
            f"set str, bytes, a QueueMessage or a list of str / QueueMessage{f' ({exc})' if str(exc) else ''}"
        ) from None
    if datum.type == "string":
        return [str(datum.value).encode("utf-8")]
    if datum.type == "bytes":
        return [bytes(datum.value)]
    decoded = json.loads(datum.value)  # one queue message as {"id", "body"}, or a list
    items = decoded if isinstance(decoded, list) else [decoded]
    return [(item if isinstance(item, str) else item["body"]).encode("utf-8") for item in items]


def queue_key(connection: str, queue: str) -> str:
    """What names one queue of one storage account in `OutputWriter.sent`."""
    return f"{queue}\n{connection}"


class OutputWriter:
    """Calls functions with their output parameters bound and writes what they set."""

    def __init__(self, storage: str, *, encode: bool = True) -> None:
        """`storage`: the host's own connection string, which `AzureWebJobsStorage` means; `encode`:
        base64 messages (host.json `extensions.queues.messageEncoding`, "base64" by default)."""
        self.storage = storage
        self.encode = encode
        self._services: dict[str, QueueServiceClient] = {}
        # Set per queue (`queue_key`) when this host sent to it: its own queue trigger polls at once.
        self.sent = KeyedChanges()

    def check(self, function_name: str, outputs: Outputs) -> None:
        """Refuse a start whose queue outputs name an invalid queue or an unset connection."""
        for output in outputs.queues:
            try:
                queue_name(output.queue_name)
                connection_string(output.connection, self.storage)
            except ValueError as exc:
                raise AppLoadError(f"function {function_name}: output {output.param!r}: {exc}") from None

    async def call(
        self,
        fn: Callable[..., Any],
        kwargs: dict[str, Any],
        is_async: bool,
        executor: Executor,
        outputs: Outputs,
    ) -> Any:
        """`call_function` with the outputs bound; the queue messages are sent before it returns."""
        bound: dict[str, Out[Any]] = {}
        for output in outputs.queues:
            if output.param != "$return":
                bound[output.param] = Out()
        for dropped in outputs.dropped:
            if dropped.name != "$return":
                bound[dropped.name] = Out()
        returned = await call_function(fn, {**kwargs, **bound}, is_async, executor)
        for output in outputs.queues:
            value = returned if output.param == "$return" else bound[output.param].get()
            await self._send(output.queue_name, output.connection, message_bodies(value, output.param))
        return returned

    def _texts(self, raw_queue: str, bodies: list[bytes]) -> list[str]:
        """The messages as stored, each checked before any is sent: an output that cannot be
        written fails its invocation whole, and a retried trigger does not send its first
        messages twice."""
        texts = []
        for index, body in enumerate(bodies):
            where = f"message {index + 1} of {len(bodies)} for queue {raw_queue!r}"
            if self.encode:
                text = base64.b64encode(body).decode("ascii")
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError(
                        f"{where} is not UTF-8 text, which host.json's messageEncoding 'none' needs"
                    ) from None
            size = len(text.encode("utf-8"))
            if size > MAX_MESSAGE:
                raise ValueError(
                    f"{where} is {size} bytes{' in base64' if self.encode else ''}; a queue message "
                    f"holds at most {MAX_MESSAGE}"
                )
            texts.append(text)
        return texts

    async def _send(self, raw_queue: str, setting: str, bodies: list[bytes]) -> None:
        if not bodies:
            return
        name = queue_name(raw_queue)
        texts = self._texts(raw_queue, bodies)
        connection = connection_string(setting, self.storage)
        service = self._services.get(connection)
        if service is None:
            service = QueueServiceClient.from_connection_string(connection, **versioned(retry_total=2))
            self._services[connection] = service
        queue = service.get_queue_client(name)
        for text in texts:
            try:
                await queue.send_message(text)
            except ResourceNotFoundError:  # first use, or Azurite came back empty
                await ensure_queue(queue)
                await queue.send_message(text)
        self.sent.changed(queue_key(connection, name))
        log.info("queued %d message(s) on %s", len(bodies), name)

    async def close(self) -> None:
        for service in self._services.values():
            await service.close()
        self._services.clear()
