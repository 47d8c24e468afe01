"""The pytest plugin, run in a child pytest (pytester) against a stand-in ``func`` and real Azurite."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.standins import path_with, write_executable, write_fake_func

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def chat_script_default():
    return {"default": "baseline"}

@pytest.fixture(scope="session")
def function_host_app_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("app")
"""

TESTS = """
import os

def test_chat_script_roundtrip(host_client, chat_script, unique_session, azurite, function_host):
    assert azurite.connection_string.startswith("DefaultEndpointsProtocol=http;")
    assert function_host.mode == "func"
    assert str(host_client.base_url).rstrip("/") == function_host.url
    assert host_client.timeout.read == 30.0
    assert host_client.get("/admin/host/status").json() == {"state": "Running"}
    env = host_client.get("/env").json()
    assert env["AzureWebJobsStorage"] == azurite.connection_string
    assert env["DURABLEAGENT_CHAT_SCRIPT"] == str(chat_script.path)
    assert host_client.get("/chat").json() == {"default": "baseline"}
    chat_script.set(["hello", {"text": "bye"}])
    answer = host_client.get("/chat", params={"q": unique_session}).json()
    assert answer == {"steps": ["hello", {"text": "bye"}]}
    chat_script.set({"rules": []})
    assert host_client.get("/chat", params={"n": "2"}).json() == {"rules": []}
    assert chat_script.requests() == [{}, {"q": unique_session}, {"n": "2"}]
    os.environ["SEEN_HOST_PID"] = str(function_host.pid)

def test_default_restored_and_requests_are_per_test(host_client, chat_script, function_host):
    assert host_client.get("/chat", params={"again": "1"}).json() == {"default": "baseline"}
    assert chat_script.requests() == [{"again": "1"}]
    assert os.environ["SEEN_HOST_PID"] == str(function_host.pid)  # one host per session

def test_unique_sessions(unique_session, request):
    assert unique_session.startswith("test-unique-sessions-")
    assert len(unique_session) == len("test-unique-sessions-") + 8

def test_failing_shows_host_log(host_client):
    host_client.get("/shows-up-in-report")
    assert False, "expected failure"
"""


@pytest.fixture
def stand_in_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    func = write_fake_func(tmp_path / "bin")
    monkeypatch.setenv("PATH", path_with(func.parent))
    return func.parent


@pytest.mark.integration
def test_plugin_end_to_end(
    azurite_exe: Path, pytester: pytest.Pytester, stand_in_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(azurite_exe))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run is not an xdist worker
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_stack_fixtures=TESTS)
    result = pytester.runpytest_subprocess("--durableagent-host", "auto", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    # New host log lines are attached to failing reports (only those logged during that test).
    result.stdout.fnmatch_lines(["*durableagent-host-app0 log (call)*", "*GET /shows-up-in-report*"])
    result.stdout.no_fnmatch_line("*GET /chat?again=1*")
    result.stdout.fnmatch_lines(
        ["*durableagent process logs*", "durableagent-azurite: */logs/durableagent-azurite.log"]
    )
    # --xshow lists nothing afterwards: the pid files are removed at teardown.
    shown = pytester.runpytest_subprocess("--xshow")
    shown.stdout.no_fnmatch_line("*LIVE*")


def test_integration_marker_and_laziness(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests that do not use the stack start nothing; stack tests are marked ``integration``."""
    marker = tmp_path / "started"
    bin_dir = tmp_path / "lazy-bin"
    body = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
    write_executable(bin_dir / "func", body)
    monkeypatch.setenv("PATH", path_with(bin_dir))
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(write_executable(bin_dir / "azurite", body)))
    pytester.makepyfile(
        """
        def test_plain(unique_session, chat_script):
            assert unique_session

        def test_needs_host(function_host):
            raise AssertionError("deselected")
        """
    )
    pytester.makeconftest(CONFTEST)
    result = pytester.runpytest_subprocess("-m", "not integration")
    result.assert_outcomes(passed=1, deselected=1)
    assert not marker.exists()


def test_options_are_validated(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--durableagent-host", "docker")
    result.stderr.fnmatch_lines(["*invalid choice: 'docker'*"])
    help_text = pytester.runpytest_subprocess("--help")
    help_text.stdout.fnmatch_lines(["*--durableagent-app=DIR*", "*--durableagent-host*"])


@pytest.mark.integration
def test_each_app_gets_its_own_host(
    azurite_exe: Path, pytester: pytest.Pytester, stand_in_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``function_host_app_dir`` override in a sub-folder's conftest gets that app's host."""
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(azurite_exe))
    pytester.makeconftest(CONFTEST)
    for name in ("one", "two"):
        pkg = pytester.mkpydir(name)
        (pkg / "conftest.py").write_text(
            "import pytest\n\n"
            '@pytest.fixture(scope="session")\n'
            "def function_host_app_dir(tmp_path_factory):\n"
            f"    return tmp_path_factory.mktemp({name!r}, numbered=False)\n"
        )
        for index in (1, 2):
            (pkg / f"test_{name}_{index}.py").write_text(
                "import os\n\n"
                "def test_app(function_host, host_client):\n"
                f"    assert function_host.app_dir.name == {name!r}\n"
                "    assert host_client.get('/admin/host/status').status_code == 200\n"
                f"    seen = os.environ.setdefault('HOST_{name}', str(function_host.pid))\n"
                "    assert seen == str(function_host.pid)\n"
            )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)


