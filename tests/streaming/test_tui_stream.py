"""The chat TUI while a reply streams from the streaming sample's host: a tool-call card shows as
the call starts (the turn still running), then the stored reply replaces the live view."""

from __future__ import annotations

import time

from harness.client import AgentClient
from harness.tui import ChatApp
from harness.tui.live import StreamingBubble
from harness.tui.widgets import AssistantBubble, ToolCallCard

SIZE = (140, 40)


async def test_tool_card_appears_while_the_turn_runs_then_the_stored_reply(
    function_host, chat_script, unique_session
):
    chat_script.set(
        {
            "steps": [
                {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Rome"}}]},
                {"chunks": ["Rome: ", "{tool_result}"], "delay": 1.5},
            ]
        }
    )
    app = ChatApp(AgentClient(function_host.url), "WeatherAgent", session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press(*"Rome?", "enter")
        deadline = time.monotonic() + 15

        def card_with_result() -> bool:
            cards = list(app.query(ToolCallCard))
            return len(cards) == 1 and cards[0].call.get("result") != "…"

        while not card_with_result():
            assert time.monotonic() < deadline, "no tool card while the turn ran"
            await pilot.pause(0.02)
        # The card with its result is on screen while the model's second call still waits.
        assert app.busy
        (card,) = app.query(ToolCallCard)
        assert card.call["name"] == "get_weather" and card.call["arguments"] == {"location": "Rome"}
        assert "Rome" in str(card.call["result"])
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not app.busy and not app.query(StreamingBubble)
        (reply,) = [b.content for b in app.query(AssistantBubble)]
        assert reply.startswith("Rome: ") and len(app.query(ToolCallCard)) == 1


async def test_streaming_bubble_grows_with_each_text_event():
    from textual.app import App
    from textual.containers import VerticalScroll

    from harness.reply_stream import ReplyEvent
    from harness.tui.live import LiveReply

    class Holder(App[None]):
        def compose(self):
            yield VerticalScroll(id="chat")

    app = Holder()
    async with app.run_test() as pilot:
        live = LiveReply(app.query_one("#chat", VerticalScroll))
        await live.apply(ReplyEvent("text", {"text": "Hel"}))
        await live.apply(ReplyEvent("text", {"text": "lo"}))
        await pilot.pause()
        (bubble,) = app.query(StreamingBubble)
        assert bubble.text == "Hello"
        await live.apply(ReplyEvent("reset", {"attempt": 2}))
        await pilot.pause()
        assert not app.query(StreamingBubble)
