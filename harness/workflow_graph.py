"""A hosted workflow's graph: its executors and edges as agent-framework's `WorkflowViz` draws them
(`to_mermaid`), without the internal edges, as plain data the TUI draws in text.

The workflow routes do not serve the graph, so `app_workflows` imports the app in a child process
as the local host would, as `harness.stack.app_agents` does for the agents; an app reached only
by URL has no graph and the TUI shows its executors from the instance's custom status instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["WorkflowGraph", "app_workflows", "graph_of"]

GROUP_KINDS = {
    "SingleEdgeGroup": "edge",
    "FanOutEdgeGroup": "fan-out",
    "FanInEdgeGroup": "fan-in",
    "SwitchCaseEdgeGroup": "switch-case",
}


@dataclass(frozen=True)
class WorkflowGraph:
    """A workflow's executors and edges as `WorkflowViz` draws them (internal edges left out).

    `executors`: id -> kind (`agent`, `workflow` for a sub-workflow, `executor`); `edges`:
    (source, target, group kind: edge, fan-out, fan-in, switch-case, or the group's class name)."""

    name: str
    start: str
    executors: dict[str, str]
    edges: tuple[tuple[str, str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "start": self.start,
            "executors": self.executors,
            "edges": [list(edge) for edge in self.edges],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowGraph:
        return cls(
            str(data["name"]),
            str(data["start"]),
            {str(k): str(v) for k, v in dict(data["executors"]).items()},
            tuple((str(s), str(t), str(k)) for s, t, k in data.get("edges") or []),
        )

    def layers(self) -> list[list[str]]:
        """Executors by their distance from the start (what runs in which superstep when every
        edge fires), then any unreachable ones; each in the workflow's own order."""
        order = list(self.executors)
        depth = {self.start: 0}
        frontier = [self.start]
        while frontier:
            following = []
            for source in frontier:
                for edge_source, target, _ in self.edges:
                    if edge_source == source and target not in depth:
                        depth[target] = depth[source] + 1
                        following.append(target)
            frontier = following
        deepest = max(depth.values(), default=0)
        rows: list[list[str]] = [[] for _ in range(deepest + 1)]
        for executor in order:
            if executor in depth:
                rows[depth[executor]].append(executor)
        unreachable = [e for e in order if e not in depth]
        return [row for row in rows if row] + ([unreachable] if unreachable else [])

    def targets(self, source: str) -> list[tuple[str, str]]:
        """(target, group kind) of the edges leaving `source`."""
        return [(target, kind) for edge_source, target, kind in self.edges if edge_source == source]


def graph_of(workflow: Any, name: str | None = None) -> WorkflowGraph:
    """The graph of an agent-framework `Workflow` (what `WorkflowViz(workflow)` draws)."""
    executors: dict[str, str] = {}
    for executor_id, executor in workflow.executors.items():
        kind = type(executor).__name__
        executors[executor_id] = (
            "agent" if kind == "AgentExecutor" else "workflow" if kind == "WorkflowExecutor" else "executor"
        )
    edges = []
    for group in workflow.edge_groups:
        group_kind = type(group).__name__
        if group_kind == "InternalEdgeGroup":
            continue
        for edge in group.edges:
            edges.append((edge.source_id, edge.target_id, GROUP_KINDS.get(group_kind, group_kind)))
    return WorkflowGraph(name or workflow.name, workflow.start_executor_id, executors, tuple(edges))


def app_workflows(
    app_dir: Path, *, script: Path | None = None, timeout: float = 60.0
) -> dict[str, WorkflowGraph] | None:
    """The graphs of the workflows the app hosts (`harness.stack.app_index`: the app imported in a
    child as the local host would, the fake model's script set); None when that cannot say (the
    import fails, not a durableagent app, too slow)."""
    from harness.stack import app_index, default_script_path

    app_dir = Path(app_dir).resolve()
    chosen = script if script is not None else default_script_path(app_dir)
    graphs = app_index(app_dir, script=Path(chosen).resolve() if chosen else None, timeout=timeout).get(
        "workflows"
    )
    if not isinstance(graphs, dict):
        return None
    try:
        return {str(name): WorkflowGraph.from_json(data) for name, data in graphs.items()}
    except (KeyError, TypeError, ValueError):
        return None
