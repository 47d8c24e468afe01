"""What registering a workflow adds to an app, under Microsoft's names (peer notes, "Workflows"):
orchestrator `dafx-{name}`; per non-agent executor the activity `dafx-{name}-{executor}`; per agent
executor a session entity `dafx-{name}-{executor}` (the agent `{name}-{executor}`, so its
conversations are listed and shown like any agent's); per sub-workflow its own orchestrator; and
the routes `dafx-{name}-start|status|respond`.

Refused here, before the host ever indexes the app: a workflow without a name, a name or executor
id that cannot be a function name, a duplicate, a `WorkflowBuilder` whose `build()` agent-framework
refuses (its message kept), and a message type that cannot be stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agent_framework import AgentExecutor, Workflow, WorkflowBuilder, WorkflowExecutor

from .orchestrator import function_name, scoped_agent_name

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_EXECUTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass
class RegisteredWorkflow:
    name: str
    workflow: Workflow
    http_endpoint_enabled: bool
    request_timeout: timedelta | None
    sub_names: dict[str, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)
    """executor id -> the scoped agent name of each agent executor."""
    top_level: bool = True
    mcp_tool_enabled: bool = False


def built(workflow: Any, name: str | None) -> Workflow:
    """A `Workflow` (a builder is built here, its refusal re-raised naming the workflow)."""
    if isinstance(workflow, WorkflowBuilder):
        try:
            return workflow.build()
        except Exception as exc:
            raise ValueError(
                f"workflow {name or '(unnamed)'!r} is refused by agent-framework: {exc}"
            ) from exc
    if not isinstance(workflow, Workflow):
        raise TypeError(
            f"expected an agent-framework Workflow or WorkflowBuilder, got {type(workflow).__name__}"
        )
    return workflow


def workflow_name(workflow: Workflow, name: str | None) -> str:
    chosen = name or workflow.name
    if not chosen or chosen == getattr(workflow, "_generated_name", None):
        raise ValueError(
            "workflow has no name; give it one: WorkflowBuilder(name='triage', ...) "
            "or add_workflow(wf, name='triage')"
        )
    if not _NAME.match(chosen):
        raise ValueError(
            f"workflow name {chosen!r} cannot name functions and routes; use a letter, then letters, "
            "digits, '-' and '_' (at most 64 characters)"
        )
    return chosen


def plan(
    workflow: Workflow, name: str, http: bool, request_timeout: timedelta | None
) -> list[RegisteredWorkflow]:
    """The workflow and its sub-workflows (depth first), each with its function names checked."""
    registration = RegisteredWorkflow(name, workflow, http, request_timeout)
    found = [registration]
    for executor_id, executor in workflow.executors.items():
        if not _EXECUTOR_ID.match(executor_id):
            raise ValueError(
                f"executor id {executor_id!r} of workflow {name!r} cannot be part of a function name "
                f"({function_name(name, executor_id)!r}); use letters, digits, '-' and '_'"
            )
        if isinstance(executor, AgentExecutor):
            registration.agents[executor_id] = scoped_agent_name(name, executor_id)
        elif isinstance(executor, WorkflowExecutor):
            sub = executor.workflow
            generated = not sub.name or sub.name == getattr(sub, "_generated_name", None)
            sub_name = workflow_name(sub, f"{name}-{executor_id}" if generated else sub.name)
            registration.sub_names[executor_id] = sub_name
            for nested in plan(sub, sub_name, False, request_timeout):
                nested.top_level = False
                found.append(nested)
    return found
