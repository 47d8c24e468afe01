"""Queue triggers: the app's `@app.queue_trigger` functions, fed from Azure Storage queues (Azurite).

As the Functions host does with its defaults: messages are read in batches of up to 16 and each is
handed to the function as a `func.QueueMessage` (its text decoded from base64 when it is base64,
which is how Azure's queue clients send it, else as written); a message is deleted once the
function returns; one whose function raised becomes visible again at once and is retried, and after
its fifth attempt it moves to `<queue>-poison`. A crash before the delete delivers it again
(at-least-once, as on Azure). An idle queue is polled with back-off, from every 0.1 s up to
every 2 s (Azure: up to a minute), so a message reaches its function promptly during development;
a message this host's own output bindings send ends the wait at once (`OutputWriter.sent`).
A function that runs longer than functionTimeout is abandoned (its sync code runs on in its thread)
and its message takes the failure path: retried, then poisoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueMessage as StoredMessage
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from ..errors import AppLoadError
from ..loader import TriggeredFunction
from ..storage.api_version import versioned
from ..storage.queue_storage import connection_string, ensure_queue, message_text, queue_name
from ..workers import FunctionTimeoutError
from .base import Trigger, TriggerServices
from .outputs import queue_key

log = logging.getLogger(__name__)

POLL_MIN = 0.1
POLL_MAX = 2.0


@dataclass(frozen=True)
class QueueBinding:
    """One queue-triggered function, the queue it reads and that queue's connection string."""

    function: TriggeredFunction
    queue: str
    connection: str


def queue_binding(function: TriggeredFunction, storage: str) -> QueueBinding:
    """The queue a function reads (its `%Setting%` expanded) and the storage its `connection` setting
    names (`storage`: what `AzureWebJobsStorage` means); AppLoadError naming the function."""
    try:
        name = queue_name(str(function.trigger.queue_name))
        setting = str(getattr(function.trigger, "connection", None) or "AzureWebJobsStorage")
        return QueueBinding(function, name, connection_string(setting, storage))
    except ValueError as exc:
        raise AppLoadError(f"function {function.name}: {exc}") from None


class QueueTriggers(Trigger):
    """One polling task per queue-triggered function; host.json's `extensions.queues`
    `maxDequeueCount` and `batchSize` apply."""

    binding_type = "queueTrigger"

    def __init__(self, bindings: list[QueueBinding], services: TriggerServices) -> None:
        super().__init__(services)
        self.max_dequeue = services.config.max_dequeue
        self.batch = services.config.queue_batch
        self.bindings = bindings
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> QueueTriggers:
        return cls([queue_binding(f, services.storage) for f in functions], services)

    async def prepare(self) -> None:
        """Create the queues before the host answers, so a message sent as soon as it does is not
        refused (`QueueNotFound`); one that cannot be created now is created by its polling."""
        for binding in self.bindings:
            options = versioned(retry_total=1, connection_timeout=5)
            try:
                async with QueueClient.from_connection_string(
                    binding.connection, binding.queue, **options
                ) as queue:
                    await ensure_queue(queue)
            except AzureError as exc:
                log.warning("queue %s: %s; created when polled", binding.queue, type(exc).__name__)

    def start(self) -> None:
        """Start polling every function's queue."""
        loop = asyncio.get_running_loop()
        for binding in self.bindings:
            self._tasks.append(loop.create_task(self._poll(binding), name=f"queue {binding.queue}"))

    async def stop(self) -> None:
        """Stop polling (messages being handled are delivered again later)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def banner(self) -> list[str]:
        return [f"{b.function.name}: queueTrigger ({b.queue})" for b in self.bindings]

    async def _poll(self, binding: QueueBinding) -> None:
        function, name = binding.function, binding.queue
        options = versioned(retry_total=1, connection_timeout=5)
        service = QueueServiceClient.from_connection_string(binding.connection, **options)
        queue = service.get_queue_client(name)
        poison = service.get_queue_client(f"{name}-poison")
        delay = POLL_MIN
        ready = False
        try:
            while True:
                # Watched before the read: a message this host sends meanwhile ends the wait below.
                with self.services.outputs.sent.watch(queue_key(binding.connection, name)) as sent:
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
                        problem = type(exc).__name__
                        log.warning("queue %s: %s; polling again in %.1fs", name, problem, POLL_MAX)
                        ready = False  # Azurite may have come back empty: create the queue again
                        delay = POLL_MAX
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sent.wait(), delay)
                        delay = POLL_MIN
        finally:
            await queue.close()
            await poison.close()
            await service.close()

    async def _handle(
        self, function: TriggeredFunction, queue: QueueClient, poison: QueueClient, stored: StoredMessage
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
        log.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on %s')", function.name, stored.id
        )
        try:
            await self.invoke(function, message)
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
