"""The pytest plugin, run in a child pytest (pytester) against a stand-in ``func`` and real Azurite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.azurite import ensure_azurite, find_azurite
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


@pytest.fixture(scope="module")
def azurite_exe() -> Path:
    """Resolved before pytester swaps HOME (an empty cache would mean another npm install)."""
    if shutil.which("node") is None and find_azurite() is None:
        pytest.skip("node is not installed")
    return ensure_azurite()


def test_plugin_end_to_end(
    azurite_exe: Path, pytester: pytest.Pytester, stand_in_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(azurite_exe))
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
