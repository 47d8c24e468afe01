"""MCP prompt triggers (`@app.mcp_prompt_trigger`): the app's prompts, served by the MCP endpoint
(`mcp.py`) as the Functions MCP extension serves them.

`prompts/list` shows each prompt's name, title, description and arguments (`promptArguments`).
`prompts/get` checks the required arguments first (an `InvalidParams` error listing the missing
ones), then calls the function with `{"name", "arguments", "sessionid", "clientinfo", "transport"}`
(the Python worker hands it over as a `PromptInvocationContext`); the text it returns is one user
message. An unknown prompt is an `InvalidParams` error; a function that raises is an internal error
naming the exception.
"""

from __future__ import annotations

import logging
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
class McpPrompt:
    """One prompt and its function."""

    function: TriggeredFunction
    name: str
    title: str | None
    description: str | None
    arguments: tuple[types.PromptArgument, ...]
    meta: dict[str, Any] | None

    @classmethod
    def parse(cls, function: TriggeredFunction) -> McpPrompt:
        """The prompt of one function's binding; `AppLoadError` naming the function for one without a
        name or with unreadable arguments or metadata."""
        binding = function.trigger.get_dict_repr()
        name = binding.get("promptName")
        if not isinstance(name, str) or not name:
            raise AppLoadError(f"function {function.name}: mcpPromptTrigger has no promptName")
        arguments = []
        for entry in binding_json(binding, "promptArguments", function.name, list) or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise AppLoadError(f"function {function.name}: a promptArguments entry has no name")
            arguments.append(
                types.PromptArgument(
                    name=entry["name"],
                    description=entry.get("description"),
                    required=bool(entry.get("required")),
                )
            )
        return cls(
            function,
            name,
            binding.get("title") or None,
            binding.get("description") or None,
            tuple(arguments),
            binding_json(binding, "metadata", function.name, dict),
        )

    def listed(self) -> types.Prompt:
        return types.Prompt(
            name=self.name,
            title=self.title,
            description=self.description,
            arguments=list(self.arguments),
            _meta=self.meta,
        )


class McpPromptTriggers(McpKind):
    """The app's MCP prompts, by name."""

    binding_type = "mcpPromptTrigger"

    def __init__(self, services: TriggerServices, prompts: list[McpPrompt]) -> None:
        super().__init__(services)
        self.prompts = {prompt.name: prompt for prompt in prompts}

    @classmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> McpPromptTriggers:
        prompts: dict[str, McpPrompt] = {}
        for function in functions:
            prompt = McpPrompt.parse(function)
            if prompt.name in prompts:
                raise AppLoadError(
                    f"function {function.name}: prompt name {prompt.name!r} is already taken by "
                    f"function {prompts[prompt.name].function.name}"
                )
            prompts[prompt.name] = prompt
        return cls(services, list(prompts.values()))

    def banner(self) -> list[str]:
        return [f"{p.function.name}: mcpPromptTrigger (prompt {p.name})" for p in self.prompts.values()]

    def handlers(self) -> dict[str, Handler]:
        return {"on_list_prompts": self.list_prompts, "on_get_prompt": self.get_prompt}

    async def list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[p.listed() for p in self.prompts.values()])

    async def get_prompt(self, ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        prompt = self.prompts.get(params.name)
        if prompt is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: '{params.name}'")
        arguments = dict(params.arguments or {})
        missing = [a.name for a in prompt.arguments if a.required and arguments.get(a.name) is None]
        if missing:
            raise MCPError(
                types.INVALID_PARAMS,
                "One or more required prompt arguments are missing values. Please provide: "
                + ", ".join(missing),
            )
        context = invocation_context(ctx, name=prompt.name, arguments=arguments)
        try:
            value = await self.call(prompt.function, context)
        except Exception as exc:
            log.warning("MCP prompt %s (function %s) failed: %s", prompt.name, prompt.function.name, exc)
            raise MCPError(
                types.INTERNAL_ERROR,
                f"An error occurred getting prompt '{prompt.name}': {type(exc).__name__}: {exc}",
            ) from exc
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        message = types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))
        return types.GetPromptResult(description=prompt.description, messages=[message])
