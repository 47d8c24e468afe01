"""Every `python` block of README.md runs as written (issue 12, part 1).

Each block runs in a fresh namespace holding only what the README's prose says the reader brings:
`my_chat_client` (a chat client: here the scripted fake) and `get_weather` (a tool), plus `app` for
a block that uses an app without making one (the orchestration example, whose prose says it goes in
the app above). Blocks that cannot run in a unit test are listed in SKIPPED with the reason; a new
block runs automatically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble
from .orchestrations import Driver

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
SKIPPED = {
    "def test_flow(orchestration):": (
        "a pytest test for the `orchestration` fixture: it needs a running local host with Azurite and "
        "an app with `my_orchestrator`, which a unit test does not start"
    ),
    '@pytest.mark.fake_script("recordings/oslo.json"': (
        "pytest tests for the `fake_script` marker: they need a recorded script file and a running host; "
        "tests/harness/test_plugin_fake_script.py runs the same tests on a real recording"
    ),
}


def get_weather(location: str) -> str:
    """Get the weather for a location."""
    return f"Sunny, 22 C in {location}"


def _namespace(block: str, fake: ScriptedChatClient) -> dict[str, Any]:
    namespace: dict[str, Any] = {"my_chat_client": fake, "get_weather": get_weather}
    if "app." in block and not re.search(r"^app = ", block, re.M):
        writer = Agent(client=fake, name="WriterAgent", instructions="You write taglines.")
        namespace["app"] = AgentFunctionApp(agents=[writer])
    return namespace


def _skip_reason(block: str) -> str | None:
    return next((reason for marker, reason in SKIPPED.items() if marker in block), None)


def test_the_readme_has_the_documented_examples():
    joined = "\n".join(BLOCKS)
    for name in ["add_user_message", "add_assistant_message", "restore_state", "with_random_key", "parse"]:
        assert name in joined, name
    assert len(BLOCKS) >= 5
    for marker in SKIPPED:
        assert marker in joined, f"SKIPPED names a block the README no longer has: {marker}"


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs_as_written(index, monkeypatch, capsys):
    monkeypatch.delenv("DURABLEAGENT_CHAT_SCRIPT", raising=False)
    block = BLOCKS[index]
    reason = _skip_reason(block)
    if reason:
        pytest.skip(reason)
    fake = ScriptedChatClient(steps=[{"text": "Acme: always on."}, {"text": "Acme. Always."}])
    namespace = _namespace(block, fake)
    exec(compile(block, f"README.md python block {index}", "exec"), namespace)  # noqa: S102

    app = namespace.get("app")
    if "def chain(context)" in block:
        # Run the orchestrator the block defines, answering its entity calls with the real entity.
        state = Driver(app, DurableClientDouble(app), "chain").run()
        assert state.get("isDone") and "error" not in state, state
        assert state["output"] == "Acme. Always."
    if "PrintReplies" in block:
        # The callback the block registers sees a real turn of its agent.
        host = DurableClientDouble(app)
        output = host.run_batch("dafx-MathAgent", "s1", [("run_agent", {"message": "1+1?"})])
        assert '"status": "success"' in output["results"][0]["result"]
        printed = capsys.readouterr().out
        assert "Acme: always on." in printed and "[MathAgent s1 " in printed
        assert app._resolve_http("Planner") is None and app._resolve("Planner") == "Planner"
    if isinstance(app, AgentFunctionApp) and "WeatherAgent" in block:
        assert "WeatherAgent" in app.agents
