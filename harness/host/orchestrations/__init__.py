"""Orchestration instances: their HTTP API (`api.py`), the engine that runs episodes and starts what
they scheduled (`engine.py`), one episode through the SDK (`replay.py`), DTFx history events
(`history.py`) and the `<hub>Instances` table (`store.py`)."""
