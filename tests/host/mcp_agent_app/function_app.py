"""Agents as MCP tools (`enable_mcp_tool_trigger`) on a scripted fake model, for the host's MCP tests:
`Helper` answers "You said: ..." (its description is the tool's), "slow ..." takes longer than the
app's run timeout (1.5 s, local.settings.json), "fail ..." makes the model raise and "stream ..."
answers in three chunks; `Quiet` opts out of the MCP tool."""

from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

RULES = [
    {"when": {"user": "^slow"}, "then": {"text": "finally: {user}", "delay": 2.5}},
    {"when": {"user": "^fail"}, "then": {"error": "the model is down"}},
    {"when": {"user": "^stream"}, "then": {"chunks": ["one ", "two ", "three"], "chunk_delay": 0.05}},
]


def scripted() -> ScriptedChatClient:
    return ScriptedChatClient(rules=RULES, default={"text": "You said: {user}"})


helper = Agent(client=scripted(), name="Helper", description="Answers anything.", instructions="Be brief.")
quiet = Agent(client=scripted(), name="Quiet", instructions="Be brief.")

app = AgentFunctionApp(agents=[helper], enable_mcp_tool_trigger=True)
app.add_agent(quiet, enable_mcp_tool_trigger=False)
