"""The trigger kinds the local host serves beside HTTP: one line each (see `base.Trigger`)."""

from __future__ import annotations

from .base import Trigger
from .mcp_prompts import McpPromptTriggers
from .mcp_resources import McpResourceTriggers
from .mcp_tools import McpToolTriggers
from .queues import QueueTriggers
from .timers import TimerTriggers

KINDS: tuple[type[Trigger], ...] = (
    TimerTriggers,
    QueueTriggers,
    McpToolTriggers,
    McpResourceTriggers,
    McpPromptTriggers,
)
