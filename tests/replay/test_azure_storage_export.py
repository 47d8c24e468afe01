"""`export --storage --hub` on a deployed app's task hub in the Azure Storage provider's layout (issue 25),
on real Azurite: the export reads `<hub>History` / `<hub>Instances` and the large-message container,
replays against the app (and diverges against a changed one), imports into the local host, where
the instance API shows it and `rewind-to` carries it on, and refuses bad input in one line.

No real Azure deployment was available: the rows below were written BY HAND from the provider's
format as its source defines it (Azure/durabletask `src/DurableTask.AzureStorage/Tracking/
AzureTableTrackingStore.cs` and `TableEntityConverter.cs`, `src/DurableTask.Core/History/*.cs`,
`src/DurableTask.Core/Entities/`; `harness/azure_task_hub.py` cites them): one row per DTFx event,
RowKey = the sequence number as 16 hex digits, `_Timestamp`, enums by name, a `sentinel` row; an
Instances row per instance (RowKey ""); a result over 60 KiB in a gzipped blob named by
`ResultBlobName`; an entity's scheduler state over the limit as a blob URL in `Input`. The values
are those the app in `azure_app/` computes (its orchestrators run through the same Python SDK on
Azure), including the SDK's `new_uuid` for the agent turn's correlation id.
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from durableagent.state import AgentState
from harness.cli.main import main
from harness.client import SyncAgentClient

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parent / "azure_app"
SESSION = "s-42"
REPLY = "Version 2.1 is out!"
NOTES = "notes for 2.1 " + "x" * 40_000  # 80 KB of UTF-16: past the 60 KiB a table column takes
T0 = datetime(2026, 11, 30, 9, 0, 0, 100_000, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _sdk_new_uuid(instance_id: str, episode: datetime, counter: int) -> str:
    """`DurableOrchestrationContext.new_uuid` of the Python SDK: a name-based UUID of the instance
    id, the episode's time and a counter (what the deployed orchestrator computed)."""
    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    return str(uuid.uuid5(namespace, f"{instance_id}_{episode.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}_{counter}"))


class DeployedHub:
    """A task hub written as DurableTask.AzureStorage writes it (see the module docstring)."""

    def __init__(self, connection: str, hub: str) -> None:
        self.hub = hub
        self.tables = TableServiceClient.from_connection_string(connection)
        self.history = self.tables.create_table(f"{hub}History")
        self.instances = self.tables.create_table(f"{hub}Instances")
        blobs = BlobServiceClient.from_connection_string(connection, api_version="2021-12-02")
        self.container = blobs.create_container(f"{hub.lower()}-largemessages")

    def blob(self, name: str, text: str) -> str:
        """Upload `text` gzipped as the provider does (`CompressAndUploadAsBytesAsync`); its URL."""
        self.container.upload_blob(name, gzip.compress(text.encode("utf-8")))
        return f"{self.container.url}/{quote(name)}"

    def execution(self, iid: str, execution: str, events: list[tuple[str, datetime, dict[str, Any]]]) -> None:
        """History rows for one execution (sequence numbers from 0) and the sentinel row naming it."""
        for seq, (kind, at, columns) in enumerate(events):
            row = {"PartitionKey": iid, "RowKey": f"{seq:016X}", "ExecutionId": execution, "EventType": kind}
            row |= {"EventId": -1, "IsPlayed": False, "_Timestamp": at, **columns}
            for column, value in list(row.items()):
                if isinstance(value, str) and len(value.encode("utf-16-le")) > 60 * 1024:
                    name = f"{iid}/history-{seq:016X}-{kind}-1A2B3C4D-{column}.json.gz"
                    self.blob(name, value)
                    row[column], row[f"{column}BlobName"] = "", name
            self.history.upsert_entity(row)
        self.history.upsert_entity({"PartitionKey": iid, "RowKey": "sentinel", "ExecutionId": execution})

    def instance(self, iid: str, **columns: Any) -> None:
        self.instances.upsert_entity({"PartitionKey": iid, "RowKey": "", "TaskHubName": self.hub, **columns})


