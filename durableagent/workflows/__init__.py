"""agent-framework Workflows hosted as durable orchestrations (`AgentFunctionApp(workflow=...)`).

Modules: `codec` (JSON across durable boundaries), `routing` (agent-framework's edge runners decide
deliveries), `step` (one executor in an activity), `orchestrator` (the superstep loop), `registry`
(names and checks at registration), `routes` (the three HTTP routes), `hitl` (URLs for people).
"""

from .hitl import WorkflowHitlContext

__all__ = ["WorkflowHitlContext"]
