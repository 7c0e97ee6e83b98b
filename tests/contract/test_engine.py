"""What holds for every host, written once: the real sending engine and each adapter against its simulator.

Rate limits, retries, unknown status words, expired result links, unknown jobs, lost submit answers and
cancels. Each host's own file keeps only what is particular to it (documented bodies, field mappings, error
shapes, status words).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from i2v.providers.base import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    SubmitOutcomeUnknown,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from tests.contract.drive import poll
from tests.contract.hosts import HOSTS, Host, Running

every_host = pytest.mark.parametrize("host", HOSTS, ids=lambda host: host.name)
SLACK = 0.5  # what a deadline may be overrun by: the last read's wake-up and the test's own bookkeeping


def skipped_unless(holds: bool, host: Host, reason: str) -> pytest.ParameterSet:
    """`host` as a parameter, skipped with `reason` where it lacks the behaviour under test."""
    return pytest.param(host, id=host.name, marks=() if holds else pytest.mark.skip(reason=reason))


hosts_with_cancel = pytest.mark.parametrize(
    "host",
    [skipped_unless(h.capabilities.cancel, h, f"{h.name}: capabilities.cancel is False") for h in HOSTS],
)
hosts_refusing_unknown_jobs = pytest.mark.parametrize(
    "host",
    [
        skipped_unless(h.unknown_job_answer is None, h, f"{h.name} answers {h.unknown_job_answer}")
        for h in HOSTS
    ],
)


@pytest.fixture
def running(host: Host, sample_url: str) -> Iterator[Running]:
    with host.running(sample_url) as started:
        yield started


# -- rate limits and server errors ------------------------------------------------------------------


@every_host
def test_a_429_to_a_submit_is_handed_back_at_once_with_its_retry_after_and_no_job(running: Running) -> None:
    # Capacity (i2v.capacity) decides when to send again, for every task: the engine never sleeps it out.
    waits: list[float] = []
    client = ProviderClient(timeout=5, sleep=waits.append)
    running.sim.faults.stall = True
    running.sim.faults.rate_limit_submits, running.sim.faults.retry_after = 1, 2
    with pytest.raises(ProviderRateLimited) as caught:
        running.submit(client)
    assert caught.value.retry_after == 2
    assert (waits, running.sim.submits, running.sim.tasks) == ([], 1, {})
    job = running.submit(client)  # sent again when capacity says so: the one job there
    assert list(running.sim.tasks) == [job]


@every_host
def test_a_429_on_a_status_query_is_waited_out_too(running: Running, client: ProviderClient) -> None:
    running.sim.faults.stall = True
    job = running.submit(client)
    waits: list[float] = []
    patient = ProviderClient(timeout=5, sleep=waits.append)
    running.sim.faults.rate_limit_polls, running.sim.faults.retry_after = 1, 1.5
    assert running.status(patient, job).state is ProviderState.QUEUED
    assert waits == [1.5]


@every_host
def test_a_429_beyond_the_wait_budget_surfaces_with_its_retry_after_and_no_job(running: Running) -> None:
    client = ProviderClient(timeout=5, sleep=lambda s: None, max_retry_after=1)
    running.sim.faults.rate_limit_submits, running.sim.faults.retry_after = 1, 30
    with pytest.raises(ProviderRateLimited) as caught:
        running.submit(client)
    assert caught.value.retry_after == 30
    assert running.sim.submits == 1  # handed back to the scheduler, not waited for
    assert running.sim.tasks == {}


hosts_documenting_503_as_not_created = pytest.mark.parametrize(
    "host",
    [
        skipped_unless(503 in h.capabilities.submit_not_created, h, f"{h.name}: a 503 may follow a job")
        for h in HOSTS
    ],
)
hosts_not_documenting_503 = pytest.mark.parametrize(
    "host",
    [
        skipped_unless(503 not in h.capabilities.submit_not_created, h, f"{h.name}: a 503 means no job")
        for h in HOSTS
    ],
)


@hosts_documenting_503_as_not_created
def test_a_503_the_host_documents_as_no_job_is_retried_and_makes_one_job(
    running: Running, client: ProviderClient
) -> None:
    running.sim.faults.stall = True
    running.sim.faults.fail_submits = 1  # the simulator answers it before making a job
    job = running.submit(client)
    assert running.sim.submits == 2
    assert list(running.sim.tasks) == [job]


@hosts_not_documenting_503
def test_a_server_error_the_host_does_not_document_as_no_job_is_an_unknown_outcome_sent_once(
    running: Running, client: ProviderClient
) -> None:
    running.sim.faults.stall = True
    running.sim.faults.fail_submits = 1  # the host's own server error (EvoLink and DashScope answer 500)
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        running.submit(client)
    assert (caught.value.status_code or 0) >= 500
    assert running.sim.submits == 1  # not resent: for all we know from the docs, a job may exist


@every_host
@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_after_the_job_was_made_is_an_unknown_outcome_and_never_resent(
    running: Running, client: ProviderClient, status: int
) -> None:
    running.sim.faults.stall = True
    running.sim.faults.error_after_accept = status
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        running.submit(client)
    assert caught.value.status_code == status
    assert running.sim.submits == 1
    [job] = running.sim.tasks  # exactly one job, which a resend would have doubled
    assert running.status(client, job).state is ProviderState.QUEUED


@every_host
def test_a_submit_the_host_is_slow_to_answer_ends_at_the_deadline_as_an_unknown_outcome(
    running: Running,
) -> None:
    running.sim.faults.stall = True
    running.sim.faults.delay_submits = 30  # released when the simulator stops
    client = ProviderClient(timeout=10, sleep=lambda s: None)
    started = time.monotonic()
    with pytest.raises(SubmitOutcomeUnknown):
        running.submit(client, deadline=client.deadline_in(1.0))
    assert time.monotonic() - started < 1.0 + SLACK
    assert running.sim.submits == 1


# -- answers the gateway must not misread -----------------------------------------------------------


@every_host
def test_an_unknown_status_word_is_an_error_keeping_the_raw_value(
    running: Running, client: ProviderClient
) -> None:
    running.sim.faults.stall = True
    job = running.submit(client)
    running.sim.faults.unknown_status = "MELTING"
    with pytest.raises(UnknownProviderStatus) as caught:
        running.status(client, job)
    assert caught.value.code == "unknown_status"
    assert "MELTING" in caught.value.raw


@every_host
def test_the_result_link_serves_the_mp4_until_it_expires_then_answers_as_gone(
    running: Running, client: ProviderClient
) -> None:
    final = poll(running.adapter, client, running.submit(client))[-1]
    assert final.state is ProviderState.SUCCEEDED
    link = final.result_url or ""
    headers = running.adapter.result_headers(link)  # the key, for a host whose links take it
    assert httpx.get(link, headers=headers).content[4:8] == b"ftyp"
    running.sim.faults.expire_results = True
    # 403 (a signed link past its time), or 404/410 where a host says gone: what the ingest reads as expired.
    assert httpx.get(link, headers=headers).status_code in (403, 404, 410)


@hosts_refusing_unknown_jobs
def test_a_job_the_host_never_issued_is_a_404_rejection(
    host: Host, running: Running, client: ProviderClient
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        running.status(client, host.never_issued)
    assert caught.value.status_code == 404


@every_host
def test_a_lost_submit_answer_is_an_unknown_outcome_and_the_job_exists(
    running: Running, client: ProviderClient
) -> None:
    running.sim.faults.stall = True
    running.sim.faults.hang_submit_after_accept = True
    with pytest.raises(SubmitOutcomeUnknown):
        running.submit(ProviderClient(timeout=0.3, sleep=lambda s: None))
    assert running.sim.submits == 1  # never sent twice: a second send could start (and bill) a second job
    [job] = running.sim.tasks
    assert running.status(client, job).state is ProviderState.QUEUED  # there to reconcile


# -- cancel -----------------------------------------------------------------------------------------


@every_host
def test_the_adapter_builds_a_cancel_exactly_when_its_capabilities_say_so(host: Host) -> None:
    adapter = host.declared.build("https://host.invalid", "key")
    assert (adapter.cancel(host.never_issued) is not None) is adapter.capabilities.cancel


@hosts_with_cancel
def test_cancel_reaches_the_provider_once_and_the_job_ends_cancelled(
    running: Running, client: ProviderClient
) -> None:
    running.sim.faults.stall = True
    job = running.submit(client)
    cancel = running.adapter.cancel(job)
    assert cancel is not None
    assert client.send(cancel).is_success
    assert running.sim.cancels == [job]
    assert running.status(client, job).state is ProviderState.CANCELLED