def _release(hub: DeployedHub, iid: str) -> dict[str, Any]:
    """A `release` run that failed at its last step: activity, timer, external event,
    sub-orchestration, an agent turn (entity call) and a failing activity. What it expects back."""
    execution = uuid.uuid4().hex
    spec = {"version": "2.1", "session": SESSION}
    e1, e2, e3, e4, e5, e6, e7 = (_at(s) for s in (0, 1, 302, 400, 401.5, 409, 410))
    fire_at = e2 + timedelta(minutes=5)
    correlation = uuid.UUID(_sdk_new_uuid(iid, e5, 0)).hex
    prompt = "Announce 2.1 (verified, approved by ops)"
    request_id = str(uuid.uuid4())
    request = {
        "op": "run_agent",
        "input": json.dumps(
            {
                "message": prompt,
                "role": "user",
                "correlation_id": correlation,
                "enable_tool_calls": True,
                "response_schema": None,
            }
        ),
        "id": request_id,
        "parent": iid,
        "parentExecution": execution,
    }
    result = {
        "status": "success",
        "response": REPLY,
        "correlation_id": correlation,
        "message_count": 2,
        "messages": [],
        "usage": {},
    }
    failure = "Activity function 'publish' failed: RuntimeError: the release feed refused the post"
    details = json.dumps({"ErrorType": "RuntimeError", "ErrorMessage": failure})
    ms = timedelta(milliseconds=3)
    events = [
        ("OrchestratorStarted", e1, {}),
        (
            "ExecutionStarted",
            e1 - timedelta(seconds=0.2),
            {
                "Name": "release",
                "Version": "",
                "Input": json.dumps(spec),
                "Generation": 0,
                "OrchestrationInstance": json.dumps({"InstanceId": iid, "ExecutionId": execution}),
            },
        ),  # fmt: skip
        ("TaskScheduled", e1 + ms, {"EventId": 0, "Name": "prepare", "Version": "", "Input": '"2.1"'}),
        ("OrchestratorCompleted", e1 + 2 * ms, {}),
        ("OrchestratorStarted", e2, {}),
        ("TaskCompleted", e2 - ms, {"TaskScheduledId": 0, "Result": json.dumps(NOTES)}),  # a large message
        ("TimerCreated", e2 + ms, {"EventId": 1, "FireAt": fire_at}),
        ("OrchestratorCompleted", e2 + 2 * ms, {}),
        ("OrchestratorStarted", e3, {}),
        ("TimerFired", e3 - ms, {"TimerId": 1, "FireAt": fire_at}),
        ("OrchestratorCompleted", e3 + ms, {}),
        ("OrchestratorStarted", e4, {}),
        ("EventRaised", e4 - ms, {"Name": "Approval", "Input": '{"by":"ops"}'}),
        (
            "SubOrchestrationInstanceCreated",
            e4 + ms,
            {
                "EventId": 2,
                "Name": "verify",
                "Version": "",
                "InstanceId": f"{iid}-verify",
                "Input": json.dumps(len(NOTES)),
            },
        ),  # fmt: skip
        ("OrchestratorCompleted", e4 + 2 * ms, {}),
        ("OrchestratorStarted", e5, {}),
        ("SubOrchestrationInstanceCompleted", e5 - ms, {"TaskScheduledId": 2, "Result": '"verified"'}),
        (
            "EventSent",
            e5 + ms,
            {
                "EventId": 3,
                "InstanceId": f"@dafx-writeragent@{SESSION}",
                "Name": "op",
                "Input": json.dumps(request),
            },
        ),  # fmt: skip
        ("OrchestratorCompleted", e5 + 2 * ms, {}),
        ("OrchestratorStarted", e6, {}),
        ("EventRaised", e6 - ms, {"Name": request_id, "Input": json.dumps({"result": json.dumps(result)})}),
        (
            "TaskScheduled",
            e6 + ms,
            {"EventId": 4, "Name": "publish", "Version": "", "Input": json.dumps(REPLY)},
        ),
        ("OrchestratorCompleted", e6 + 2 * ms, {}),
        ("OrchestratorStarted", e7, {}),
        (
            "TaskFailed",
            e7 - ms,
            {"TaskScheduledId": 4, "Reason": failure, "Details": "", "FailureDetails": details},
        ),
        (
            "ExecutionCompleted",
            e7 + ms,
            {
                "OrchestrationStatus": "Failed",
                "Result": f"Orchestrator function 'release' failed: {failure}",
                "FailureDetails": details,
            },
        ),  # fmt: skip
        ("OrchestratorCompleted", e7 + 2 * ms, {}),
    ]
    hub.execution(iid, execution, events)
    hub.instance(
        iid, Name="release", Version="", ExecutionId=execution, RuntimeStatus="Failed", Generation=0,
        CreatedTime=e1, LastUpdatedTime=e7, CompletedTime=e7, Input=json.dumps(spec),
        Output=f"RuntimeError: Orchestrator function 'release' failed: {failure}", CustomStatus="null",
    )  # fmt: skip
    # The session entity: its scheduler state is past the column limit, so the row holds its URL.
    state = AgentState()
    state.add_user_message(prompt, correlation)
    state.add_assistant_message(REPLY + " " + "!" * 40_000)
    entity = f"@dafx-writeragent@{SESSION}"
    scheduler = json.dumps({"exists": True, "state": json.dumps(state.to_dict()), "sorter": {}})
    url = hub.blob(f"{entity}/history-0000000000000001-ExecutionStarted-0F0F0F0F-Input.json.gz", scheduler)
    hub.instance(
        entity, Name=entity, ExecutionId=uuid.uuid4().hex, RuntimeStatus="Running", Input=url,
        CustomStatus=json.dumps({"entityExists": True}), CreatedTime=e5, LastUpdatedTime=e6,
    )  # fmt: skip
    return {"execution": execution, "state": state.to_dict(), "fire_at": fire_at, "request_id": request_id}


