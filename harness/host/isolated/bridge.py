"""The app's side of an app run in its own interpreter: loaded there by path, never as `harness.*`.

The local host runs this file with the app's Python (`--python`, or the app folder's `.venv`) as
`python bridge.py APP_DIR`. It imports the app's `function_app.py` as the Python Functions worker
does, describes its functions, then calls them on request. So it imports nothing but the standard
library, `azure.functions` and what the app itself imports: the app's interpreter needs no harness,
no durableagent and none of the harness's dependencies.

The conversation is JSON lines. Requests come on stdin; answers go out on the process's original
stdout, which is kept for them alone: fd 1 is pointed at stderr before the app is imported, so
whatever the app prints or logs reaches the host's console and never the protocol.

- first line out: `{"ready": {python, sdk, functions: [...]}}` or `{"fatal": "one line"}` (then exit 2);
- in: `{"env": {NAME: VALUE}}` (settings the host knows only after the app is loaded, e.g. its URL);
- in: `{"id": N, "call": FUNCTION, "args": {PARAM: ARG}}`, out: `{"id": N, "result": VALUE}` or
  `{"id": N, "error": {"type", "message", "stack"}}`.

An ARG is `{"http": {...}}` (an HTTP request, rebuilt as `func.HttpRequest`) or `{"datum": {"type",
"value"}, "metadata": {NAME: datum}}`, decoded by the converter the app's azure-functions registered
for the binding's type with that trigger metadata, as the worker decodes it (so the durable SDK's own
converters run: 1.x or 2.x alike; a timer's and a queue message's too). A result is encoded the same
way: an `http` response, or the trigger converter's datum (a 2.x orchestrator's base64 protobuf, an
activity's JSON), or plain JSON.

The bridge keeps no state of its own between calls: everything durable is the host's, so a bridge
that dies (the app called `os._exit`, or was killed) is started again and the call retried.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

DIRECTIONS = {"IN": 0, "OUT": 1, "INOUT": 2}
LOG_LEVEL_ENV = "DURABLEAGENT_APP_LOG_LEVEL"  # the app's log level here (INFO; a replay check: WARNING)
log = logging.getLogger("app")


class _Context:
    """What the worker passes a function that declares `context` (`func.Context`'s attributes)."""

    def __init__(self, function_name: str, directory: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = directory
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = threading.local()


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _binding(binding: Any) -> dict[str, Any]:
    """A binding as JSON, its keys in the SDK's Python attribute names (`auth_level`, ...)."""
    described: dict[str, Any] = {}
    for key, value in binding.get_dict_repr().items():
        if key == "direction":
            value = DIRECTIONS.get(str(getattr(value, "name", value)).upper(), 0)
        elif hasattr(value, "name") and not isinstance(value, str | int | float | bool):
            value = value.name
        elif isinstance(value, list):
            value = [getattr(v, "value", v) for v in value]
        described[_snake(key)] = value if _is_json(value) else str(value)
    return described


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _sdk_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("azure-functions-durable")
    except PackageNotFoundError:
        return None


class Bridge:
    """The loaded app and the calls in flight."""

    def __init__(self, app_dir: Path, out: Any) -> None:
        self.app_dir = app_dir
        self.out = out
        self.functions: dict[str, Any] = {}
        self.bindings: dict[str, dict[str, str]] = {}  # function -> parameter -> binding type
        self.triggers: dict[str, str] = {}  # function -> its trigger's binding type
        self.pool = ThreadPoolExecutor(int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or 32), "app")
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, default=str)
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def load(self) -> dict[str, Any]:
        """Import the app as the worker does and describe its functions."""
        import azure.functions as func

        sys.path.insert(0, str(self.app_dir))
        os.chdir(self.app_dir)
        spec = importlib.util.spec_from_file_location("function_app", self.app_dir / "function_app.py")
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot import {self.app_dir / 'function_app.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules["function_app"] = module
        spec.loader.exec_module(module)
        registers = {id(v): v for v in vars(module).values() if isinstance(v, func.FunctionRegister)}
        if len(registers) != 1:
            found = "no FunctionRegister" if not registers else "more than one FunctionRegister"
            raise RuntimeError(f"function_app.py: {found} (e.g. `app = func.FunctionApp()`) found")
        described = []
        for function in next(iter(registers.values())).get_functions():
            name = function.get_function_name()
            fn = function.get_user_function()
            bindings = [_binding(b) for b in function.get_bindings()]
            trigger = _binding(function.get_trigger())
            self.functions[name] = fn
            self.bindings[name] = {b["name"]: b["type"] for b in bindings if b.get("direction") == 0}
            self.triggers[name] = trigger["type"]
            try:
                params = list(inspect.signature(fn).parameters)
            except (TypeError, ValueError):
                params = []
            described.append(
                {
                    "name": name,
                    "trigger": trigger,
                    "bindings": bindings,
                    "params": params,
                    "is_async": inspect.iscoroutinefunction(fn),
                }
            )
        return {
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "sdk": _sdk_version(),
            "functions": described,
        }

    def _decode(self, function: str, param: str, arg: dict[str, Any]) -> Any:
        import azure.functions as func
        from azure.functions import meta

        if "http" in arg:
            request = arg["http"]
            return func.HttpRequest(
                method=request["method"],
                url=request["url"],
                headers=request.get("headers") or {},
                params=request.get("params") or {},
                route_params=request.get("route_params") or {},
                body=base64.b64decode(request.get("body") or ""),
            )
        datum = arg["datum"]
        binding = self.bindings[function].get(param)
        converter = meta.get_binding_registry().get(binding) if binding else None
        if converter is None:
            return datum["value"]
        metadata = {k: meta.Datum(v["value"], v["type"]) for k, v in (arg.get("metadata") or {}).items()}
        return converter.decode(meta.Datum(datum["value"], datum["type"]), trigger_metadata=metadata)

    def _encode(self, function: str, result: Any) -> Any:
        import azure.functions as func
        from azure.functions import meta

        if isinstance(result, func.HttpResponse):
            return {
                "http": {
                    "status": result.status_code,
                    "headers": dict(result.headers),
                    "mimetype": result.mimetype,
                    "charset": result.charset,
                    "body": base64.b64encode(result.get_body() or b"").decode("ascii"),
                }
            }
        converter = meta.get_binding_registry().get(self.triggers[function])
        if converter is not None and getattr(converter, "has_implicit_output", lambda: False)():
            datum = converter.encode(result, expected_type=None)
            return {"datum": {"type": datum.type, "value": datum.value}}
        if isinstance(result, bytes):
            return {"bytes": base64.b64encode(result).decode("ascii")}
        if self.triggers[function] == "httpTrigger" and not _is_json(result):
            # What the host's process answers for it too (a 500 naming the type), never its repr.
            raise TypeError(f"Object of type {type(result).__name__} is not JSON serializable")
        return {"json": result if _is_json(result) else str(result)}

    async def call(self, message: dict[str, Any]) -> None:
        """Run one call and send its answer, whatever happens."""
        call_id = message.get("id")
        name = str(message.get("call"))
        try:
            fn = self.functions[name]
            kwargs = {p: self._decode(name, p, a) for p, a in (message.get("args") or {}).items()}
            try:
                wants_context = "context" in inspect.signature(fn).parameters
            except (TypeError, ValueError):
                wants_context = False
            context = _Context(name, str(self.app_dir))
            if wants_context and "context" not in kwargs:  # as the worker gives any function asking
                kwargs["context"] = context
            if inspect.iscoroutinefunction(fn):
                result = await fn(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self.pool, lambda: fn(**kwargs))
                if inspect.isawaitable(result):
                    result = await result
            self._after(context, kwargs, result)
            answer: dict[str, Any] = {"id": call_id, "result": self._encode(name, result)}
        except Exception as exc:  # the app's failure: the host reports it as the function's
            answer = {
                "id": call_id,
                "error": {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "stack": "".join(traceback.format_exception(exc)),
                },
            }
        self.send(answer)

    def _after(self, context: _Context, kwargs: dict[str, Any], result: Any) -> None:
        """The app-level post-invocation hooks, as the worker runs them (the 2.x SDK closes each
        durable client's gRPC channel in one)."""
        try:
            from azure.functions.extension.extension_meta import ExtensionMeta
        except ImportError:
            return
        hooks = ExtensionMeta.get_application_hooks()
        for hook in getattr(hooks, "post_invocation_app_level", None) or []:
            try:
                hook.ext_impl(log, context, kwargs, result)
            except Exception:
                log.exception("post-invocation extension %s failed", hook.ext_name)


def _read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def serve(bridge: Bridge) -> None:
    """Answer requests until stdin closes (the host stopped or died)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(loop, queue), daemon=True).start()
    running: set[asyncio.Task[None]] = set()
    while (line := await queue.get()) is not None:
        message = json.loads(line)
        if "env" in message:
            os.environ.update({str(k): str(v) for k, v in message["env"].items()})
            continue
        task = loop.create_task(bridge.call(message))
        running.add(task)
        task.add_done_callback(running.discard)


def _app_line(exc: BaseException, app_dir: Path) -> str:
    """Where in the app's own files the import failed (` (at models.py:12)`), the deepest such frame."""
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(app_dir):
            found = f" (at {path.relative_to(app_dir)}:{frame.lineno})"
    return found


def main() -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    level = os.environ.get(LOG_LEVEL_ENV, "INFO").upper()
    logging.basicConfig(level=level, format="[app] %(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 2:
        out.write(json.dumps({"fatal": "usage: bridge.py APP_DIR"}) + "\n")
        return 2
    bridge = Bridge(Path(sys.argv[1]).resolve(), out)
    try:
        description = bridge.load()
    except BaseException as exc:  # noqa: BLE001 - the app's import failing, whatever it raised
        first = (str(exc).splitlines() or [""])[0]
        where = _app_line(exc, bridge.app_dir)
        bridge.send({"fatal": f"importing function_app.py failed: {type(exc).__name__}: {first}{where}"})
        return 2
    bridge.send({"ready": description})
    asyncio.run(serve(bridge))
    os._exit(0)  # hung app threads must not keep a stopped host's child alive


if __name__ == "__main__":
    sys.exit(main())
