"""The private parts of the Durable SDK (`azure-functions-durable`) that durableagent and its local
host rely on: each must exist with the signature we call it with. An SDK upgrade that renames or
changes one fails here, naming it, instead of somewhere deep in an orchestration or a listing.

Tested range: what pyproject declares (`azure-functions-durable>=1.7,<1.8`); widen it only after
this file passes against the new version.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from importlib.metadata import version
from pathlib import Path

import pytest
from azure.durable_functions.models.DurableOrchestrationClient import DurableOrchestrationClient
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.Task import AtomicTask, TaskBase
from azure.durable_functions.models.utils import http_utils
from packaging.specifiers import SpecifierSet

PYPROJECT_RANGE = ">=1.7,<1.8"

# (where it is used, the owner, the private name, the parameters we pass, in order)
PRIVATE_METHODS = [
    ("orchestration.OrchestrationAgent.run", DurableOrchestrationContext, "_generate_task",
     ["self", "action", "retry_options", "id_", "parent", "task_constructor"]),
    ("orchestration._completed_task", TaskBase, "_set_is_scheduled", ["self", "is_scheduled"]),
]  # fmt: skip
OVERRIDDEN_OR_CALLED = [
    ("orchestration.AgentRunTask.set_value", TaskBase, "set_value", ["self", "is_error", "value"]),
    ("orchestration._completed_task", TaskBase, "set_is_played", ["self", "is_played"]),
    ("orchestration._completed_task", AtomicTask, "__init__", ["self", "id_", "actions"]),
]  # fmt: skip


def _parameters(owner: type, name: str) -> list[str]:
    member = getattr(owner, name, None)
    assert member is not None, f"the Durable SDK no longer has {owner.__name__}.{name}"
    return list(inspect.signature(member).parameters)


def test_the_installed_sdk_is_in_the_declared_tested_range():
    installed = version("azure-functions-durable")
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert f'"azure-functions-durable{PYPROJECT_RANGE}"' in pyproject, (
        "pyproject's range changed: update here"
    )
    assert installed in SpecifierSet(PYPROJECT_RANGE), (
        f"azure-functions-durable {installed} is outside the tested range {PYPROJECT_RANGE}"
    )


@pytest.mark.parametrize(("user", "owner", "name", "expected"), PRIVATE_METHODS + OVERRIDDEN_OR_CALLED)
def test_sdk_methods_we_call_keep_their_signature(user, owner, name, expected):
    found = _parameters(owner, name)
    assert found[: len(expected)] == expected, (
        f"Durable SDK {owner.__name__}.{name} (used by durableagent {user}) changed its parameters: "
        f"expected {expected}, found {found}"
    )


def test_the_durable_client_keeps_its_bindings_with_the_rpc_base_url():
    """`_sessions.entity_lister` lists entities at `client._orchestration_bindings.rpc_base_url`, and
    `turns.Turns.signal` asks by it whether a host in this process reports its commits."""
    binding = {
        "taskHubName": "hub",
        "creationUrls": {},
        "managementUrls": {},
        "rpcBaseUrl": "http://127.0.0.1:7071/runtime/webhooks/durabletask/",
    }
    client = DurableOrchestrationClient(json.dumps(binding))
    bindings = getattr(client, "_orchestration_bindings", None)
    assert bindings is not None, (
        "DurableOrchestrationClient._orchestration_bindings is gone (session listing)"
    )
    assert getattr(bindings, "rpc_base_url", None) == binding["rpcBaseUrl"], (
        "DurableOrchestrationClient._orchestration_bindings.rpc_base_url no longer holds the binding's "
        "rpcBaseUrl (session listing)"
    )


def test_the_sdk_http_session_the_local_host_resets_is_where_it_was():
    """harness/host/server.py `_reset_sdk_http_session` closes and forgets the SDK's shared session."""
    for name in ("_client_session", "_session_lock"):
        assert hasattr(http_utils, name), (
            f"azure.durable_functions http_utils.{name} is gone (local host reset)"
        )
    assert isinstance(http_utils._session_lock, asyncio.Lock), "http_utils._session_lock is no asyncio.Lock"
    assert inspect.iscoroutinefunction(getattr(http_utils, "_get_session", None)), (
        "http_utils._get_session (which creates _client_session) is gone"
    )


def test_generate_task_builds_our_task_class_for_a_call_entity_action():
    """The behaviour `OrchestrationAgent.run` relies on, not only the signature: the task it builds
    is of the class we pass, and carries the action."""
    import azure.durable_functions as df
    from azure.durable_functions.models.actions.CallEntityAction import CallEntityAction

    from durableagent.orchestration import AgentRunTask

    from .orchestrations import orchestrator_started

    started = orchestrator_started("2026-01-01T00:00:00Z")
    state = {"history": [started], "input": None, "instanceId": "i", "isReplaying": False}
    state["parentInstanceId"] = None
    context = DurableOrchestrationContext.from_json(json.dumps(state))
    action = CallEntityAction(df.EntityId("dafx-a", "k"), "run_agent", {"message": "hi"})
    task = context._generate_task(action, task_constructor=AgentRunTask)
    assert isinstance(task, AgentRunTask), f"_generate_task built {type(task).__name__}, not the class passed"
    assert task._get_action() is action, "the task _generate_task built does not carry our action"


def test_the_entity_handler_passes_a_raw_state_text_through():
    """`entity.stored_text` reads the batch's state before the SDK decodes it, and `entity.store_text`
    hands the SDK a JSON text it must store as is (its `_state`/`_state_is_raw` pair)."""
    import azure.durable_functions as df

    from durableagent.entity import store_text, stored_text

    seen: list[str | None] = []

    def body(context: df.DurableEntityContext) -> None:
        seen.append(stored_text(context))
        store_text(context, '{"kept": "as is"}')

    request = {
        "self": {"name": "e", "key": "k"},
        "exists": True,
        "state": '{"n": 1}',
        "batch": [{"name": "op", "input": None, "isSignal": True}] * 2,
    }
    output = json.loads(df.Entity.create(body)(json.dumps(request)))
    assert seen == ['{"n": 1}', '{"kept": "as is"}'], (
        "the SDK no longer keeps a batch's state as its raw text"
    )
    assert output["entityExists"] is True
    assert output["entityState"] == '{"kept": "as is"}', "the SDK no longer passes a raw state through"
