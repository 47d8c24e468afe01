"""Hooks that let an app observe agent output (stream to a UI, log, forward)."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from agent_framework import AgentResponse, AgentResponseUpdate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentCallbackContext:
    """What a callback needs to know about the turn it observes."""

    agent_name: str
    correlation_id: str
    conversation_id: str
    request_message: str


@runtime_checkable
class AgentResponseCallbackProtocol(Protocol):
    """Either method may be sync or async."""

    def on_streaming_response_update(
        self, update: AgentResponseUpdate, context: AgentCallbackContext
    ) -> Any: ...

    def on_agent_response(self, response: AgentResponse, context: AgentCallbackContext) -> Any: ...


async def notify(
    callback: AgentResponseCallbackProtocol | None,
    method: str,
    payload: object,
    context: AgentCallbackContext,
) -> None:
    """Call one callback method; a failing callback is logged and never breaks the turn."""
    handler = getattr(callback, method, None)
    if handler is None:
        return
    try:
        result = handler(payload, context)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception(
            "response callback %s.%s failed for agent %s (correlation %s); the turn goes on",
            type(callback).__name__,
            method,
            context.agent_name,
            context.correlation_id,
        )