# ---- the orchestration fixture, against the fake instance API (no engine, no host) -------------


@pytest.fixture
def orchestrations():
    import httpx

    from harness.client import SyncAgentClient
    from harness.testing import Orchestrations
    from tests.cli.fake_instances import FakeDurableApi

    fake = FakeDurableApi(echo_polls=3)
    with SyncAgentClient("http://app", transport=httpx.MockTransport(fake.handle)) as client:
        yield Orchestrations(client, timeout=2, interval=0.01, id_prefix="t-"), fake


def test_orchestration_run_start_wait_for_raise_wait(orchestrations) -> None:
    helper, fake = orchestrations
    run = helper.start("approval", {"x": 1})
    assert run.id.startswith("t-") and fake.instances[run.id]["input"] == {"x": 1}
    status = run.wait_for(status="Running", custom_status="waiting for approval")
    assert status["customStatus"] == "waiting for approval" and run.history_types() == ["ExecutionStarted"]
    run.wait_for(custom_status=lambda value: "approval" in (value or ""), event="ExecutionStarted")
    run.raise_event("Approval", {"approved": True})
    final = run.wait(timeout=1)
    assert final["runtimeStatus"] == "Completed"
    assert run.output == {"approved": True, "input": {"x": 1}}
    assert run.history_types() == ["ExecutionStarted", "EventRaised", "ExecutionCompleted"]
    assert run.wait_for(event="Approval")["runtimeStatus"] == "Completed"


def test_orchestration_run_polls_until_finished(orchestrations) -> None:
    helper, fake = orchestrations
    run = helper.run("echo", "hi")
    assert run.last["runtimeStatus"] == "Completed" and run.output == "hi"
    assert fake.polls[run.id] >= 3
    assert helper.get(run.id).status()["output"] == "hi"


def test_orchestration_timeouts_fail_with_the_last_status(orchestrations) -> None:
    from harness.testing import OrchestrationTimeout

    helper, _ = orchestrations
    run = helper.start("approval")
    with pytest.raises(OrchestrationTimeout, match="still Running after waiting 0.05 s") as info:
        run.wait(timeout=0.05)
    assert "customStatus=waiting for approval" in str(info.value)
    assert "history (newest last): start started approval" in str(info.value)

    failing = helper.start("boom")
    with pytest.raises(OrchestrationTimeout, match="ended Failed while waiting for custom status == 'x'"):
        failing.wait_for(custom_status="x")
    assert failing.output == "ValueError: boom"


def test_orchestration_wait_for_idle_and_cleanup(orchestrations) -> None:
    helper, fake = orchestrations
    run = helper.start("approval")
    assert run.wait_for_idle(quiet=0.05)["runtimeStatus"] == "Running"
    done = helper.run("echo", 1)
    helper.terminate_unfinished()
    assert fake.instances[run.id]["runtimeStatus"] == "Terminated"
    assert fake.instances[done.id]["runtimeStatus"] == "Completed"
    run.purge()
    assert run.id not in fake.instances


ORCHESTRATION_CONFTEST = """
import httpx
import pytest

from harness.client import SyncAgentClient
from tests.cli.fake_instances import FakeDurableApi


FAKE = FakeDurableApi()  # one for the whole run: a later test sees what an earlier one left


@pytest.fixture
def orchestration_client():
    fake = FAKE
    with SyncAgentClient("http://app", transport=httpx.MockTransport(fake.handle)) as client:
        yield client
"""

ORCHESTRATION_TESTS = """
def test_flow(orchestration):
    run = orchestration.start("approval", {"x": 1})
    run.wait_for(custom_status="waiting for approval", timeout=5)
    run.raise_event("Approval", {"approved": True})
    status = run.wait(timeout=5)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"approved": True, "input": {"x": 1}}
    assert run.id.startswith("test-flow-")


def test_left_running(orchestration):
    orchestration.start("approval", instance_id="left-running")


def test_was_terminated(orchestration):
    assert orchestration.get("left-running").status()["runtimeStatus"] == "Terminated"


def test_times_out(orchestration):
    orchestration.start("approval").wait(timeout=0.2)
"""


def test_orchestration_fixture_in_a_user_test_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture as a user writes it; ``orchestration_client`` overridden to the fake API."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))  # for tests.cli.fake_instances
    pytester.makeconftest(ORCHESTRATION_CONFTEST)
    pytester.makepyfile(test_orch=ORCHESTRATION_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*OrchestrationTimeout: instance 'test-times-out-*' is still Running after waiting 0.2 s to finish*"]
    )
