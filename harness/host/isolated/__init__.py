"""Apps that run in their own interpreter (Durable Functions 2.x on Python 3.13): the child process
(`bridge.py`, `process.py`), its functions in the host's index (`index.py`), the engine's work done
by it over the Durable Task protocol (`work.py`), and which Python runs an app (`interpreter.py`)."""
