"""The sidecar's app: no functions of its own (orchestrators and activities run in connected workers).

The local host loads an app folder; the sidecar serves this empty one, so the host's stores, engine,
hub lease and Durable HTTP API run unchanged around the remote workers.
"""

import azure.functions as func

app = func.FunctionApp()
