"""Queue triggers: the app's `@app.queue_trigger` functions, fed from Azure Storage queues (Azurite).

As the Functions host does with its defaults: messages are read in batches of up to 16 and each is
handed to the function as a `func.QueueMessage` (its text decoded from base64 when it is base64,
which is how Azure's queue clients send it, else as written); a message is deleted once the
function returns; one whose function raised becomes visible again at once and is retried, and after
its fifth attempt it moves to `<queue>-poison`. A crash before the delete delivers it again
(at-least-once, as on Azure). An idle queue is polled with back-off, from every 0.1 s up to
every 2 s (Azure: up to a minute), so a message reaches its function promptly during development.
A function that runs longer than functionTimeout is abandoned (its sync code runs on in its thread)
and its message takes the failure path: retried, then poisoned.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueMessage as StoredMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from ..errors import AppLoadError
from ..loader import QueueFunction
from ..storage.api_version import versioned
from ..storage.queue_storage import connection_string, ensure_queue, message_text, queue_name
from ..workers import FunctionTimeoutError, within
from .outputs import OutputWriter

log = logging.getLogger(__name__)

POLL_MIN = 0.1
POLL_MAX = 2.0


class QueueTriggers:
    """One polling task per queue-triggered function."""

    def __init__(
        self,
        functions: list[QueueFunction],
        executor: Executor,
        client_binding: Any,
        storage: str,
        outputs: OutputWriter,
        max_dequeue: int = 5,
        batch: int = 16,
        timeout: float | None = None,
    ) -> None:
        """`storage`: the host's own connection string, which `AzureWebJobsStorage` means;
        `max_dequeue` and `batch`: host.json's `extensions.queues` `maxDequeueCount` and `batchSize`;
        `timeout`: functionTimeout in seconds (None: unbounded)."""
        self.timeout = timeout
        self.executor = executor
        self.max_dequeue = max_dequeue
        self.batch = batch
        self.outputs = outputs
        self.client_binding = client_binding
        self.functions: list[tuple[QueueFunction, str, str]] = []
        for function in functions:
            try:
                name = queue_name(function.queue_name)
            except ValueError as exc:
                raise AppLoadError(f"function {function.name}: {exc}") from None
            try:
                connection = connection_string(function.connection, storage)
            except ValueError as exc:
                raise AppLoadError(f"function {function.name}: {exc}") from None
            self.functions.append((function, name, connection))
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start polling every function's queue."""
        loop = asyncio.get_running_loop()
        for function, name, connection in self.functions:
            self._tasks.append(loop.create_task(self._poll(function, name, connection), name=f"queue {name}"))

    async def stop(self) -> None:
        """Stop polling (messages being handled are delivered again later)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _poll(self, function: QueueFunction, name: str, connection: str) -> None:
        options = versioned(retry_total=1, connection_timeout=5)
        service = QueueServiceClient.from_connection_string(connection, **options)
        queue = service.get_queue_client(name)
        poison = service.get_queue_client(f"{name}-poison")
        delay = POLL_MIN
        ready = False
        try:
            while True:
                try:
                    if not ready:
                        await ensure_queue(queue)
                        ready = True
                    got = 0
                    async for message in queue.receive_messages(
                        messages_per_page=self.batch, max_messages=self.batch
                    ):
                        got += 1
                        await self._handle(function, queue, poison, message)
                    delay = POLL_MIN if got else min(delay * 2, POLL_MAX)
                except AzureError as exc:
                    log.warning("queue %s: %s; polling again in %.1fs", name, type(exc).__name__, POLL_MAX)
                    ready = False  # Azurite may have come back empty: create the queue again
                    delay = POLL_MAX
                await asyncio.sleep(delay)
        finally:
            await queue.close()
            await poison.close()
            await service.close()

    async def _handle(
        self, function: QueueFunction, queue: QueueClient, poison: QueueClient, stored: StoredMessage
    ) -> None:
        text = message_text(str(stored.content or ""))
        message = QueueMessage(
            id=stored.id,
            body=text.encode("utf-8"),
            dequeue_count=stored.dequeue_count,
            expiration_time=stored.expires_on,
            insertion_time=stored.inserted_on,
            time_next_visible=stored.next_visible_on,
            pop_receipt=stored.pop_receipt,
        )
        kwargs: dict[str, Any] = {function.trigger_param: message}
        for param in function.client_params:
            kwargs[param] = self.client_binding()
        log.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on %s')", function.name, stored.id
        )
        try:
            call = self.outputs.call(function.fn, kwargs, function.is_async, self.executor, function.outputs)
            await within(self.timeout, call, function.name)
        except Exception as exc:
            if isinstance(exc, FunctionTimeoutError):
                log.error(
                    "Executed 'Functions.%s' (Failed, attempt %s): %s; abandoned",
                    function.name,
                    stored.dequeue_count,
                    exc,
                )
            else:
                log.exception(
                    "Executed 'Functions.%s' (Failed, attempt %s)", function.name, stored.dequeue_count
                )
            if (stored.dequeue_count or 0) >= self.max_dequeue:
                await ensure_queue(poison)
                await poison.send_message(stored.content)
                await queue.delete_message(stored)
                log.warning(
                    "queue message %s moved to %s after %d attempts",
                    stored.id,
                    poison.queue_name,
                    self.max_dequeue,
                )
            else:
                await queue.update_message(stored, visibility_timeout=0)  # retried at once, as on Azure
            return
        await queue.delete_message(stored)
        log.info("Executed 'Functions.%s' (Succeeded)", function.name)
