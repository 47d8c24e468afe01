"""Textual chat TUI for durable agents: `ChatApp(client, agent, logs)`."""

from harness.tui.app import ChatApp

__all__ = ["ChatApp"]
