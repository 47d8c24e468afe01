"""Where two sessions' histories part: the turns they share, and each one's turns after that.

Turns are numbered as everywhere else (`durableagent.state.turn_numbers`: a request and what answers
it). Two turns are the same when what a user sees of them is: roles, texts, statuses, errors and
tool calls; times and correlation ids are left out, so two sessions that asked and got the same
things compare equal, and a fork compares equal to its source up to the turn it copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from durableagent.state import turn_numbers
from harness.formatting import format_arguments, format_value, one_line

SEEN_FIELDS = ("role", "content", "status", "error")


@dataclass(frozen=True)
class Turn:
    number: int
    entries: tuple[dict[str, Any], ...]

    def key(self) -> tuple[Any, ...]:
        """What a user sees of the turn, to compare it with another session's."""
        return tuple(
            (tuple(entry.get(f) for f in SEEN_FIELDS), tuple(_call_key(c) for c in _tool_calls(entry)))
            for entry in self.entries
        )

    def lines(self, width: int = 200) -> list[tuple[str, str]]:
        """(kind, text) lines for display: kind is user, tool, agent or error."""
        out: list[tuple[str, str]] = []
        for entry in self.entries:
            if entry.get("role") != "assistant":
                out.append(("user", one_line(str(entry.get("content") or ""), width)))
                continue
            for call in _tool_calls(entry):
                result = format_value(call.get("error") or call.get("result", ""), width // 2)
                out.append(
                    ("tool", f"{call.get('name')}({format_arguments(call.get('arguments'))}) -> {result}")
                )
            if entry.get("status") == "error":
                out.append(("error", one_line(str(entry.get("error") or "the turn failed"), width)))
            else:
                out.append(("agent", one_line(str(entry.get("content") or ""), width)))
        return out


def _tool_calls(entry: dict[str, Any]) -> list[dict[str, Any]]:
    response = entry.get("agent_response")
    calls = response.get("tool_calls") if isinstance(response, dict) else None
    return [c for c in calls or [] if isinstance(c, dict)]


def _call_key(call: dict[str, Any]) -> tuple[str, str, str]:
    return (str(call.get("name")), format_value(call.get("arguments")), format_value(call.get("result")))


def turns_of(history: Any) -> list[Turn]:
    """A stored history (`conversation_history`) grouped into numbered turns."""
    entries = [e for e in history or [] if isinstance(e, dict)]
    grouped: dict[int, list[dict[str, Any]]] = {}
    for entry, number in zip(entries, turn_numbers(entries), strict=True):
        grouped.setdefault(number, []).append(entry)
    return [Turn(number, tuple(items)) for number, items in grouped.items()]


@dataclass(frozen=True)
class SessionDiff:
    common: list[Turn]
    """Turns 1 to `shared`, the same in both sessions (as the left one holds them)."""
    left: list[Turn]
    """The left session's turns after the shared ones."""
    right: list[Turn]

    @property
    def shared(self) -> int:
        return len(self.common)

    @property
    def same(self) -> bool:
        return not self.left and not self.right


def diff_sessions(left_history: Any, right_history: Any) -> SessionDiff:
    """Compare two histories turn by turn from the start, up to the first turn that differs."""
    left, right = turns_of(left_history), turns_of(right_history)
    shared = 0
    for mine, theirs in zip(left, right, strict=False):
        if mine.key() != theirs.key():
            break
        shared += 1
    return SessionDiff(left[:shared], left[shared:], right[shared:])
