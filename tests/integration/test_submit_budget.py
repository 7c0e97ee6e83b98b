"""A create call never outlives API Gateway's 29 s: one deadline (`create_deadline_seconds`) bounds the
probing and every provider send; what is left undone when it runs out goes to the sweeper, never twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from i2v.create import create
from i2v.lifecycle import Work
from i2v.models import RequestProblem, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v_local.sim_local import LocalSimulator
from i2v_local.sim_oxen import OxenSimulator
from tests.support import containers

DEADLINE = 2.0  # seconds; the deployed 25 s would make these tests slow, the rule is the same
SLACK = 0.75  # what the call may take past its deadline: the last read's wake-up and the final writes


@pytest.fixture
def oxen(tenant: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OxenSimulator]:
    with OxenSimulator() as sim:
        monkeypatch.setenv("I2V_OXEN_BASE_URL", sim.base_url)
        monkeypatch.setenv("I2V_OXEN_API_KEY", sim.api_key)
        containers.clear()  # new containers read the new environment
        yield sim  # type: ignore[misc]


@pytest.fixture
def bounded(oxen: OxenSimulator, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """A runtime whose create calls have DEADLINE seconds."""
    monkeypatch.setenv("I2V_CREATE_DEADLINE_SECONDS", str(DEADLINE))
    return Runtime.from_environment()


def timed_create(rt: Runtime, req: VideoRequest) -> tuple[Task, float]:
    started = time.monotonic()
    task, _ = create(rt, "demo", req)
    return task, time.monotonic() - started


def lease_is_free(rt: Runtime, task_id: str) -> bool:
    return rt.tasks.claim(task_id, Work.SUBMIT, 60, {Status.ACCEPTED}) is not None


def test_a_slow_refusal_that_spends_the_deadline_leaves_the_next_provider_to_the_sweeper(
    oxen: OxenSimulator,
    local_sim: LocalSimulator,
    media_server: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 4 s deadline, and an attempt needs 2 s of it: the refusal comes 2 s into the send, so what is left is
    # too little for a retry or the next provider however long probing took (up to 2 s on a loaded machine).
    deadline = 4.0
    monkeypatch.setenv("I2V_CREATE_DEADLINE_SECONDS", str(deadline))
    rt = Runtime.from_environment()
    rt.client.min_attempt_seconds = deadline / 2
    local_sim.faults.fail_submits = 99  # a 503, which the local renderer documents as "no job made"...
    local_sim.faults.delay_submits = deadline / 2  # ...after half the deadline
    req = VideoRequest(image_url=f"{media_server[1]}/sample.png", provider=["local", "oxen"])
    task, took = timed_create(rt, req)
    assert took < deadline + SLACK
    assert task.status is Status.ACCEPTED
    assert [(a.provider, a.outcome) for a in task.attempts] == [("local", "rejected")]
    assert local_sim.submits == 1  # no retry that would cross the deadline
    assert oxen.submits == 0  # not tried within the call...
    assert task.next_poll_at is not None
    assert task.next_poll_at <= rt.now()
    assert lease_is_free(rt, task.id)


def test_a_host_that_never_answers_a_submit_costs_the_call_only_its_deadline(
    bounded: Runtime, oxen: OxenSimulator, media_server: tuple[Path, str]
) -> None:
    oxen.faults.delay_submits = 60  # the request arrived; no answer comes (released when the host stops)
    req = VideoRequest(image_url=f"{media_server[1]}/sample.png", provider=["oxen", "local"])
    task, took = timed_create(bounded, req)
    assert took < DEADLINE + SLACK  # the engine's 10 s timeout and 3 tries would be 30 s
    # The request reached the host, which may yet make the job: never sent again, nor to `local`.
    assert task.status is Status.FAILED
    assert task.error is not None
    assert task.error.code == "submit_outcome_unknown"
    assert [(a.provider, a.outcome) for a in task.attempts] == [("oxen", "unknown")]


def test_a_create_with_no_time_left_for_a_provider_sends_nothing_and_leaves_the_task_to_the_sweeper(
    oxen: OxenSimulator, media_server: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_CREATE_DEADLINE_SECONDS", "0.1")  # spent before the first send could start
    rt = Runtime.from_environment()
    req = VideoRequest(image_url=f"{media_server[1]}/sample.png", provider="oxen")
    task, _ = timed_create(rt, req)
    assert (task.status, task.attempts, oxen.submits) == (Status.ACCEPTED, [], 0)
    assert task.next_poll_at is not None
    assert task.next_poll_at <= rt.now()
    assert lease_is_free(rt, task.id)


class Drip(BaseHTTPRequestHandler):
    """A media server sending a PNG's first bytes, then one byte every 0.2 s for ever (until stopped)."""

    stop = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(10**6))
        self.end_headers()
        self.wfile.write(b"\x89PNG\r\n\x1a\n")
        while not self.stop.wait(0.2):
            try:
                self.wfile.write(b"\0")
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dripping() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    Drip.stop.set()
    server.shutdown()
    Drip.stop.clear()


def test_media_servers_that_drip_cost_the_create_call_only_its_deadline(
    bounded: Runtime, oxen: OxenSimulator, dripping: str
) -> None:
    req = VideoRequest(
        image_url=f"{dripping}/first.png", last_frame_url=f"{dripping}/last.png", provider="oxen"
    )
    started = time.monotonic()
    with pytest.raises(RequestProblem) as caught:
        create(bounded, "demo", req)
    assert time.monotonic() - started < DEADLINE + SLACK  # each probe alone may take 5 s
    assert caught.value.status == 422
    assert oxen.submits == 0
