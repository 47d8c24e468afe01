"""`WorkflowHitlContext`: what an executor that asks a person needs to tell them where to answer,
with the same methods as Microsoft's (`from_context`, `build_respond_url`, `build_status_url`,
`pending_request_id`).

The instance and workflow come from the activity the executor runs in (`step.CURRENT_RUN`); the
base URL from `base_url`, else `WEBSITE_HOSTNAME` (https on Azure, http for a local host name, as
the Functions host sets it locally too), else the local default `http://localhost:7071`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .step import CURRENT_RUN

LOCAL_BASE = "http://localhost:7071"


def _base_url(explicit: str | None) -> str:
    if explicit:
        return explicit.rstrip("/")
    host = os.environ.get("WEBSITE_HOSTNAME", "").strip()
    if not host:
        return LOCAL_BASE
    local = host.split(":", 1)[0] in ("localhost", "127.0.0.1", "0.0.0.0")
    return f"{'http' if local else 'https'}://{host}"


@dataclass(frozen=True)
class WorkflowHitlContext:
    workflow_name: str
    instance_id: str
    base_url: str
    route_prefix: str = "api"

    @classmethod
    def from_context(
        cls, ctx: Any = None, base_url: str | None = None, route_prefix: str = "api"
    ) -> WorkflowHitlContext:
        """The context of the workflow instance whose executor is running now."""
        current = CURRENT_RUN.get()
        if current is None:
            raise RuntimeError(
                "WorkflowHitlContext is only available inside an executor of a hosted workflow"
            )
        name, instance_id = current
        return cls(name, instance_id, _base_url(base_url), route_prefix.strip("/"))

    def _root(self) -> str:
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        return f"{self.base_url}{prefix}/workflow/{quote(self.workflow_name, safe='')}"

    def build_status_url(self) -> str:
        return f"{self._root()}/status/{quote(self.instance_id, safe='')}"

    def build_respond_url(self, request_id: str) -> str:
        return f"{self._root()}/respond/{quote(self.instance_id, safe='')}/{quote(request_id, safe='')}"

    @staticmethod
    async def pending_request_id(ctx: Any) -> str | None:
        """The id of the request this executor raised last (after `await ctx.request_info(...)`)."""
        pending = await ctx._runner_context.get_pending_request_info_events()
        return next(reversed(pending), None) if pending else None
