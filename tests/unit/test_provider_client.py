"""The one sending engine: retries, Retry-After, and never resending a submit that may have arrived."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from i2v.providers.base import ProviderRateLimited, ProviderUnavailable, SubmitOutcomeUnknown
from i2v.providers.client import ProviderClient

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
