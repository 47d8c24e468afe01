"""The trigger kinds the local host serves beside HTTP: one line each (see `base.Trigger`).

A kind's module is imported when the app has a function of its binding type: the MCP kinds load the
MCP SDK, half a second of every host start, which an app without MCP triggers never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..api import KeyPolicy
    from .base import Trigger
    from .mcp import McpEndpoint

KINDS: dict[str, str] = {
    "timerTrigger": "timers:TimerTriggers",
    "queueTrigger": "queues:QueueTriggers",
    "mcpToolTrigger": "mcp_tools:McpToolTriggers",
    "mcpResourceTrigger": "mcp_resources:McpResourceTriggers",
    "mcpPromptTrigger": "mcp_prompts:McpPromptTriggers",
}
"""Binding type -> `module:class` of the kind serving it, in the order the host starts them."""

MCP_BINDINGS = frozenset({"mcpToolTrigger", "mcpResourceTrigger", "mcpPromptTrigger"})


def kind(binding_type: str) -> type[Trigger]:
    """The kind serving `binding_type` (a key of `KINDS`), its module imported now."""
    module, _, name = KINDS[binding_type].partition(":")
    found: type[Trigger] = getattr(importlib.import_module(f".{module}", __package__), name)
    return found


def mcp_endpoint(triggers: list[Trigger], keys: KeyPolicy) -> McpEndpoint | None:
    """The MCP endpoint of the app's MCP kinds; None (and the SDK not loaded) when it has none."""
    if not any(trigger.binding_type in MCP_BINDINGS for trigger in triggers):
        return None
    from .mcp import McpEndpoint

    return McpEndpoint.create(triggers, keys)