def _countdown(hub: DeployedHub, iid: str) -> None:
    """A `countdown` that continued as new once: generation 1 runs over the first rows, the rows
    of generation 0 past its length are still in the table (the provider leaves them)."""
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    ms = timedelta(milliseconds=3)
    a, b, c = _at(1000), _at(1001), _at(1002)
    hub.execution(iid, old, [
        ("OrchestratorStarted", a, {}),
        ("ExecutionStarted", a - ms, {"Name": "countdown", "Version": "", "Input": "1", "Generation": 0}),
        ("TaskScheduled", a + ms, {"EventId": 0, "Name": "prepare", "Version": "", "Input": '"1"'}),
        ("OrchestratorCompleted", a + ms, {}),
        ("OrchestratorStarted", b, {}),
        ("TaskCompleted", b - ms, {"TaskScheduledId": 0, "Result": '"notes for 1"'}),
        ("ContinueAsNew", b + ms, {"OrchestrationStatus": "ContinuedAsNew", "Result": "0"}),
        ("OrchestratorCompleted", b + ms, {}),
    ])  # fmt: skip
    hub.execution(iid, new, [
        ("OrchestratorStarted", c, {}),
        ("ExecutionStarted", c - ms, {"Name": "countdown", "Version": "", "Input": "0", "Generation": 1}),
        ("TaskScheduled", c + ms, {"EventId": 0, "Name": "prepare", "Version": "", "Input": '"0"'}),
        ("OrchestratorCompleted", c + ms, {}),
    ])  # fmt: skip
    hub.instance(
        iid, Name="countdown", Version="", ExecutionId=new, RuntimeStatus="Running", Generation=1,
        CreatedTime=a, LastUpdatedTime=c, Input="0", Output=None, CustomStatus="null",
    )  # fmt: skip


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture
def deployed(azurite) -> dict[str, Any]:
    """A deployed-shaped task hub with a failed `release`, its agent session, and a `countdown`."""
    hub = DeployedHub(azurite.connection_string, "Deployed" + uuid.uuid4().hex[:10])
    release, countdown = f"rel-{uuid.uuid4().hex[:8]}", f"cd-{uuid.uuid4().hex[:8]}"
    expected = _release(hub, release)
    _countdown(hub, countdown)
    return {"storage": azurite.connection_string, "hub": hub.hub, "release": release, "countdown": countdown,
            **expected}  # fmt: skip


