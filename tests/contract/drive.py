"""Driving an adapter against its simulator as the gateway does: send what it builds, parse the answer."""

from __future__ import annotations

import time
from collections.abc import Callable

from i2v.providers.base import Provider, ProviderState, ProviderStatus
from i2v.providers.client import ProviderClient


def poll(
    adapter: Provider, client: ProviderClient, task_id: str, seconds: float = 20
) -> list[ProviderStatus]:
    """Every status seen until the task leaves queued/processing (the last one is where it ended)."""
    seen: list[ProviderStatus] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(adapter.parse_status(client.send(adapter.status(task_id))))
        if seen[-1].state not in (ProviderState.QUEUED, ProviderState.PROCESSING):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish: {seen[-1]}")


def wait_until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Return once `condition()` holds; fail after `seconds`. Tests wait on an end they can see, never on a
    sleep that merely hopes something did not happen."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
