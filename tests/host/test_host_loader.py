"""Loading and indexing an unmodified app, settings resolution."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.host.loader import load_app
from harness.host.settings import HUB_ENV, HostConfig, apply_local_settings, resolve_storage
from harness.host.triggers.registry import KINDS, kind
from harness.host.triggers.timers import timer

from .conftest import COUNTER_APP


def test_counter_sample_is_indexed():
    index = load_app(COUNTER_APP)
    assert load_app(COUNTER_APP) is index  # get_functions() ran once; the index is reused
    by_name = {f.name: f for f in index.http}
    assert set(by_name) == {"signal_counter", "read_counter", "hello", "item", "boom", "secret"}
    assert by_name["signal_counter"].client_params == ["client"]
    assert by_name["signal_counter"].methods == ("POST",)
    assert by_name["signal_counter"].is_async
    assert not by_name["hello"].is_async and by_name["hello"].wants_context
    assert by_name["secret"].auth_level == "function"
    assert len(by_name["boom"].methods) == 8  # no methods declared: all
    assert list(index.entities) == ["counter"]
    assert index.entities["counter"].display_name == "Counter"
    assert set(index.triggered) <= set(KINDS)  # nothing unsupported
    timers = [timer(f) for f in index.triggered["timerTrigger"]]
    assert [(t.function.name, t.schedule.text, t.run_on_startup) for t in timers] == [
        ("tick", "0 */5 * * * *", False)
    ]


def test_host_json_defaults_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(HUB_ENV, raising=False)
    assert HostConfig.load(tmp_path) == HostConfig(route_prefix="api", hub_name="TestHubName")
    (tmp_path / "host.json").write_text(
        json.dumps({"extensions": {"http": {"routePrefix": ""}, "durableTask": {"hubName": "MyHub"}}})
    )
    assert HostConfig.load(tmp_path) == HostConfig(route_prefix="", hub_name="MyHub")
    monkeypatch.setenv(HUB_ENV, "Isolated")
    assert HostConfig.load(tmp_path).hub_name == "Isolated"


def test_local_settings_do_not_override_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"DA_TEST_A": "from-file", "DA_TEST_B": "from-file", "DA_TEST_N": 3}})
    )
    monkeypatch.setenv("DA_TEST_A", "from-env")
    monkeypatch.delenv("DA_TEST_B", raising=False)
    monkeypatch.delenv("DA_TEST_N", raising=False)
    try:
        applied = apply_local_settings(tmp_path)
        assert os.environ["DA_TEST_A"] == "from-env"
        assert os.environ["DA_TEST_B"] == "from-file"
        assert os.environ["DA_TEST_N"] == "3"
        assert "DA_TEST_A" not in applied
    finally:
        os.environ.pop("DA_TEST_B", None)
        os.environ.pop("DA_TEST_N", None)


def test_storage_resolution(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    assert "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1" in resolve_storage(None)
    assert resolve_storage("X=1") == "X=1"


def test_main_reports_a_missing_app(tmp_path: Path):
    from harness.host.server import main

    assert main([str(tmp_path / "nowhere"), "--port", "0"]) == 2


def test_storage_names_are_valid_for_any_hub():
    import re

    from harness.host.entities.store import container_name_for, invalid_key_reason, table_name_for

    for hub in ["TestHubName", "my-hub_1", "9lives", "x" * 100, "é"]:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]{2,62}", table_name_for(hub)), hub
        assert re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", container_name_for(hub)), hub
    assert invalid_key_reason("counter", "ok key@with@at") is None
    for bad in ["a/b", "a\\b", "a#b", "a?b", "a\x00b", "a\x7fb", ""]:
        assert invalid_key_reason("counter", bad), repr(bad)
    assert invalid_key_reason("a@b", "k")


def test_a_host_without_mcp_triggers_does_not_load_the_mcp_sdk():
    """The MCP kinds are imported for an app that has MCP trigger functions only: the SDK is half a
    second of every host start (and of every test that starts one)."""
    check = (
        "import sys; from harness.host.server import LocalHost; "
        "from harness.host.triggers.registry import KINDS, kind; "
        "[kind(b) for b in ('timerTrigger', 'queueTrigger')]; "
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert {b: kind(b).binding_type for b in KINDS} == {b: b for b in KINDS}  # each kind where it says