def _export(deployed: dict[str, Any], out: Path, *ids: str) -> int:
    args = ["export", "--storage", deployed["storage"], "--hub", deployed["hub"], "-o", str(out)]
    for iid in ids:
        args += ["--instance", iid]
    return main(args)


def test_export_reads_the_provider_layout_and_replays(deployed, tmp_path, capsys):
    out = tmp_path / "deployed.json"
    assert _export(deployed, out, deployed["release"], deployed["countdown"]) == 0, capsys.readouterr().err
    bundle = json.loads(out.read_text())
    assert bundle["storageLayout"] == "azure-storage"
    release, countdown = bundle["instances"]
    assert (release["name"], release["runtimeStatus"], release["executionId"]) == (
        "release", "Failed", deployed["execution"]
    )  # fmt: skip
    history = release["history"]
    assert [e["EventType"] for e in history] == [12, 0, 4, 13, 12, 5, 10, 13, 12, 11, 13, 12, 15, 7, 13,
                                                 12, 8, 14, 13, 12, 15, 4, 13, 12, 6, 1, 13]  # fmt: skip
    assert json.loads(history[5]["Result"]) == NOTES  # read back from the large-message blob
    assert history[6]["FireAt"] == deployed["fire_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sent = history[17]
    assert (sent["Name"], sent["RequestId"], sent["InstanceId"]) == (
        "run_agent", deployed["request_id"], f"@dafx-writeragent@{SESSION}"
    )  # fmt: skip
    assert release["historyEvents"][-1]["OrchestrationStatus"] == "Failed"
    assert release["output"].startswith("RuntimeError: Orchestrator function 'release' failed")
    (session,) = bundle["sessions"]  # the session it called, its state read through the blob URL
    assert (session["agent"], session["sessionId"]) == ("writeragent", SESSION)
    assert session["state"] == deployed["state"]
    # Only the current execution of the continued-as-new instance, not the older rows after it.
    assert [e["EventType"] for e in countdown["history"]] == [12, 0, 4, 13]
    assert countdown["inputText"] == "0" and countdown["history"][1]["Generation"] == 1

    # Read only: the deployed account has the provider's tables and container, nothing of ours.
    tables = TableServiceClient.from_connection_string(deployed["storage"])
    prefix = deployed["hub"].lower()
    assert sorted(t.name for t in tables.list_tables() if t.name.lower().startswith(prefix)) == [
        f"{deployed['hub']}History", f"{deployed['hub']}Instances"
    ]  # fmt: skip
    blobs = BlobServiceClient.from_connection_string(deployed["storage"], api_version="2021-12-02")
    assert [c.name for c in blobs.list_containers(name_starts_with=prefix)] == [f"{prefix}-largemessages"]

    capsys.readouterr()
    assert main(["replay-check", str(out), "--app", str(APP)]) == 0, capsys.readouterr().out
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "ok"] and "release" in lines[0]

    changed = tmp_path / "changed_app"
    shutil.copytree(APP, changed, ignore=shutil.ignore_patterns("__pycache__"))
    code = (changed / "function_app.py").read_text()
    (changed / "function_app.py").write_text(code.replace("timedelta(minutes=5)", "timedelta(minutes=10)"))
    assert main(["replay-check", str(out), "--app", str(changed), "--json"]) == 1
    first = json.loads(capsys.readouterr().out)[0]["divergence"]
    assert (first["reason"], first["event"]) == ("different timer time", 6)


