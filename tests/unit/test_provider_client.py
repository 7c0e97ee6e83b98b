"""The one sending engine: retries, Retry-After, and never resending a submit that may have arrived."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from i2v.providers.base import (
    DeadlineReached,
    ProviderRateLimited,
    ProviderUnavailable,
    SubmitOutcomeUnknown,
)
from i2v.providers.client import MAX_ANSWER_BYTES, ProviderClient

Answer = Callable[[httpx.Request], httpx.Response]


def engine(
    answers: list[Answer | Exception], waits: list[float]
) -> tuple[ProviderClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request)

    return ProviderClient(transport=httpx.MockTransport(handle), sleep=waits.append), seen


def status(code: int, **headers: str) -> Answer:
    return lambda request: httpx.Response(code, headers=headers, json={"ok": code < 400})


REQUEST = httpx.Request("POST", "https://provider.example/v1/tasks", json={"prompt": "x"})


def test_5xx_is_retried_with_backoff_then_succeeds() -> None:
    waits: list[float] = []
    client, seen = engine([status(503), status(502), status(200)], waits)
    assert client.send(REQUEST).status_code == 200
    assert len(seen) == 3
    assert len(waits) == 2
    assert all(0 <= w <= client.backoff * 2 for w in waits)


def test_5xx_on_the_last_attempt_is_returned_for_the_adapter_to_classify() -> None:
    client, seen = engine([status(500)] * 3, [])
    assert client.send(REQUEST).status_code == 500
    assert len(seen) == 3


def test_429_waits_exactly_retry_after() -> None:
    waits: list[float] = []
    client, _ = engine([status(429, **{"Retry-After": "3"}), status(200)], waits)
    assert client.send(REQUEST).status_code == 200
    assert waits == [3.0]


def test_a_429_to_a_submit_is_handed_back_at_once_for_capacity_to_handle() -> None:
    waits: list[float] = []
    client, seen = engine([status(429, **{"Retry-After": "1"}), status(200)], waits)
    with pytest.raises(ProviderRateLimited) as caught:
        client.send(REQUEST, is_submit=True)
    assert caught.value.retry_after == 1
    assert (len(seen), waits) == (1, [])


def test_429_with_a_long_retry_after_is_handed_back_not_slept() -> None:
    waits: list[float] = []
    client, seen = engine([status(429, **{"Retry-After": "120"})], waits)
    with pytest.raises(ProviderRateLimited) as caught:
        client.send(REQUEST)
    assert caught.value.retry_after == 120
    assert waits == []
    assert len(seen) == 1


def test_connect_error_never_reached_the_provider_so_even_a_submit_is_retried() -> None:
    client, seen = engine([httpx.ConnectError("refused"), status(200)], [])
    assert client.send(REQUEST, is_submit=True).status_code == 200
    assert len(seen) == 2


def test_submit_that_timed_out_after_sending_is_not_resent() -> None:
    client, seen = engine([httpx.ReadTimeout("no answer"), status(200)], [])
    with pytest.raises(SubmitOutcomeUnknown):
        client.send(REQUEST, is_submit=True)
    assert len(seen) == 1


def test_status_query_that_timed_out_is_retried() -> None:
    client, seen = engine([httpx.ReadTimeout("slow"), status(200)], [])
    assert client.send(httpx.Request("GET", "https://provider.example/v1/tasks/1")).status_code == 200
    assert len(seen) == 2


def test_unreachable_provider_is_unavailable_after_the_last_attempt() -> None:
    client, seen = engine([httpx.ConnectError("refused")] * 3, [])
    with pytest.raises(ProviderUnavailable):
        client.send(REQUEST)
    assert len(seen) == 3


# -- what a 5xx on a submit proves ------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_5xx_to_a_submit_is_an_unknown_outcome_sent_once_unless_the_host_documents_it(code: int) -> None:
    client, seen = engine([status(code), status(200)], [])
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        client.send(REQUEST, is_submit=True)
    assert caught.value.status_code == code
    assert len(seen) == 1  # the job may exist: a resend could make (and bill) a second one


def test_a_5xx_the_host_documents_as_not_created_is_retried_then_handed_back_for_failover() -> None:
    client, seen = engine([status(503)] * 3, [])
    assert client.send(REQUEST, is_submit=True, not_created=frozenset({503})).status_code == 503
    assert len(seen) == 3


def test_another_5xx_from_the_same_host_is_still_an_unknown_outcome() -> None:
    client, seen = engine([status(503), status(502), status(200)], [])
    with pytest.raises(SubmitOutcomeUnknown):
        client.send(REQUEST, is_submit=True, not_created=frozenset({503}))
    assert len(seen) == 2


def test_a_5xx_to_a_status_query_is_retried_whatever_the_host_documents() -> None:
    client, seen = engine([status(500), status(504), status(200)], [])
    assert client.send(httpx.Request("GET", "https://provider.example/v1/tasks/1")).status_code == 200
    assert len(seen) == 3


# -- deadlines --------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time that moves only when the engine sleeps or a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def timed_engine(answers: list[Answer | Exception]) -> tuple[ProviderClient, list[httpx.Request], FakeClock]:
    clock = FakeClock()
    client, seen = engine(answers, [])
    client.clock, client.sleep = clock, clock.sleep
    return client, seen, clock


def read_timeout(request: httpx.Request) -> float:
    return float(request.extensions["timeout"]["read"])


def test_each_attempt_waits_at_most_the_time_left_before_the_deadline() -> None:
    client, seen, clock = timed_engine([status(200)])
    client.send(REQUEST, deadline=clock() + 3.5)
    assert read_timeout(seen[0]) == 3.5  # not the engine's 10 s


def test_without_a_deadline_an_attempt_gets_the_engines_own_timeout() -> None:
    client, seen, _ = timed_engine([status(200)])
    client.send(REQUEST)
    assert read_timeout(seen[0]) == client.timeout


def test_a_send_with_too_little_time_left_is_not_started() -> None:
    client, seen, clock = timed_engine([status(200)])
    with pytest.raises(DeadlineReached):
        client.send(REQUEST, is_submit=True, deadline=clock() + client.min_attempt_seconds / 2)
    assert seen == []  # certainly not at the provider: the caller may leave it to the sweeper


def test_no_retry_is_started_that_would_cross_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    client, seen, clock = timed_engine([status(503), status(200)])
    client.backoff = 2.0  # a first backoff of up to 2 s...
    monkeypatch.setattr("i2v.providers.client.random.uniform", lambda low, high: high)  # ...drawn at its most
    deadline = clock() + 0.6  # room for one attempt, not for a wait and a second one
    resp = client.send(REQUEST, is_submit=True, not_created=frozenset({503}), deadline=deadline)
    assert resp.status_code == 503  # handed back as it is: the adapter makes it a failover
    assert len(seen) == 1
    assert clock() <= deadline


def test_a_retry_after_that_would_cross_the_deadline_is_handed_back_not_slept() -> None:
    client, seen, clock = timed_engine([status(429, **{"Retry-After": "3"}), status(200)])
    with pytest.raises(ProviderRateLimited) as caught:
        client.send(REQUEST, deadline=clock() + 2)
    assert caught.value.retry_after == 3
    assert (len(seen), clock()) == (1, 1000.0)


def test_the_budget_bounds_every_send_of_an_engine_made_for_quick_answers() -> None:
    client, seen, clock = timed_engine([httpx.ReadTimeout("slow")] * 3)
    client.budget = 3.0
    with pytest.raises(ProviderUnavailable):
        client.send(httpx.Request("GET", "https://provider.example/v1/tasks/1"))
    assert all(read_timeout(request) <= 3.0 for request in seen)
    assert clock() <= 1000.0 + 3.0


def test_an_answer_still_dripping_at_the_deadline_is_an_unknown_outcome_for_a_submit() -> None:
    clock = FakeClock()

    def drip() -> Iterator[bytes]:
        for _ in range(10):
            clock.now += 1  # a byte a second
            yield b" "

    client = ProviderClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=drip())),
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(SubmitOutcomeUnknown):
        client.send(REQUEST, is_submit=True, deadline=clock() + 3)
    assert clock() <= 1000.0 + 4  # stopped at the first byte past the deadline, not after all ten


def test_an_answer_larger_than_any_provider_sends_is_not_read_to_its_end() -> None:
    read: list[int] = []

    def huge() -> Iterator[bytes]:
        for _ in range(64):
            read.append(1)
            yield b"x" * 65536  # 4 MiB in all

    client = ProviderClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=huge())),
        sleep=lambda s: None,
    )
    with pytest.raises(ProviderUnavailable):
        client.send(httpx.Request("GET", "https://provider.example/v1/tasks/1"))
    # Each try stops one chunk past the cap, never at the end of the 4 MiB.
    assert len(read) == client.attempts * (MAX_ANSWER_BYTES // 65536 + 1)


def test_a_retry_after_of_zero_is_retried_at_once() -> None:
    waits: list[float] = []
    client, seen = engine([status(429, **{"Retry-After": "0"}), status(200)], waits)
    assert client.send(REQUEST).status_code == 200
    assert (len(seen), waits) == (2, [0.0])


@pytest.mark.parametrize(("bound", "peak"), [(2, 2), (None, 6)])
def test_no_more_exchanges_are_out_at_once_than_max_in_flight(bound: int | None, peak: int) -> None:
    inside, most = 0, 0
    lock = threading.Lock()
    together = threading.Barrier(6, timeout=5)

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.2)  # held long enough that six senders started together overlap
        with lock:
            inside -= 1
        return httpx.Response(200, json={"ok": True})

    client = ProviderClient(transport=httpx.MockTransport(answer), max_in_flight=bound)

    def sender() -> int:
        together.wait()
        return client.send(httpx.Request("GET", "https://provider.example/v1/tasks/1")).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        answered = list(pool.map(lambda _: sender(), range(6)))
    assert answered == [200] * 6
    assert most == peak
