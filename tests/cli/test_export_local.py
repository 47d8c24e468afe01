"""`export` and `import` with the app's local stack (issue 25): without --storage they read and write
the running stack's own task hub (its Azurite, named in the workspace's lock), so an export holds
the raw history, and an imported instance and session are there for `status` and `show`."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from harness.workspace import WORKSPACE_DIR
from tests.cli.cli_process import UpProcess, cli_env, one_line, run_cli

CHAINING = Path(__file__).resolve().parents[2] / "samples" / "chaining"


@pytest.mark.integration
def test_export_and_import_through_the_local_stack(tmp_path: Path) -> None:
    app = tmp_path / "chaining"
    shutil.copytree(CHAINING, app, ignore=shutil.ignore_patterns("__pycache__", WORKSPACE_DIR))
    env = cli_env(tmp_path)
    up = UpProcess("--host", "local", cwd=app, env=env, log=tmp_path / "up.log")
    try:
        up.wait_banner()
        with httpx.Client(base_url=up.url, timeout=30) as http:
            links = http.post("/api/chaining/start", json={"topic": "Acme"}).json()
            deadline = time.monotonic() + 60
            while (done := http.get(links["statusQueryGetUri"]).json())["runtimeStatus"] != "Completed":
                assert done["runtimeStatus"] in ("Pending", "Running") and time.monotonic() < deadline, done
                time.sleep(0.05)
        iid, session = done["instanceId"], done["output"]["sessionId"]
        out = tmp_path / "export.json"
        exported = run_cli("export", "--instance", iid, "-o", str(out), cwd=app, env=env)
        assert exported.returncode == 0, exported.stderr
        bundle = json.loads(out.read_text())
        assert bundle["instances"][0]["history"][0]["EventType"] == 12  # raw, from the stack's task hub
        assert [s["sessionId"] for s in bundle["sessions"]] == [session]
        checked = run_cli("replay-check", str(out), cwd=app, env=env)
        assert checked.returncode == 0 and checked.stdout.startswith("ok "), checked.stdout + checked.stderr

        refused = run_cli("import", str(out), cwd=app, env=env)
        assert refused.returncode == 2
        assert f"instance {iid!r} already exists" in one_line(refused.stderr)
        imported = run_cli("import", str(out), "--new-id", cwd=app, env=env)
        assert imported.returncode == 0, imported.stderr
        new_instance, new_session = (line.split()[-1] for line in imported.stdout.splitlines())
        assert new_instance.startswith(f"{iid}-imported-")
        assert new_session.startswith(f"writeragent/{session}-imported-")
        status = run_cli("status", new_instance, "--json", cwd=app, env=env)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["output"] == done["output"]
        show = run_cli("show", "WriterAgent", new_session.split("/", 1)[1], "--json", cwd=app, env=env)
        assert show.returncode == 0, show.stderr
        assert json.loads(show.stdout)["message_count"] == 4
        assert up.stop(signal.SIGTERM) == -signal.SIGTERM
    finally:
        up.close()
