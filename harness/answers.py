"""Reading a durableagent app's HTTP answers: a failure as one `ClientError` line fit to show a user,
and a turn's JSON result.

Below both the client (`client.py`) and the reply stream reader (`reply_stream.py`), which read the
same answers: the run route's JSON reply is also what a stream's `final` event carries, and what a
non-streaming app sends instead of a stream.
"""

from __future__ import annotations

from typing import Any

import httpx

from harness.formatting import one_line


class ClientError(Exception):
    """A failed request, with a one-line message fit to show a user as is."""

    def __init__(self, message: str, status: int | None = None, payload: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


def error_text(response: httpx.Response) -> str:
    """The `error` of a JSON error body, else a short piece of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for field in ("error", "message", "Message", "detail"):
            if body.get(field):
                return " ".join(str(body[field]).split())
    text = one_line(response.text, 200)
    return text or response.reason_phrase or ""


def raise_for(response: httpx.Response) -> None:
    """Raise a one-line ClientError for any non-2xx response."""
    if response.is_success:
        return
    request = response.request
    detail = error_text(response)
    message = f"HTTP {response.status_code} from {request.method} {request.url.path}"
    if detail:
        message += f": {detail}"
    try:
        payload = response.json()
    except ValueError:
        payload = None
    raise ClientError(message, status=response.status_code, payload=payload)


def json_body(response: httpx.Response) -> Any:
    """Decode a success body, or raise a ClientError saying the host sent something else."""
    try:
        return response.json()
    except ValueError:
        raise ClientError(
            f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}: "
            "response is not JSON",
            status=response.status_code,
        ) from None


def transport_error(base_url: str, exc: httpx.HTTPError) -> ClientError:
    """A one-line message for connection failures and timeouts."""
    if isinstance(exc, httpx.TimeoutException):
        return ClientError(f"timed out talking to {base_url}")
    if isinstance(exc, httpx.ConnectError):
        return ClientError(f"cannot connect to {base_url} (is the app running?)")
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ClientError(f"request to {base_url} failed: {reason}")


def run_result(response: httpx.Response) -> dict[str, Any]:
    """The run route's JSON reply: a failed turn (500 with `status: error`) and a timeout (202) are
    results, not client errors."""
    if response.status_code == 500:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            return body
    return json_object(response, "run")


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """A success body that must be a JSON object; anything else is a one-line ClientError."""
    raise_for(response)
    body = json_body(response)
    if not isinstance(body, dict):
        raise ClientError(f"{what}: unexpected response body (not a JSON object)")
    return body
