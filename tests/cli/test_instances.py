"""Orchestration instances in the client and the CLI, against the fake instance API (no engine)."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.cli.main import main
from harness.client import AgentClient, ClientError, InstanceTimeout, SyncAgentClient

from .fake_instances import FakeDurableApi
from .test_cli import one_line_error


@pytest.fixture
def fake() -> FakeDurableApi:
    return FakeDurableApi()


@pytest.fixture
def client(fake: FakeDurableApi):
    with SyncAgentClient("http://app", key="k1", transport=httpx.MockTransport(fake.handle)) as client:
        yield client


@pytest.fixture
def url(fake: FakeDurableApi, monkeypatch: pytest.MonkeyPatch):
    """The fake behind a URL, for the CLI (which builds its own client); tables 200 columns wide."""
    monkeypatch.setenv("COLUMNS", "200")
    with fake.mock() as base_url:
        yield base_url


# ---- client ------------------------------------------------------------------------------------


def test_start_status_and_history(client: SyncAgentClient, fake: FakeDurableApi):
    started = client.start("approval", {"x": 1}, instance_id="my id/1")
    assert started["id"] == "my id/1"
    request = fake.requests[-1]
    assert request.url.raw_path == b"/runtime/webhooks/durabletask/orchestrators/approval/my%20id%2F1"
    assert json.loads(request.content) == {"x": 1} and request.headers["x-functions-key"] == "k1"

    status = client.instance("my id/1")
    assert status is not None and status["runtimeStatus"] == "Running"
    assert status["customStatus"] == "waiting for approval" and "historyEvents" not in status
    with_history = client.instance("my id/1", history=True)
    assert with_history is not None
    assert [e["EventType"] for e in with_history["historyEvents"]] == ["ExecutionStarted"]
    assert fake.requests[-1].url.params["showHistoryOutput"] == "true"
    assert client.instance("nope") is None


def test_start_without_input_sends_no_body(client: SyncAgentClient, fake: FakeDurableApi):
    client.start("echo")
    assert fake.requests[-1].content == b""


def test_start_errors_are_one_line(client: SyncAgentClient):
    with pytest.raises(ClientError, match="unknown orchestrator 'nope'") as info:
        client.start("nope")
    assert info.value.status == 404
    client.start("approval", instance_id="dup")
    with pytest.raises(ClientError, match="'dup' already exists") as info:
        client.start("approval", instance_id="dup")
    assert info.value.status == 409


def test_listing_pages_newest_first_and_filters(fake: FakeDurableApi):
    fake.page_size = 2
    for name in ("echo", "approval", "echo", "boom", "approval"):
        fake.add(f"i-{len(fake.instances)}", name, "Completed" if name == "echo" else "Running")
    with SyncAgentClient("http://app", transport=httpx.MockTransport(fake.handle)) as client:
        everything = client.instances()
        running = client.instances(["Running"])
    assert [i["instanceId"] for i in everything] == ["i-4", "i-3", "i-2", "i-1", "i-0"]
    assert [i["instanceId"] for i in running] == ["i-4", "i-3", "i-1"]
    tokens = [
        r.headers.get("x-ms-continuation-token") for r in fake.requests if r.url.path.endswith("/instances/")
    ]
    assert tokens[:3] == [None, "2", "4"]
    assert fake.requests[-1].url.params["runtimeStatus"] == "Running"


def test_raise_terminate_purge(client: SyncAgentClient, fake: FakeDurableApi):
    client.start("approval", instance_id="a")
    client.raise_event("a", "Other event", {"n": 1})
    assert fake.requests[-1].url.raw_path.endswith(b"/instances/a/raiseEvent/Other%20event")
    client.raise_event("a", "Approval", {"approved": True})
    status = client.instance("a")
    assert status is not None and status["runtimeStatus"] == "Completed"
    assert status["output"] == {"approved": True, "input": None}
    with pytest.raises(ClientError, match="cannot raise an event: instance 'a' has already finished"):
        client.raise_event("a", "Approval")
    with pytest.raises(ClientError, match="cannot terminate: instance 'a' has already finished"):
        client.terminate("a")

    client.start("approval", instance_id="b")
    client.terminate("b", reason="no longer needed")
    assert fake.requests[-1].url.params["reason"] == "no longer needed"
    assert (client.instance("b") or {})["runtimeStatus"] == "Terminated"

    assert client.purge("a") == 1
    assert client.instance("a") is None
    for call in (
        lambda: client.purge("a"),
        lambda: client.raise_event("a", "E"),
        lambda: client.terminate("a"),
    ):
        with pytest.raises(ClientError, match="no instance 'a'"):
            call()


def test_wait_until_finished_or_timeout(client: SyncAgentClient):
    client.start("echo", "hi", instance_id="e")
    assert client.wait("e", timeout=5, interval=0.01)["output"] == "hi"

    client.start("approval", instance_id="w")
    with pytest.raises(InstanceTimeout, match="'w' is still Running after waiting 0.05 s") as info:
        client.wait("w", timeout=0.05, interval=0.01)
    assert info.value.last["customStatus"] == "waiting for approval"

    client.start("boom", instance_id="f")
    with pytest.raises(InstanceTimeout, match="'f' ended Failed while waiting for Running"):
        client.wait("f", until=lambda s: False, timeout=5, describe="for Running")


async def test_async_client_instance_calls(fake: FakeDurableApi):
    async with AgentClient("http://app", transport=httpx.MockTransport(fake.handle)) as client:
        await client.start("approval", [1, 2], instance_id="x")
        listed = await client.instances()
        assert [i["instanceId"] for i in listed] == ["x"]
        await client.raise_event("x", "Approval", {"approved": False})
        status = await client.instance("x", history=True)
        assert status is not None and status["output"] == {"approved": False, "input": [1, 2]}
        assert [e["EventType"] for e in status["historyEvents"]][-2:] == ["EventRaised", "ExecutionCompleted"]
        assert await client.purge("x") == 1
        with pytest.raises(ClientError, match="no instance 'x'"):
            await client.terminate("x")


# ---- CLI ---------------------------------------------------------------------------------------


def test_cli_start_raise_and_status(url: str, fake: FakeDurableApi, capsys):
    assert main(["start", "approval", "--input", '{"x": 1}', "--id", "run-1", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "run-1"
    assert fake.instances["run-1"]["input"] == {"x": 1}

    assert main(["instances", "--url", url, "--status", "running"]) == 0
    out = capsys.readouterr().out
    assert "run-1" in out and "approval" in out and "waiting for approval" in out

    assert main(["raise", "run-1", "Approval", "--data", '{"approved": true}', "--url", url]) == 0
    assert "Raised Approval on run-1" in capsys.readouterr().out

    assert main(["status", "run-1", "--url", url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["runtimeStatus"] == "Completed" and status["output"] == {
        "approved": True,
        "input": {"x": 1},
    }

    assert main(["status", "run-1", "--history", "--url", url]) == 0
    out = capsys.readouterr().out
    for text in ("Completed", "History", "started approval", "event Approval", "completed"):
        assert text in out


def test_cli_instances_json_filter_newest_first(url: str, fake: FakeDurableApi, capsys):
    fake.add("old", "echo", "Completed", output="x")
    fake.add("new", "echo", "Completed", output="y")
    fake.add("live", "approval", "Running")
    assert main(["instances", "--url", url, "--status", "Completed,completed", "--json"]) == 0
    assert [i["instanceId"] for i in json.loads(capsys.readouterr().out)] == ["new", "old"]
    assert fake.requests[-1].url.params["runtimeStatus"] == "Completed"
    assert main(["instances", "--url", url, "--status", "Failed"]) == 0
    assert "No orchestration instances with status Failed." in capsys.readouterr().out


def test_cli_start_wait(url: str, capsys):
    assert main(["start", "echo", "--input", '"hello"', "--wait", "5", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == "hello"

    assert main(["start", "boom", "--wait", "--url", url]) == 1
    captured = capsys.readouterr()
    assert "Failed" in captured.out and "ValueError: boom" in captured.out
    assert captured.err.strip().endswith("ended Failed")

    assert main(["start", "approval", "--wait", "0.1", "--url", url]) == 1
    assert "still Running after waiting 0.1 s" in one_line_error(capsys)


def test_cli_terminate_and_purge(url: str, fake: FakeDurableApi, capsys):
    fake.add("t", "approval", "Running")
    assert main(["terminate", "t", "--reason", "stop", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"instanceId": "t", "terminated": True}
    assert fake.instances["t"]["runtimeStatus"] == "Terminated" and fake.instances["t"]["output"] == "stop"
    assert main(["purge", "t", "--url", url]) == 0
    assert "Purged t" in capsys.readouterr().out and "t" not in fake.instances


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["start", "approval", "--input", "{x: 1}"], "--input is not valid JSON"),
        (["raise", "i", "E", "--data", "yes please"], "--data is not valid JSON"),
        (["start", "nope"], "unknown orchestrator 'nope'"),
        (["status", "missing"], "no instance 'missing'"),
        (["raise", "missing", "E"], "no instance 'missing'"),
        (["terminate", "missing"], "no instance 'missing'"),
        (["purge", "missing"], "no instance 'missing'"),
        (["instances", "--status", "Sleeping"], "unknown status 'Sleeping'"),
    ],
)
def test_cli_bad_arguments_are_one_line(url: str, capsys, argv: list[str], expected: str):
    assert main([*argv, "--url", url]) == 2
    assert expected in one_line_error(capsys)


@pytest.mark.parametrize("wait", ["soon", "0", "-1", "inf"])
def test_cli_bad_wait_is_an_argparse_error(wait: str, capsys):
    with pytest.raises(SystemExit) as info:
        main(["start", "echo", "--wait", wait])
    assert info.value.code == 2
    assert "argument --wait: expected" in one_line_error(capsys)


def test_cli_unreachable_host(dead_url: str, capsys):
    for argv in (["instances"], ["start", "x"], ["status", "i"], ["purge", "i"]):
        assert main([*argv, "--url", dead_url]) == 2
        assert "cannot connect to" in one_line_error(capsys)
