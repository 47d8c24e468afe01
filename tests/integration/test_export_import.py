"""`export`, `import` and `replay-check` on samples/chaining (an orchestration that calls an agent twice)
in the session's Functions host, on real Azurite (issue 25): the export of an instance brings the
session it called; it replays against the app; the round trip through a task hub's tables and the
app's own session entities gives back the same history and conversation; an id that exists is
refused unless --replace or --new-id."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.client import SyncAgentClient

from .orchestrations import SAMPLES, sample_script, start, wait_for

pytestmark = pytest.mark.integration
APP = SAMPLES / "chaining"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("chaining"))


@pytest.fixture
def chained(host_client) -> dict:
    urls = start(host_client, "/api/chaining/start", {"topic": f"Acme {uuid.uuid4().hex[:6]}"})
    done = wait_for(host_client, urls)
    assert done["runtimeStatus"] == "Completed", done
    return done


def _hub(host_client) -> str:
    return host_client.get("/admin/host/status").json()["taskHub"]


def test_an_exported_instance_brings_its_session_and_replays(function_host, chained, tmp_path, capsys):
    out = tmp_path / "export.json"
    code = main(["export", "--instance", chained["instanceId"], "--url", function_host.url, "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    bundle = json.loads(out.read_text())
    (instance,) = bundle["instances"]
    assert instance["output"] == chained["output"] and instance["historyEvents"]
    (session,) = bundle["sessions"]
    assert (session["agent"], session["sessionId"]) == ("writeragent", chained["output"]["sessionId"])
    assert session["state"]["message_count"] == 4
    capsys.readouterr()
    assert main(["replay-check", str(out), "--app", str(APP)]) == 0
    assert capsys.readouterr().out.startswith("ok ")


def test_round_trip_through_a_task_hub_and_the_app(function_host, host_client, chained, tmp_path, capsys):
    storage, hub = function_host.storage, _hub(host_client)
    out = tmp_path / "export.json"
    iid = chained["instanceId"]
    assert main(["export", "--instance", iid, "--storage", storage, "--hub", hub, "-o", str(out)]) == 0
    bundle = json.loads(out.read_text())
    (instance,) = bundle["instances"]
    assert instance["history"][0]["EventType"] == 12  # raw: episodes and task ids as stored
    capsys.readouterr()
    assert main(["replay-check", str(out), "--app", str(APP)]) == 0
    assert capsys.readouterr().out.startswith("ok ")

    # Instances into another task hub; the same history comes back out.
    other = "imp" + uuid.uuid4().hex[:10]
    args = ["import", str(out), "--storage", storage, "--hub", other, "--url", function_host.url]
    code = main([*args, "--new-id"])
    assert code == 0, capsys.readouterr().err
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"imported instance {iid}"
    session_line = lines[1]
    assert session_line.startswith(f"imported session writeragent/{chained['output']['sessionId']}-imported-")
    copy = tmp_path / "copy.json"
    assert main(["export", "--instance", iid, "--storage", storage, "--hub", other, "-o", str(copy)]) == 0
    again = json.loads(copy.read_text())
    # The sessions live in the app's own task hub, not in this one: listed as missing, not fatal.
    assert again["sessions"] == [] and len(again["missingSessions"]) == 1
    assert again["instances"][0]["history"] == instance["history"]
    assert again["instances"][0]["output"] == instance["output"]
    with SyncAgentClient(function_host.url) as client:
        original = client.state("WriterAgent", chained["output"]["sessionId"])
        imported = client.state("WriterAgent", session_line.rsplit("/", 1)[1])
    assert original and imported
    assert imported["conversation_history"] == original["conversation_history"]

    # The same ids again: refused, one line, unless --replace.
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"instance {iid!r} already exists" in err and "--replace" in err
    assert main([*args, "--replace"]) == 0, capsys.readouterr().err


START = [{"EventType": 12}, {"EventType": 0, "Name": "x", "Version": ""}]


def _export(instance: dict) -> str:
    return json.dumps({"format": "durableagent-export", "version": 1, "instances": [instance]})


def test_export_and_import_refuse_bad_input_in_one_line(function_host, tmp_path, capsys):
    assert main(["export", "--url", function_host.url]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["export", "--instance", "no-such-instance", "--url", function_host.url]) == 2
    assert "no orchestration instance 'no-such-instance'" in capsys.readouterr().err
    assert main(["export", "--instance", "i", "--storage", "garbage", "--hub", "h"]) == 2
    assert "--storage: Connection string is either blank or malformed" in capsys.readouterr().err
    assert main(["export", "--instance", "i", "--storage", "UseDevelopmentStorage=true"]) == 2
    assert "--storage and --hub go together" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    for content, complaint in (
        ("{not json", "not JSON"),
        ('{"format": "something-else"}', "not a durableagent export"),
        ('{"format": "durableagent-export", "version": 1, "instances": [{"name": "x"}]}', "no raw `history`"),
        ('{"format": "durableagent-export", "version": 1, "sessions": [{"agent": 1}]}', "session 0 must be"),
        (
            _export({"name": "x", "history": [*START, {"EventType": 5, "TaskScheduledId": "a"}]}),
            "must be an integer",
        ),
        (_export({"instanceId": "a/b", "name": "x", "history": START}), "instance id must not contain"),
    ):
        bad.write_text(content)
        assert main(["import", str(bad), "--url", function_host.url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and complaint in err and str(bad) in err, err