def test_bad_input_is_one_line(deployed, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert main(["export", "--storage", deployed["storage"], "--hub", "NoSuchHub", "--instance", "a"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no task hub 'NoSuchHub'" in err and "NoSuchHubHistory" in err, err
    assert _export(deployed, out, "not-there") == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"no orchestration instance 'not-there' in task hub {deployed['hub']!r}" in err
    )
    args = [
        "export",
        "--storage",
        deployed["storage"],
        "--hub",
        deployed["hub"],
        "--session",
        "WriterAgent/nope",
    ]
    assert main(args) == 2
    assert "no session 'nope' of agent 'WriterAgent'" in capsys.readouterr().err
    assert not out.exists()


def _wait(http: httpx.Client, iid: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = http.get(
            f"/runtime/webhooks/durabletask/instances/{iid}", params={"showHistory": "true"}
        ).json()
        if predicate(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def test_imported_into_the_local_host_and_rewound(deployed, function_host, host_client, tmp_path, capsys):
    out = tmp_path / "deployed.json"
    assert _export(deployed, out, deployed["release"]) == 0, capsys.readouterr().err
    hub = host_client.get("/admin/host/status").json()["taskHub"]
    args = ["import", str(out), "--storage", function_host.storage, "--hub", hub, "--url", function_host.url]
    assert main(args) == 0, capsys.readouterr().err
    iid = deployed["release"]
    assert capsys.readouterr().out.splitlines() == [
        f"imported instance {iid}",
        f"imported session writeragent/{SESSION}",
    ]

    status = _wait(host_client, iid, lambda s: True)
    assert status["runtimeStatus"] == "Failed" and status["name"] == "release"
    kinds = [e["EventType"] for e in status["historyEvents"]]
    assert kinds[:3] == ["ExecutionStarted", "TaskCompleted", "TimerCreated"] and "EntityCalled" in kinds
    with SyncAgentClient(function_host.url) as client:
        state = client.state("WriterAgent", SESSION)
    assert state and state["conversation_history"][-1]["content"].startswith(REPLY)

    # Rewound to before its last episode with the app's code: `publish` runs again (and fails again).
    capsys.readouterr()
    assert main(["rewind-to", iid, "23", "--url", function_host.url]) == 0, capsys.readouterr().err
    again = _wait(
        host_client,
        iid,
        lambda s: s["runtimeStatus"] == "Failed" and not s["lastUpdatedTime"].startswith("2026-11-30"),
    )
    failed = [e for e in again["historyEvents"] if e["EventType"] == "TaskFailed"]
    (failed,) = failed  # the recorded failure was cut off; this one is the rerun's
    assert failed["FunctionName"] == "publish" and not failed["Timestamp"].startswith("2026-11-30")
    assert "the release feed refused the post" in failed["Reason"]


def test_what_is_read_is_bounded(deployed, tmp_path, capsys, monkeypatch):
    """The bounds `replay-check` and `import` put on a file hold while reading (lowered here, so a
    history and a large-message blob pass them without writing 200,000 rows or 64 MiB)."""
    out = tmp_path / "x.json"
    monkeypatch.setattr("harness.azure_task_hub.MAX_EVENTS", 20)
    assert _export(deployed, out, deployed["release"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "history has more than the 20 events an export may hold" in err, err
    monkeypatch.setattr("harness.azure_task_hub.MAX_EVENTS", 200_000)
    monkeypatch.setattr("harness.azure_task_hub.MAX_FILE_BYTES", 50_000)
    assert _export(deployed, out, deployed["release"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the export would pass the 50000 bytes an export may have" in err, err
    assert not out.exists()


def test_instance_ids_are_escaped_as_the_provider_escapes_partition_keys():
    from harness.azure_task_hub import escape_partition_key

    assert escape_partition_key("a/b\\c#d?e^f\x01g\x85") == "a^0b^1c^2d^3e^^f^\u00c1g^\u0145"
    assert escape_partition_key("@dafx-writeragent@s-42") == "@dafx-writeragent@s-42"
