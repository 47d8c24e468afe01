"""The reply of a turn while it streams: text growing in one bubble, a tool-call card per call as
it starts (its result filled in when it comes). Once the turn's `final` event arrives, the chat is
rebuilt from the stored session as before, so what stays on screen is what the session holds."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from harness.reply_stream import ReplyEvent

from .widgets import ToolCallCard


class StreamingBubble(Static):
    """The reply text so far (plain text; the stored reply is rendered as Markdown afterwards)."""

    def __init__(self) -> None:
        super().__init__(Text(""), classes="bubble assistant streaming")
        self.text = ""
        self.border_title = "agent · streaming"

    def append(self, delta: str) -> None:
        self.text += delta
        self.update(Text(self.text))


class LiveReply:
    """Shows one turn's events in the chat; `reset` (the host retried the turn) starts over."""

    def __init__(self, chat: VerticalScroll) -> None:
        self.chat = chat
        self.bubble: StreamingBubble | None = None
        self.cards: dict[str, ToolCallCard] = {}
        self.calls: dict[str, dict[str, Any]] = {}

    async def apply(self, event: ReplyEvent) -> None:
        if event.kind == "text":
            if self.bubble is None:
                self.bubble = StreamingBubble()
                await self.chat.mount(self.bubble)
            self.bubble.append(str(event.data.get("text", "")))
        elif event.kind == "tool_call":
            self.bubble = None  # text after a tool call is a new part of the reply
            call = {
                "name": event.data.get("name"),
                "arguments": event.data.get("arguments") or {},
                "result": "…",
            }
            key = str(event.data.get("call_id"))
            self.calls[key] = call
            self.cards[key] = ToolCallCard(call)
            await self.chat.mount(self.cards[key])
        elif event.kind == "tool_result":
            key = str(event.data.get("call_id"))
            old = self.cards.get(key)
            if old is not None:
                card = ToolCallCard({**self.calls[key], "result": event.data.get("result")})
                await self.chat.mount(card, after=old)
                await old.remove()
                self.cards[key] = card
        elif event.kind == "reset":
            await self.clear()
        else:
            return
        self.chat.scroll_end(animate=False)

    async def clear(self) -> None:
        """Remove what this turn showed so far."""
        for widget in [*self.cards.values(), *self.chat.query(StreamingBubble)]:
            await widget.remove()
        self.bubble = None
        self.cards.clear()
        self.calls.clear()
