"""`python -m harness`: the command line, one module per command (or small family) over one registry.

- `base.py`: what every command shares: the `Command` record, the one-line errors and exit codes.
- `options.py`: the shared options (`--app`, `--data`, `--fresh`, `--script`, `--live`, `--record`,
  `--host`, `--port`, `--url`, `--key`) and the argument types.
- `local_stack.py`: checking those options and starting the local stack for `chat`, `up` and `ask`.
- `chat.py` (`chat`, `up`), `ask.py`, `sessions.py` (`sessions`, `show`, `fork`), `instances.py`
  (`instances`, `start`, `status`, `raise`, `terminate`, `purge`), `host.py`, `bench.py`, `chaos.py`,
  `replay.py` (`replay-check`), `transfer.py` (`export`, `import`),
  `rewind.py` (`rewind-to`), `workflow.py` (`workflow run|status|respond|watch`).
- `main.py`: the registry (`COMMANDS`), the parser built from it, and `main()`.

This file imports nothing, so a command module importing `harness.cli.base` loads no other command.
"""
