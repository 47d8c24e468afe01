"""Scripted, offline stand-ins for model clients.

``ScriptedChatClient`` is a real agent-framework chat client whose answers come from a
script (ordered steps, then rules, then a default), so agents, tools and hosts can be
exercised end to end without a model service. ``RecordingChatClient`` wraps a real client and
writes what the real model said as such a script, which then replays the run offline.
"""

from .client import RawScriptedChatClient, ScriptedChatClient
from .errors import ScriptError, ScriptExhaustedError
from .recorder import RecordingChatClient, start_recording
from .recording import RecordedRequest, read_recorded
from .replay import ReplayMismatchError
from .script import (
    Condition,
    Rule,
    Script,
    Step,
    StepLike,
    ToolCall,
    build_script,
    load_script,
    load_script_data,
    parse_script,
)
from .weather import WEATHER_SCRIPT_PATH, weather_script

__all__ = [
    "WEATHER_SCRIPT_PATH",
    "Condition",
    "RawScriptedChatClient",
    "RecordedRequest",
    "RecordingChatClient",
    "ReplayMismatchError",
    "Rule",
    "Script",
    "ScriptError",
    "ScriptExhaustedError",
    "ScriptedChatClient",
    "Step",
    "StepLike",
    "ToolCall",
    "build_script",
    "load_script",
    "load_script_data",
    "parse_script",
    "read_recorded",
    "start_recording",
    "weather_script",
]
