"""samples/durabletask/worker.py in a process of its own, for the crash test (SIGKILL mid agent call).

`python af_worker_proc.py ADDRESS TASKHUB SCRIPT RECORD`: the sample's worker, set up by the sample's
own code, with the fake model answering from SCRIPT and appending each request it receives to RECORD
(written before the answer, so a test sees that a model call is under way).
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

from durabletask.grpc_options import GrpcWorkerResiliencyOptions

from fakes import ScriptedChatClient, load_script

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "durabletask" / "worker.py"

if __name__ == "__main__":
    address, taskhub, script, record = sys.argv[1:5]
    spec = importlib.util.spec_from_file_location("durabletask_sample_worker", SAMPLE)
    assert spec is not None and spec.loader is not None
    sample = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = sample
    spec.loader.exec_module(sample)
    quick = GrpcWorkerResiliencyOptions(reconnect_backoff_base_seconds=0.1, reconnect_backoff_cap_seconds=0.5)
    worker = sample.get_worker(address, taskhub, resiliency_options=quick)
    sample.setup_worker(worker, ScriptedChatClient(load_script(script), record_path=record))
    worker.start()
    print("worker started", flush=True)
    threading.Event().wait()
