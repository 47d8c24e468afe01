"""Stand-in executables for harness tests: a fake ``func`` that behaves enough like Core Tools."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import psutil

FAKE_FUNC = '''\
#!{python}
"""Fake `func start --port N`: serves /admin/host/status, echoes its env and the chat script."""
import json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

args = sys.argv[1:]
if not args or args[0] != "start" or "--port" not in args:
    print("fake func: usage: func start --port N", flush=True)
    sys.exit(2)
port = int(args[args.index("--port") + 1])
if os.environ.get("FAKE_FUNC_CRASH"):
    for i in range(30):
        print(f"fake func: loading line {{i}}", flush=True)
    print("fake func: boom, cannot load the app", flush=True)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"fake func: app {{os.getcwd()}} port {{port}} pid {{os.getpid()}} child {{child.pid}}", flush=True)
time.sleep(float(os.environ.get("FAKE_FUNC_DELAY", "0")))
ENV_KEYS = ["AzureWebJobsStorage", "DURABLEAGENT_CHAT_SCRIPT", "DURABLEAGENT_CHAT_RECORD",
            "DURABLEAGENT_TASK_HUB", "FAKE_FUNC_EXTRA"]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/admin/host/status":
            body = {{"state": "Running"}}
        elif url.path == "/env":
            body = {{key: os.environ.get(key) for key in ENV_KEYS}}
            body.update(pid=os.getpid(), child=child.pid)
        elif url.path == "/chat":  # like the fake model: read the script, record the request
            with open(os.environ["DURABLEAGENT_CHAT_SCRIPT"]) as fh:
                body = json.load(fh)
            with open(os.environ["DURABLEAGENT_CHAT_RECORD"], "a") as fh:
                fh.write(json.dumps(dict(parse_qsl(url.query))) + "\\n")
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *fmt_args):
        print("fake func: " + fmt % fmt_args, flush=True)


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def write_fake_func(bin_dir: Path) -> Path:
    """Write an executable ``func`` into ``bin_dir`` (put that folder first on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "func"
    path.write_text(FAKE_FUNC.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write_executable(path: Path, body: str) -> Path:
    """A small Python script runnable by name (for fake node/npm/azurite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def alive(pid: int) -> bool:
    """Running and not a zombie (containers often have no init reaping orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_dead(*pids: int, timeout: float = 5.0) -> list[int]:
    """Wait until all ``pids`` are gone; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def path_with(bin_dir: Path) -> str:
    """PATH with ``bin_dir`` first."""
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
