"""Durable entities: their HTTP API (`api.py`), one worker per entity (`dispatcher.py`) and their
rows in the hub's `<hub>Entities` table (`store.py`)."""
