"""harness.formatting: the one truncation rule and the shared value/usage formatting."""

from __future__ import annotations

from pathlib import Path

from harness.formatting import clip, format_arguments, format_value, one_line, plain, total_usage, usage_text
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
