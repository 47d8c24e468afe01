"""Broken local.settings.json / host.json / storage strings: one-line errors naming the file, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.host.errors import AppLoadError
from harness.host.settings import HostConfig, SettingsError, apply_local_settings, resolve_storage

from .conftest import COUNTER_APP

BAD_LOCAL_SETTINGS = [
    pytest.param(b'{"Values": {', "invalid JSON", id="invalid-json"),
    pytest.param(b'{"Values": {"A": "\xff"}}', "not UTF-8 text", id="invalid-utf8"),
    pytest.param(b'{"Values": ["A=1"]}', '"Values" must be a JSON object, not an array', id="values-list"),
    pytest.param(b'{"Values": "A=1"}', '"Values" must be a JSON object, not a string', id="values-string"),
    pytest.param(b"[1]", "expected a JSON object, not an array", id="top-level-list"),
    pytest.param(b"null", "expected a JSON object, not null", id="top-level-null"),
    pytest.param(b'{"Values": {"A=B": "1"}}', "'A=B' cannot be an environment variable", id="bad-name"),
]
BAD_HOST_JSON = [
    pytest.param({"extensions": "x"}, '"extensions" must be a JSON object, not a string', id="extensions"),
    pytest.param({"extensions": {"http": "x"}}, '"extensions.http" must be a JSON object', id="http"),
    pytest.param({"extensions": {"durableTask": [1]}}, '"extensions.durableTask" must be', id="durable"),
    pytest.param(
        {"extensions": {"http": {"routePrefix": 5}}},
        '"extensions.http.routePrefix" must be a string, not a number',
        id="route-prefix",
    ),
    pytest.param(
        {"extensions": {"durableTask": {"hubName": True}}},
        '"extensions.durableTask.hubName" must be a string, not a boolean',
        id="hub-name",
    ),
    pytest.param(
        {"extensions": {"durableTask": {"maxConcurrentActivityFunctions": 0}}},
        '"extensions.durableTask.maxConcurrentActivityFunctions" must be a positive integer, not 0',
        id="max-activities",
    ),
    pytest.param(
        {"extensions": {"durableTask": {"maxConcurrentOrchestratorFunctions": "4"}}},
        '"extensions.durableTask.maxConcurrentOrchestratorFunctions" must be a positive integer',
        id="max-orchestrators",
    ),
    pytest.param(
        {"extensions": {"queues": {"maxDequeueCount": 0}}},
        '"extensions.queues.maxDequeueCount" must be a positive integer, not 0',
        id="max-dequeue",
    ),
    pytest.param(
        {"extensions": {"queues": {"batchSize": 64}}},
        '"extensions.queues.batchSize" must be at most 32, not 64',
        id="batch-size",
    ),
    pytest.param(
        {"extensions": {"queues": {"messageEncoding": "utf8"}}},
        '"extensions.queues.messageEncoding" must be "base64" or "none", not \'utf8\'',
        id="message-encoding",
    ),
]


@pytest.mark.parametrize(("content", "problem"), BAD_LOCAL_SETTINGS)
def test_bad_local_settings_name_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "local.settings.json"
    path.write_bytes(content)
    with pytest.raises(SettingsError) as info:
        apply_local_settings(tmp_path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)
    assert isinstance(info.value, AppLoadError) and isinstance(info.value, ValueError)


def test_a_bad_entry_applies_no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DA_TEST_GOOD", raising=False)
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"Values": {"DA_TEST_GOOD": "1", "DA_TEST_BAD": "a\x00b"}})
    )
    with pytest.raises(SettingsError, match="'DA_TEST_BAD' cannot be an environment variable"):
        apply_local_settings(tmp_path)
    assert "DA_TEST_GOOD" not in os.environ


@pytest.mark.parametrize(("data", "problem"), BAD_HOST_JSON)
def test_bad_host_json_names_the_file(tmp_path: Path, data: object, problem: str) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError) as info:
        HostConfig.load(tmp_path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)


def test_null_sections_mean_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DURABLEAGENT_TASK_HUB", raising=False)
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"http": None, "durableTask": None}}))
    assert HostConfig.load(tmp_path) == HostConfig()
    (tmp_path / "host.json").write_text(
        json.dumps({"extensions": {"queues": {"maxDequeueCount": 2, "messageEncoding": "None"}}})
    )
    loaded = HostConfig.load(tmp_path)
    assert (loaded.max_dequeue, loaded.queue_batch, loaded.queue_encoding) == (2, 16, "none")
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": None}))
    assert apply_local_settings(tmp_path) == {}


@pytest.mark.parametrize("conn", ["garbage", "a=b;c", ";;"])
def test_malformed_storage_strings(conn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="storage connection string from --storage is malformed"):
        resolve_storage(conn)
    monkeypatch.setenv("AzureWebJobsStorage", conn)
    with pytest.raises(SettingsError, match="from AzureWebJobsStorage .* is malformed"):
        resolve_storage(None)


def run_host(app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "DURABLEAGENT_TASK_HUB")}
    return subprocess.run(
        [sys.executable, "-m", "harness", "host", str(app), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def copy_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(COUNTER_APP / "function_app.py", app / "function_app.py")
    return app


def assert_one_line_error(result: subprocess.CompletedProcess[str], *parts: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "ERROR harness.host.server: " in lines[0]
    for part in parts:
        assert part in lines[0], output


@pytest.mark.parametrize(
    ("file", "content", "problem"),
    [
        ("local.settings.json", b'{"Values": {', "invalid JSON"),
        ("local.settings.json", b'{"Values": "\xff"}', "not UTF-8 text"),
        ("local.settings.json", b'{"Values": [1]}', '"Values" must be a JSON object'),
        ("host.json", b'{"extensions": "x"}', '"extensions" must be a JSON object'),
        ("host.json", b'{"extensions": {"http": "x"}}', '"extensions.http" must be a JSON object'),
    ],
)
def test_host_main_reports_bad_settings_in_one_line(
    tmp_path: Path, file: str, content: bytes, problem: str
) -> None:
    app = copy_app(tmp_path)
    (app / file).write_bytes(content)
    assert_one_line_error(run_host(app), str(app / file), problem)


@pytest.mark.parametrize(
    ("conn", "problem"),
    [
        ("garbage", "storage connection string from --storage is malformed"),
        ("X=1", "cannot start host: Connection string missing required connection details"),
    ],
)
def test_host_main_reports_bad_storage_in_one_line(conn: str, problem: str) -> None:
    assert_one_line_error(run_host(COUNTER_APP, "--storage", conn), problem)
