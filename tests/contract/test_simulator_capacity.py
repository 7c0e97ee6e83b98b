"""Every simulator holds its account to the caps a test or the bench sets (jobs in flight, submits per
minute), answers a submit past them as its host documents, and counts what it saw (peak in flight, refusals).

Each host is driven through its real HTTP API: the gateway's adapter builds the submit, and either the
gateway's client sends it or, to read the refusal itself, plain httpx does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from i2v.providers.base import ProviderRateLimited, ProviderState
from i2v.providers.client import ProviderClient
from tests.contract.drive import wait_until
from tests.contract.hosts import HOSTS, Host, Running

LONG = 3600.0  # job_seconds no test outlasts: a job ends only when the test lets it
WAIT = 60.0  # deadline for what the simulator does on its own (renders share 2 cores with other tests)


@dataclass(frozen=True)
class Refused:
    """What a host's documentation fixes about its answer to a submit past the account's limits."""

    body: Callable[[Any], bool]  # holds for the documented body (True where only the status is documented)
    retry_after: bool  # whether the answer carries Retry-After
    status: int = 429


# Where the docs say nothing, the engine's default answer.
ENGINE_DEFAULT = Refused(lambda body: body == {"error": "rate limited"}, retry_after=True)
# The hosts that document their refusal (shared/providers.md); every other host answers as ENGINE_DEFAULT.
DOCUMENTED = {
    "aimlapi": Refused(lambda b: (b["message"], b["statusCode"]) == ("Too Many Requests", "429"), False),
    "dashscope": Refused(lambda b: b["code"].startswith("Throttling"), False),
    "evolink": Refused(lambda b: b["error"]["code"] == "rate_limit_exceeded", False),
    "novita": Refused(lambda b: True, False),  # a 429 for rate limits; no body is documented
    "openrouter": Refused(lambda b: b["error"] == {"code": 429, "message": "Rate limit exceeded"}, True),
    "oxen": Refused(lambda b: b["status"] == "error" and "error" in b, False),  # its error format
    "replicate": Refused(
        lambda b: (
            re.fullmatch(r"Request was throttled\. Your rate limit resets in ~[\d.]+s\.", b["detail"])
            is not None
        ),
        False,
    ),
}
# Hosts whose queue never refuses for concurrency: past the cap, submits wait there (fal's concurrency page).
QUEUE_PAST_THE_CAP = {"fal"}


def refused_as(host: Host) -> Refused:
    return DOCUMENTED.get(host.name, ENGINE_DEFAULT)


def queues(host: Host) -> bool:
    return host.name in QUEUE_PAST_THE_CAP


def host_param(host: Host, holds: bool, reason: str) -> pytest.ParameterSet:
    return pytest.param(host, id=host.name, marks=() if holds else pytest.mark.skip(reason=reason))


every_host = pytest.mark.parametrize("host", HOSTS, ids=lambda host: host.name)
refusing_hosts = pytest.mark.parametrize(
    "host", [host_param(h, not queues(h), f"{h.name} queues past its cap") for h in HOSTS]
)
queueing_hosts = pytest.mark.parametrize(
    "host", [host_param(h, queues(h), f"{h.name} refuses past its cap") for h in HOSTS]
)


@pytest.fixture
def running(host: Host, sample_url: str) -> Iterator[Running]:
    with host.running(sample_url) as started:
        yield started


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def send_submit(running: Running, http: httpx.Client) -> httpx.Response:
    """The adapter's submit, sent once as it is: the host's own answer, nothing retried or parsed."""
    return http.send(running.adapter.submit(running.request, running.request.resolved_mode(), None))


def assert_refused_as_documented(host: Host, answer: httpx.Response) -> None:
    expected = refused_as(host)
    assert answer.status_code == expected.status, answer.text
    assert expected.body(answer.json()), answer.text
    assert ("Retry-After" in answer.headers) is expected.retry_after


def state(running: Running, client: ProviderClient, job: str) -> ProviderState:
    return running.status(client, job).state


def ended(running: Running) -> bool:
    return all(task.state not in ("queued", "processing") for task in running.sim.tasks.values())


def test_every_host_in_the_tables_is_a_host_and_its_simulator_agrees_on_queueing() -> None:
    names = {host.name for host in HOSTS}
    assert set(DOCUMENTED) | QUEUE_PAST_THE_CAP <= names
    assert {h.name for h in HOSTS if h.simulator.queues_over_capacity} == QUEUE_PAST_THE_CAP


# -- the cap on jobs in flight ----------------------------------------------------------------------


@refusing_hosts
def test_past_the_cap_on_jobs_in_flight_a_submit_is_refused_as_documented_and_makes_nothing(
    host: Host, running: Running, client: ProviderClient, raw: httpx.Client
) -> None:
    sim = running.sim
    sim.capacity.max_in_flight, sim.capacity.job_seconds = 2, LONG
    made = {running.submit(client), running.submit(client)}

    assert_refused_as_documented(host, send_submit(running, raw))
    assert set(sim.tasks) == made
    assert (sim.in_flight, sim.peak_in_flight, sim.refusals["in_flight"]) == (2, 2, 1)
    # The gateway reads it as a rate limit (never as a refusal of the request, which would fail over).
    with pytest.raises(ProviderRateLimited):
        running.submit(client)
    assert set(sim.tasks) == made


@queueing_hosts
def test_a_host_that_queues_past_its_cap_takes_the_submit_and_runs_it_only_once_a_slot_frees(
    running: Running, client: ProviderClient
) -> None:
    sim = running.sim
    sim.capacity.max_in_flight, sim.capacity.job_seconds = 2, LONG
    first, second, third = (running.submit(client) for _ in range(3))

    wait_until(
        lambda: {state(running, client, j) for j in (first, second)} == {ProviderState.PROCESSING}, WAIT
    )
    assert state(running, client, third) is ProviderState.QUEUED  # both slots are held
    assert (sim.in_flight, sim.refusals) == (2, {})
    sim.cancel_task(sim.tasks[first])
    wait_until(lambda: state(running, client, third) is ProviderState.PROCESSING, WAIT)
    assert sim.peak_in_flight == 2  # counted at every start: the third never ran beside both others


@every_host
def test_a_burst_of_concurrent_submits_never_takes_the_host_past_its_cap(
    host: Host, running: Running, raw: httpx.Client
) -> None:
    sim = running.sim
    sim.capacity.max_in_flight, sim.capacity.job_seconds = 3, LONG
    start = threading.Barrier(20)

    def submit(_: int) -> httpx.Response:
        start.wait()
        return send_submit(running, raw)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(submit, range(20)))

    taken = [answer for answer in answers if answer.is_success]
    if queues(host):
        assert (len(taken), len(sim.tasks), sim.refusals) == (20, 20, {})
    else:
        assert (len(taken), len(sim.tasks), sim.refusals["in_flight"]) == (3, 3, 17)
        for answer in answers:
            if not answer.is_success:
                assert_refused_as_documented(host, answer)
    # As many jobs as the cap run at once, and no more, while they last.
    wait_until(lambda: sum(task.state == "processing" for task in sim.tasks.values()) == 3, WAIT)
    sim.faults.fail_render, sim.capacity.job_seconds = "drained by the test", None
    wait_until(lambda: ended(running), WAIT)
    assert sim.peak_in_flight == 3


@refusing_hosts
def test_once_a_job_has_ended_a_new_submit_is_taken(
    running: Running, client: ProviderClient, raw: httpx.Client
) -> None:
    sim = running.sim
    sim.capacity.max_in_flight, sim.capacity.job_seconds = 1, LONG
    job = running.submit(client)
    assert not send_submit(running, raw).is_success
    task = sim.tasks[job]
    wait_until(lambda: task.video is not None, WAIT)
    assert state(running, client, job) is ProviderState.PROCESSING  # rendered, and held for job_seconds

    sim.capacity.job_seconds = None
    wait_until(lambda: state(running, client, job) is ProviderState.SUCCEEDED, WAIT)
    assert running.submit(client) in sim.tasks
    assert (sim.in_flight, sim.refusals["in_flight"]) == (1, 1)


# -- the cap on submits per minute ------------------------------------------------------------------


@every_host
def test_past_the_cap_on_submits_per_minute_the_next_one_is_refused_as_documented(
    host: Host, running: Running, client: ProviderClient, raw: httpx.Client
) -> None:
    sim = running.sim
    sim.faults.stall = True  # nothing renders: only the submits matter
    sim.capacity.max_submits_per_minute = 3
    made = {running.submit(client) for _ in range(3)}

    answer = send_submit(running, raw)
    assert_refused_as_documented(host, answer)
    if "Retry-After" in answer.headers:
        assert 0 < float(answer.headers["Retry-After"]) <= 60  # when the minute has room again
    assert set(sim.tasks) == made
    assert sim.refusals["per_minute"] == 1


@every_host
def test_the_fault_switchs_429s_are_counted_as_refusals_too(running: Running, client: ProviderClient) -> None:
    sim = running.sim
    sim.faults.stall = True
    sim.faults.rate_limit_submits = 1
    with pytest.raises(ProviderRateLimited):  # a submit's 429 is handed back (capacity sends it again)
        running.submit(client)
    running.submit(client)  # then taken
    assert sim.refusals == {"rate_limit_submits": 1}
