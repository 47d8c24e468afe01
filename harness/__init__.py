"""Local development stack: Azurite, a Functions host, a chat TUI and a pytest plugin."""
