import azure.functions as func
import pytest
from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


def _agent(name: object) -> Agent:
    agent = make_agent(ScriptedChatClient(steps=[]), name="placeholder")
    agent.name = name  # type: ignore[assignment]
    return agent


@pytest.mark.parametrize("name", [None, "", "   "])
def test_agent_without_a_name_is_refused(name):
    app = AgentFunctionApp()
    with pytest.raises(ValueError, match="has no name"):
        app.add_agent(_agent(name))


@pytest.mark.parametrize("name", ["a/b", "has space", "x@y", "-lead"])
def test_agent_name_unusable_in_routes_is_refused(name):
    with pytest.raises(ValueError, match="not usable"):
        AgentFunctionApp().add_agent(_agent(name))


def test_duplicate_names_are_refused_case_insensitively():
    app = AgentFunctionApp(agents=[_agent("WeatherAgent")])
    with pytest.raises(ValueError, match="already registered"):
        app.add_agent(_agent("weatheragent"))
    assert list(app.agents) == ["WeatherAgent"]


def test_agents_mapping_is_read_only():
    app = AgentFunctionApp(agents=[_agent("A")])
    with pytest.raises(TypeError):
        app.agents["B"] = _agent("B")  # type: ignore[index]


def test_registers_entity_and_routes_beside_user_triggers():
    app = AgentFunctionApp(agents=[_agent("WeatherAgent"), _agent("MathAgent")])

    @app.route(route="hello", methods=["GET"])
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    @app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        return None

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="AzureWebJobsStorage")
    def work(msg: func.QueueMessage) -> None:
        return None

    functions = {f.get_function_name(): f for f in app.get_functions()}
    assert {"hello", "tick", "work", "dafx_run_agent", "dafx_get_session", "dafx_health"} <= set(functions)
    entities = {
        f.get_trigger().entity_name for f in functions.values() if f.get_trigger().type == "entityTrigger"
    }
    assert entities == {"dafx-WeatherAgent", "dafx-MathAgent"}
    assert functions["dafx_run_agent"].get_trigger().route == "agents/{agent_name}/run"
    assert functions["tick"].get_trigger().type == "timerTrigger"


def test_health_can_be_disabled():
    names = {f.get_function_name() for f in AgentFunctionApp(enable_health_check=False).get_functions()}
    assert "dafx_health" not in names


async def test_health_lists_agents_with_types():
    app = AgentFunctionApp(agents=[_agent("WeatherAgent")])
    app.add_agent(_agent("MathAgent"), enable_http_endpoint=False, enable_mcp_tool_trigger=True)
    status, body = await DurableClientDouble(app).call("dafx_health", "GET", "http://localhost/api/health")
    assert status == 200
    assert body == {
        "status": "healthy",
        "agents": [
            {
                "name": "WeatherAgent",
                "type": "Agent",
                "http_endpoint_enabled": True,
                "mcp_tool_enabled": False,
            },
            {"name": "MathAgent", "type": "Agent", "http_endpoint_enabled": False, "mcp_tool_enabled": True},
        ],
        "agent_count": 2,
    }


@pytest.mark.parametrize(("first", "second"), [("a-b", "a_b"), ("a.b", "a-b"), ("Team.Bot", "team_bot")])
def test_names_that_make_the_same_function_name_are_refused(first, second):
    """`a-b` and `a_b` both become `dafx_a_b_entity`; the host would only fail when indexing the app."""
    app = AgentFunctionApp(agents=[_agent(first)])
    with pytest.raises(ValueError, match=f"{second!r}.*{first!r}") as info:
        app.add_agent(_agent(second))
    assert "dafx_" in str(info.value)
    assert list(app.agents) == [first]
    app.get_functions()  # the app stays indexable


def test_names_with_distinct_function_names_are_accepted():
    app = AgentFunctionApp(agents=[_agent("a-b"), _agent("ab"), _agent("a-b-c")])
    names = {f.get_function_name() for f in app.get_functions()}
    assert {"dafx_a_b_entity", "dafx_ab_entity", "dafx_a_b_c_entity"} <= names
