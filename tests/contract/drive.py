"""Driving an adapter against its simulator as the gateway does: send what it builds, parse the answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

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


@dataclass(frozen=True)
class Delivery:
    """One callback as it arrived: the path with its query, its headers and its exact body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A loopback callback endpoint at `path`: records each delivery and answers with the statuses in
    `answers` in turn (200 once they run out)."""

    def __init__(self, path: str = "/v1/callbacks/host/vid_1?token=t") -> None:
        self.deliveries: list[Delivery] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, Request.application(self._app), threaded=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}{path}"

    def _app(self, request: Request) -> Response:
        with self._lock:
            self.deliveries.append(Delivery(request.full_path, dict(request.headers), request.get_data()))
            status = self.answers.pop(0) if self.answers else 200
        return Response("", status=status)

    @property
    def bodies(self) -> list[Any]:
        return [delivery.json() for delivery in self.deliveries]

    def wait_for(self, count: int) -> list[Any]:
        """The bodies, once at least `count` have arrived."""
        wait_until(lambda: len(self.deliveries) >= count)
        return self.bodies

    def stop(self) -> None:
        self._server.shutdown()
