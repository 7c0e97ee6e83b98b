"""The one engine that sends what adapters build: explicit timeouts, jittered retries, Retry-After, deadlines.

Submits are special: a request that may have reached the provider is never sent again here, because a
second send could start (and bill) a second job. Only the answers a host documents as "not created" (see
`Capabilities.submit_not_created`) are retried or handed back for failover; any other 5xx or a lost answer
raises SubmitOutcomeUnknown and the caller reconciles the task instead.

Every send can carry a deadline (a `clock` instant): each attempt's timeouts are cut to the time left, no
retry or Retry-After wait that would cross it is started, and a send with too little time left is not
started at all (DeadlineReached: certainly not at the provider).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import httpx

from i2v.providers.base import (
    DeadlineReached,
    ProviderRateLimited,
    ProviderUnavailable,
    SubmitOutcomeUnknown,
    retry_after,
)

# Failures that happen before a byte of the request left: the provider cannot have seen it.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_ANSWER_BYTES = 1024 * 1024  # a provider's JSON answer; anything larger is not one


@dataclass
class ProviderClient:
    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.5
    max_retry_after: float = 5.0  # longer waits go back to the scheduler instead of holding a Lambda
    # Total seconds one send may take, attempts and waits included (None: attempts x timeout + waits).
    budget: float | None = None
    min_attempt_seconds: float = 0.5  # an attempt with less time left than this is not started
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    transport: httpx.BaseTransport | None = None
    # At most this many exchanges at once (None: no bound). The sweep runs more turns than this at once, so
    # that their DynamoDB writes overlap the provider's answers, but never has more queries out than this.
    max_in_flight: int | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _slots: threading.BoundedSemaphore | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_in_flight is not None:
            self._slots = threading.BoundedSemaphore(self.max_in_flight)

    @property
    def http(self) -> httpx.Client:
        if self._client is None:
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
            self._client = httpx.Client(timeout=timeout, transport=self.transport, follow_redirects=False)
        return self._client

    def deadline_in(self, seconds: float) -> float:
        """The `clock` instant `seconds` from now, for `send(deadline=...)`."""
        return self.clock() + seconds

    def send(
        self,
        request: httpx.Request,
        *,
        is_submit: bool = False,
        not_created: frozenset[int] = frozenset(),
        deadline: float | None = None,
    ) -> httpx.Response:
        """Send with retries. Connection failures and 5xx are retried; 429 honours Retry-After (a submit's
        429 is raised at once: capacity is the caller's to manage).

        For a submit (`is_submit`), only a failure before sending and the 5xx statuses in `not_created` (the
        host documents them as "no job was made") are retried; any other 5xx, and an error after the request
        may have been received, raise SubmitOutcomeUnknown at once. `deadline` bounds the whole send.
        """
        if self.budget is not None:
            own = self.clock() + self.budget
            deadline = own if deadline is None else min(deadline, own)
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                # A slot is held for the exchange only, not for waits between attempts; time spent waiting
                # for one counts against the deadline like any other.
                with self._slots if self._slots is not None else nullcontext():
                    request.extensions = {**request.extensions, "timeout": self._timeout(deadline)}
                    resp = self._exchange(request, deadline)
            except NEVER_SENT as exc:
                if last or not self._can_wait(self._jitter(attempt), deadline):
                    raise ProviderUnavailable(f"cannot connect: {exc!r}") from exc
                continue
            except httpx.TransportError as exc:
                if is_submit:
                    raise SubmitOutcomeUnknown(f"no answer to submit: {exc!r}") from exc
                if last or not self._can_wait(self._jitter(attempt), deadline):
                    raise ProviderUnavailable(f"no answer: {exc!r}") from exc
                continue
            if resp.status_code == 429:
                wait = retry_after(resp)
                too_long = wait is not None and wait > self.max_retry_after
                pause = wait if wait is not None else self._jitter(attempt)
                # A submit refused for capacity goes back at once: i2v.capacity lowers the provider's cap,
                # honours Retry-After for every task, and the task waits its turn (no retry of its own).
                if is_submit or last or too_long or not self._can_wait(pause, deadline):
                    raise ProviderRateLimited("rate limited", retry_after=wait, raw=resp.text)
                continue
            if resp.status_code >= 500:
                if is_submit and resp.status_code not in not_created:
                    # The host may have made the job before failing its answer: never resend, never fail over.
                    raise SubmitOutcomeUnknown(
                        f"HTTP {resp.status_code} to submit: the job may exist",
                        status_code=resp.status_code,
                        raw=resp.text,
                    )
                if not last and self._can_wait(self._jitter(attempt), deadline):
                    continue
            return resp
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _exchange(self, request: httpx.Request, deadline: float | None) -> httpx.Response:
        """One request and its whole answer, read in chunks: a body that drips past the deadline, or grows
        past MAX_ANSWER_BYTES, is a transport error (for a submit: the job may exist)."""
        streamed = self.http.send(request, stream=True)
        try:
            return _already_read(streamed)
        except httpx.ResponseNotRead:
            pass
        try:
            chunks: list[bytes] = []
            size = 0
            for chunk in streamed.iter_raw():
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise httpx.ReadError(f"answer larger than {MAX_ANSWER_BYTES} bytes", request=request)
                if deadline is not None and self.clock() > deadline:
                    raise httpx.ReadTimeout("answer still arriving at the deadline", request=request)
                chunks.append(chunk)
        finally:
            streamed.close()
        return httpx.Response(
            streamed.status_code, headers=streamed.headers, content=b"".join(chunks), request=request
        )

    def _timeout(self, deadline: float | None) -> dict[str, float | None]:
        """This attempt's httpx timeouts: the configured ones, cut to the time left before `deadline`."""
        total = self.timeout
        if deadline is not None:
            left = deadline - self.clock()
            if left < self.min_attempt_seconds:
                raise DeadlineReached(f"{max(left, 0):.1f} s left: not sent")
            total = min(total, left)
        return httpx.Timeout(total, connect=min(total, 5.0)).as_dict()

    def _can_wait(self, seconds: float, deadline: float | None) -> bool:
        """Sleep `seconds` before the next attempt if one can still start in time afterwards."""
        if deadline is not None and self.clock() + seconds + self.min_attempt_seconds > deadline:
            return False
        self.sleep(seconds)
        return True

    def _jitter(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients over the window.
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))  # noqa: S311 - not crypto

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _already_read(resp: httpx.Response) -> httpx.Response:
    """`resp` if its body is in memory already (a test transport's answer), else ResponseNotRead."""
    if len(resp.content) > MAX_ANSWER_BYTES:
        raise httpx.ReadError(f"answer larger than {MAX_ANSWER_BYTES} bytes", request=resp.request)
    return resp
