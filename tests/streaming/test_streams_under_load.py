"""Streamed turns under load (issue 20, item 6): every client gets every chunk its turn made.

Under load a reader of the run route can fall behind its turn: the turn may start (and end) before
the response's first event is sent, or run whole while the reader waits for one read of the state
(hundreds of milliseconds when 100 turns share the host, longer than a short turn). The chunks are
then in no table yet (the turn does not wait for their stored copy) but were handed over in this
process; a reader that answered from the state alone sent `accepted` and `final` and no chunk.
The load test shows it through the real stack; the others make each of those moments happen on
purpose, without load (the durable back end stands in, the store is the table on Azurite)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.EntityStateResponse import EntityStateResponse

from durableagent import AgentFunctionApp, TableStreamStore
from durableagent.streams import StreamEvent, StreamId
from fakes import ScriptedChatClient
from harness.client import AgentClient
from harness.reply_stream import ReplyEvent
from tests.library.conftest import DurableClientDouble, make_agent
from tests.library.test_streams import sse_run

CHUNKS = [f"word{i} " for i in range(8)]
CLIENTS = 100


async def _streamed_turn(client: AgentClient, session: str) -> list[ReplyEvent]:
    return [event async for event in client.stream_run("WeatherAgent", "hello", session)]


async def _concurrent_turns(url: str, count: int) -> list[list[ReplyEvent]]:
    async with AgentClient(url, timeout=60) as client:
        turns = (_streamed_turn(client, f"load-{uuid.uuid4().hex[:12]}") for _ in range(count))
        return await asyncio.gather(*turns)


def _short_of_chunks(turns: list[list[ReplyEvent]]) -> list[str]:
    """One line per client that did not get the turn's chunks, then its final reply, in order."""
    short = []
    for events in turns:
        kinds = [e.kind for e in events]
        text = "".join(e.data["text"] for e in events if e.kind == "text")
        final = events[-1].data
        if kinds != ["accepted", *["text"] * len(CHUNKS), "final"] or text != final.get("response"):
            short.append(
                f"{kinds.count('text')} chunk(s), final {final.get('status')!r} {final.get('error', '')}"
            )
    return short


@pytest.mark.integration
def test_a_hundred_concurrent_streamed_turns_each_get_every_chunk(function_host, chat_script):
    """The first round warms the host up (the report: a host that had run a while lost chunks, a
    fresh one did not); every round must give every client all of its chunks."""
    chat_script.set({"default": {"chunks": CHUNKS, "chunk_delay": 0.005}})
    for round_ in range(3):
        began = time.monotonic()
        turns = asyncio.run(_concurrent_turns(function_host.url, CLIENTS))
        short = _short_of_chunks(turns)
        assert not short, f"round {round_} ({time.monotonic() - began:.1f} s): {len(short)} short: {short}"


# -- the moments that lose chunks, made on purpose ---------------------------------------------------
class BackEndUnderLoad(DurableClientDouble):
    """The durable back end, slow where load makes it slow: the signalled turn runs whole either
    inside `signal_entity` (it is done before the run route sends its first event) or inside the
    reader's first state read (that read outlasts the turn)."""

    def __init__(self, app: AgentFunctionApp, turn_runs_during: str) -> None:
        super().__init__(app)
        self.turn_runs_during = turn_runs_during
        self.held: list[tuple[str, str, str, Any]] = []

    async def signal_entity(
        self, entityId: df.EntityId, operation_name: str, operation_input: Any = None
    ) -> None:
        self.signals.append((entityId.name, entityId.key, operation_name, operation_input))
        signal = (entityId.name, entityId.key, operation_name, operation_input)
        if self.turn_runs_during == "signal":
            await self._apply(*signal)
        else:
            self.held.append(signal)

    async def read_entity_state(self, entityId: df.EntityId) -> EntityStateResponse:
        while self.held:
            await self._apply(*self.held.pop(0))
        return await super().read_entity_state(entityId)


class UnflushedStore(TableStreamStore):
    """The table while its writes queue behind everyone else's: nothing is stored yet."""

    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None:
        return None


@pytest.mark.parametrize("turn_runs_during", ["signal", "state read"])
@pytest.mark.parametrize("stored", [True, False], ids=["rows stored", "rows not stored yet"])
async def test_a_reader_behind_its_turn_still_sends_every_chunk(azurite, turn_runs_during, stored):
    table = "t" + uuid.uuid4().hex[:16]
    store = (TableStreamStore if stored else UnflushedStore)(azurite.connection_string, table=table)
    app = AgentFunctionApp(
        agents=[make_agent(ScriptedChatClient(steps=[{"chunks": CHUNKS}]))], stream_store=store
    )
    host = BackEndUnderLoad(app, turn_runs_during)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    kinds = [e[0] for e in events]
    assert kinds == ["accepted", *["text"] * len(CHUNKS), "final"], kinds
    assert (
        "".join(e[1]["text"] for e in events if e[0] == "text")
        == events[-1][1]["response"]
        == "".join(CHUNKS)
    )


class LateCommit(BackEndUnderLoad):
    """A back end under load: each state read takes `read_seconds`, and the turn's state shows up
    only after `hidden_reads` reads (its commit lags the turn's `end` row)."""

    def __init__(self, app: AgentFunctionApp, read_seconds: float, hidden_reads: int) -> None:
        super().__init__(app, "signal")
        self.read_seconds = read_seconds
        self.hidden_reads = hidden_reads

    async def read_entity_state(self, entityId: df.EntityId) -> EntityStateResponse:
        await asyncio.sleep(self.read_seconds)  # the back end's latency, not a wait for readiness
        if self.hidden_reads > 0:
            self.hidden_reads -= 1
            return EntityStateResponse(False)
        return await super().read_entity_state(entityId)


async def test_a_commit_that_lags_like_the_reads_is_no_deleted_session(azurite, monkeypatch):
    """Under load the state is committed seconds after the turn's `end` row (the load test saw
    more than `ENDED_GRACE`): a reader whose state reads are that slow keeps waiting for it
    instead of ending with 'the session was deleted or reset'."""
    from durableagent import _sse

    monkeypatch.setattr(_sse, "ENDED_GRACE", 0.05)
    store = TableStreamStore(azurite.connection_string, table="t" + uuid.uuid4().hex[:16])
    app = AgentFunctionApp(
        agents=[make_agent(ScriptedChatClient(steps=[{"chunks": CHUNKS}]))], stream_store=store
    )
    host = LateCommit(app, read_seconds=0.03, hidden_reads=3)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    final = events[-1][1]
    assert final["status"] == "success" and final["response"] == "".join(CHUNKS), final
