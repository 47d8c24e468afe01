"""Exceptions raised by the scripted fake model."""

from __future__ import annotations

from agent_framework.exceptions import ChatClientException


class ScriptError(ValueError):
    """A script is malformed or cannot be used (bad key, bad regex, unreadable file, ...).

    A ``ValueError`` so callers that validate configuration can catch it generically.
    """


class ScriptExhaustedError(ChatClientException):
    """The fake received a request that no step, rule or default answers.

    Subclasses the framework's chat client exception so it travels through the agent
    exactly like a real provider failure would.
    """
