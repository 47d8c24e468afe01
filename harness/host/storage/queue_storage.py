"""Azure Storage queues as the queue trigger and the queue output binding both address them.

A binding names its queue (`%Setting%` expanded, checked against Azure's naming rules) and its
connection (an app setting; `AzureWebJobsStorage` is the host's own storage). Queues are created on
first use, and again when Azurite came back empty. Message texts are base64 of UTF-8 by default, as
Azure's clients send them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from ..settings import expand_setting, resolve_storage

_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def queue_name(text: str) -> str:
    """The queue a trigger names (`%Setting%` expanded); ValueError when it is not a valid name."""
    name = expand_setting(text).strip()
    if "%" in name:
        raise ValueError(f"queue name {text!r} names an app setting that is not set")
    if not _QUEUE_NAME.match(name):
        raise ValueError(
            f"queue name {name!r} is not valid (3-63 lowercase letters, digits and single hyphens)"
        )
    return name


def message_text(content: str) -> str:
    """A message's text: decoded when it is base64 of UTF-8 (Azure's default encoding), else as is."""
    try:
        return base64.b64decode(content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return content


def connection_string(setting: str, storage: str) -> str:
    """The storage a binding's `connection` setting names; `storage` is what `AzureWebJobsStorage` means
    (the host's own storage, which may have come from `--storage`). ValueError when it is not set."""
    if setting == "AzureWebJobsStorage":
        return storage
    if value := os.environ.get(setting):
        return resolve_storage(value)
    raise ValueError(f"connection setting {setting!r} is not set")


async def ensure_queue(queue: QueueClient) -> None:
    """Create the queue unless it exists (Azurite may also have come back empty)."""
    try:
        await queue.create_queue()
    except ResourceExistsError:
        pass
