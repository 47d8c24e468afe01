"""harness.formatting: the one truncation rule and the shared value/usage formatting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from harness.formatting import (
    agent_session_of,
    clip,
    duration_text,
    format_arguments,
    format_value,
    one_line,
    pending_timer,
    plain,
    status_note,
    timeline,
    total_usage,
    usage_text,
)
from harness.tui.screens import log_lines


def test_clip_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert clip("abcdef", 6) == "abcdef"
    assert clip("abcdefg", 6) == "abcde…"
    assert len(clip("x" * 100, 10)) == 10
    assert clip("abc", 0) == ""


def test_one_line_collapses_whitespace_before_clipping() -> None:
    assert one_line("a\n  b\tc", 10) == "a b c"
    assert one_line("word " * 10, 12) == "word word w…"


def test_format_value_and_arguments() -> None:
    assert format_value({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert format_value("x" * 500, 20) == "x" * 19 + "…"
    assert format_arguments('{"location": "Paris"}') == 'location="Paris"'
    assert format_arguments("not json") == "not json"
    assert plain("**bold** `code`") == "bold code"


def test_usage_totals() -> None:
    history = [
        {"agent_response": {"usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}},
        {"role": "user"},
        {"agent_response": {"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}},
    ]
    assert usage_text(total_usage(history)) == "in 4 · out 3 · total 7"


def test_log_lines_reads_the_tail_or_says_why_not(tmp_path: Path) -> None:
    log = tmp_path / "host.log"
    log.write_text("".join(f"line {i}\n" for i in range(10)), encoding="utf-8")
    assert log_lines(log, 3) == ["line 7", "line 8", "line 9"]
    log.write_text("", encoding="utf-8")
    assert log_lines(log) == []
    assert log_lines(tmp_path / "missing.log")[0].startswith("(cannot read")


HISTORY = [
    {
        "EventType": "ExecutionStarted",
        "Timestamp": "2026-01-01T10:00:00Z",
        "FunctionName": "flow",
        "Input": '{"x": 1}',
    },
    {
        "EventType": "TaskCompleted",
        "Timestamp": "2026-01-01T10:00:01.500Z",
        "ScheduledTime": "2026-01-01T10:00:00.250Z",
        "FunctionName": "fetch",
        "Result": "[1, 2]",
    },
    {"EventType": "TimerCreated", "Timestamp": "2026-01-01T10:00:02Z", "FireAt": "2026-01-01T10:01:02Z"},
    {"EventType": "TimerFired", "Timestamp": "2026-01-01T10:01:02Z", "FireAt": "2026-01-01T10:01:02Z"},
    {
        "EventType": "EntityCalled",
        "Timestamp": "2026-01-01T10:01:05Z",
        "ScheduledTime": "2026-01-01T10:01:03Z",
        "InstanceId": "@dafx-weatheragent@s1",
        "Operation": "run_agent",
        "Result": {"response": "Sunny"},
    },
    {"EventType": "EventRaised", "Timestamp": "2026-01-01T10:02:00Z", "Name": "Approval", "Input": "true"},
    {
        "EventType": "TaskFailed",
        "Timestamp": "2026-01-01T10:02:01Z",
        "ScheduledTime": "2026-01-01T10:02:00.900Z",
        "FunctionName": "pay",
        "Reason": "ValueError: no money",
    },
    {"EventType": "ExecutionCompleted", "Timestamp": "2026-01-01T10:02:02Z", "OrchestrationStatus": "Failed"},
]


def test_timeline_rows_durations_failures_and_agent_calls() -> None:
    rows = timeline(HISTORY)
    assert [(r.kind, r.title) for r in rows] == [
        ("start", "started flow"),
        ("activity", "fetch"),
        ("timer", "timer created"),
        ("timer", "timer fired"),
        ("agent", "agent weatheragent · session s1"),
        ("event", "event Approval"),
        ("activity", "pay"),
        ("end", "failed"),
    ]
    assert [duration_text(r.duration) for r in rows] == [
        "",
        "1.2 s",
        "",
        "1 min 00 s",
        "2.0 s",
        "",
        "100 ms",
        "",
    ]
    assert [r.failed for r in rows] == [False, False, False, False, False, False, True, True]
    assert (
        rows[0].detail == '{"x": 1}'
        and rows[1].detail == "[1, 2]"
        and rows[6].detail == "ValueError: no money"
    )
    assert rows[4].agent_session == ("weatheragent", "s1")
    assert agent_session_of("@counter@k") is None and agent_session_of("@dafx-a@k@x") == ("a", "k@x")


def test_status_note_custom_status_or_pending_timer() -> None:
    assert status_note({"runtimeStatus": "Running", "customStatus": {"step": 2}}) == '{"step": 2}'
    assert status_note({"runtimeStatus": "Completed", "customStatus": "done"}) == ""
    waiting = {"runtimeStatus": "Running", "historyEvents": HISTORY[:3]}
    assert pending_timer(waiting["historyEvents"]) is not None
    assert status_note(waiting).startswith("timer until ")
    assert status_note({"runtimeStatus": "Running", "historyEvents": HISTORY[:4]}) == ""
    assert duration_text(timedelta(hours=2, minutes=3)) == "2 h 03 min"


def test_timeline_shows_work_not_completed_yet():
    at = "2026-01-01T10:00:00Z"
    rows = timeline(
        [
            {"EventType": "TaskScheduled", "Timestamp": at, "Name": "slow", "Input": {"n": 1}},
            {
                "EventType": "SubOrchestrationInstanceCreated",
                "Timestamp": at,
                "Name": "child",
                "InstanceId": "c",
            },
        ]
    )
    assert [(r.kind, r.title, r.detail) for r in rows] == [
        ("activity", "slow", 'running, input {"n": 1}'),
        ("suborchestration", "child (c)", "running"),
    ]
