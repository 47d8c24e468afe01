"""MCP resource triggers (`@app.mcp_resource_trigger`): the app's resources, served by the MCP endpoint
(`mcp.py`) as the Functions MCP extension serves them.

`resources/list` shows each resource's `uri`, `resourceName`, title, description, `mimeType`, size
and metadata; a `uri` holding `{name}` parts is a template (`resources/templates/list`) that a read
of any matching URI reaches. `resources/read` calls the function with `{"uri", "sessionid",
"clientinfo", "transport"}`; a string it returns is the text of the resource (with the binding's
MIME type), bytes are its blob (base64), and a worker result envelope `{"type", "content"}` gives
the contents as written. An unknown URI is an `InvalidParams` error; a function that raises is an
internal error naming the exception (resources have no error result).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.shared.exceptions import MCPError

from ..errors import AppLoadError
from ..loader import TriggeredFunction
from .base import TriggerServices
from .mcp import Handler, McpKind, binding_json, invocation_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class McpResource:
    """One resource (or resource template) and its function."""

    function: TriggeredFunction
    uri: str
    name: str
    title: str | None
    description: str | None
    mime_type: str | None
    size: int | None
    meta: dict[str, Any] | None
    pattern: re.Pattern[str] | None  # for a template: what URIs it answers

    @classmethod
    def parse(cls, function: TriggeredFunction) -> McpResource:
        """The resource of one function's binding; `AppLoadError` naming the function for one that
        has no absolute URI or name, or unreadable metadata."""
        binding = function.trigger.get_dict_repr()
        uri, name = binding.get("uri"), binding.get("resourceName")
        if not isinstance(uri, str) or "://" not in uri:
            raise AppLoadError(f"function {function.name}: mcpResourceTrigger uri {uri!r} is not absolute")
        if not isinstance(name, str) or not name:
            raise AppLoadError(f"function {function.name}: mcpResourceTrigger has no resourceName")
        pattern = None
        if "{" in uri:
            parts = re.split(r"\{[^{}/]+\}", uri)
            pattern = re.compile("[^/]+".join(re.escape(part) for part in parts) + r"\Z")
        size = binding.get("size")
        return cls(
            function,
            uri,
            name,
            binding.get("title") or None,
            binding.get("description") or None,
            binding.get("mimeType") or None,
            int(size) if isinstance(size, int | float) else None,
            binding_json(binding, "metadata", function.name, dict),
            pattern,
        )

    def listed(self) -> types.Resource | types.ResourceTemplate:
        """The resource as the listings show it."""
        common = {"name": self.name, "title": self.title, "description": self.description, "_meta": self.meta}
        if self.pattern is not None:
            return types.ResourceTemplate(uriTemplate=self.uri, mimeType=self.mime_type, **common)
        return types.Resource(uri=self.uri, mimeType=self.mime_type, size=self.size, **common)


class McpResourceTriggers(McpKind):
    """The app's MCP resources: exact URIs first, then templates in the app's order."""

    binding_type = "mcpResourceTrigger"

    def __init__(self, services: TriggerServices, resources: list[McpResource]) -> None:
        super().__init__(services)
        self.resources = resources

    @classmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> McpResourceTriggers:
        resources: dict[str, McpResource] = {}
        for function in functions:
            resource = McpResource.parse(function)
            other = resources.get(resource.uri)
            if other is not None:
                raise AppLoadError(
                    f"function {function.name}: resource {resource.uri} is already served by "
                    f"function {other.function.name}"
                )
            resources[resource.uri] = resource
        return cls(services, list(resources.values()))

    def banner(self) -> list[str]:
        return [f"{r.function.name}: mcpResourceTrigger (resource {r.uri})" for r in self.resources]

    def handlers(self) -> dict[str, Handler]:
        return {
            "on_list_resources": self.list_resources,
            "on_list_resource_templates": self.list_templates,
            "on_read_resource": self.read_resource,
        }

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[r.listed() for r in self.resources if r.pattern is None])

    async def list_templates(self, ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        listed = [r.listed() for r in self.resources if r.pattern is not None]
        return types.ListResourceTemplatesResult(resourceTemplates=listed)

    def find(self, uri: str) -> McpResource | None:
        """The resource a read of `uri` reaches."""
        exact = next((r for r in self.resources if r.pattern is None and r.uri == uri), None)
        return exact or next((r for r in self.resources if r.pattern and r.pattern.match(uri)), None)

    async def read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        resource = self.find(uri)
        if resource is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: '{uri}'")
        try:
            value = await self.call(resource.function, invocation_context(ctx, uri=uri))
        except Exception as exc:
            log.warning("MCP resource %s (function %s) failed: %s", uri, resource.function.name, exc)
            raise MCPError(
                types.INTERNAL_ERROR, f"An error occurred reading '{uri}': {type(exc).__name__}: {exc}"
            ) from exc
        return types.ReadResourceResult(contents=[resource_contents(value, uri, resource.mime_type)])


def resource_contents(
    value: str | bytes, uri: str, mime_type: str | None
) -> types.TextResourceContents | types.BlobResourceContents:
    """What the extension makes of a resource function's return value."""
    if isinstance(value, bytes):
        blob = base64.b64encode(value).decode("ascii")
        return types.BlobResourceContents(uri=uri, mimeType=mime_type, blob=blob)
    envelope = _envelope(value)
    if envelope is not None:
        contents = json.loads(envelope["content"])
        contents.setdefault("uri", uri)
        if mime_type and not contents.get("mimeType"):
            contents["mimeType"] = mime_type
        model = types.BlobResourceContents if "blob" in contents else types.TextResourceContents
        return model.model_validate(contents)
    return types.TextResourceContents(uri=uri, mimeType=mime_type, text=value)


def _envelope(text: str) -> dict[str, Any] | None:
    """The worker's `{"type", "content"}` resource result, when the text is one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    if isinstance(value.get("content"), str):
        try:
            inner = json.loads(value["content"])
        except ValueError:
            return None
        return value if isinstance(inner, dict) else None
    return None
