"""Text formatting shared by the CLI tables and the TUI (plain strings, no rich or textual).

Both front ends show the same things (tool-call arguments, results, token usage, previews, and the
times and durations of orchestration instances); formatting them in one place keeps the two views
saying the same thing, and keeps the CLI from importing the TUI (and with it textual) to print a
table.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def clip(text: str, width: int) -> str:
    """At most `width` characters, with an ellipsis when cut (the only truncation rule we use)."""
    if width < 1:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(text: str, width: int) -> str:
    """Whitespace collapsed to single spaces, then clipped to `width` characters."""
    return clip(" ".join(text.split()), width)


def format_value(value: Any, limit: int = 400) -> str:
    """Compact one-line JSON (or the string itself) for arguments and results."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return one_line(text, limit)


def format_arguments(arguments: Any) -> str:
    """`key=value, …` for a dict of arguments; raw JSON otherwise (some models send a string)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return format_value(arguments)
    if isinstance(arguments, dict):
        return ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in arguments.items()
        )
    return format_value(arguments)


def plain(text: str) -> str:
    """Drop the commonest Markdown marks so a one-line preview reads as text."""
    for mark in ("**", "__", "`", "#"):
        text = text.replace(mark, "")
    return " ".join(text.split())


def usage_of(entry: dict[str, Any]) -> dict[str, int] | None:
    """Token usage of one stored assistant message, if it carries any."""
    response = entry.get("agent_response")
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    return {k: v for k, v in usage.items() if isinstance(v, int)}


def total_usage(history: list[dict[str, Any]]) -> dict[str, int]:
    """Token usage summed over every turn of the session."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    for entry in history:
        for key, value in (usage_of(entry) or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def usage_text(usage: dict[str, int]) -> str:
    """`in 12 · out 7 · total 19` (other counters appended by name)."""
    parts = [
        f"in {usage.get('prompt_tokens', 0)}",
        f"out {usage.get('completion_tokens', 0)}",
        f"total {usage.get('total_tokens', 0)}",
    ]
    parts += [f"{k} {v}" for k, v in usage.items() if k not in USAGE_FIELDS]
    return " · ".join(parts)


def local_time(stamp: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp in local time; empty when unknown."""
    return stamp.astimezone().strftime(fmt) if stamp else ""
