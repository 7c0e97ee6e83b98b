"""The one engine that sends what adapters build: explicit timeouts, jittered retries, Retry-After.

Submits are special: a request that may have reached the provider is never sent again here, because a
second send could start (and bill) a second job. The caller reconciles such a task instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from i2v.providers.base import ProviderRateLimited, ProviderUnavailable, SubmitOutcomeUnknown, retry_after


@dataclass
class ProviderClient:
    timeout: float = 10.0
    attempts: int = 3
    backoff: float = 0.5
    max_retry_after: float = 5.0  # longer waits go back to the scheduler instead of holding a Lambda
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def http(self) -> httpx.Client:
        if self._client is None:
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
            self._client = httpx.Client(timeout=timeout, transport=self.transport, follow_redirects=False)
        return self._client

    def send(self, request: httpx.Request, *, is_submit: bool = False) -> httpx.Response:
        """Send with retries. 5xx and connection failures are retried; 429 honours Retry-After.

        For a submit, an error after the request may have been received raises SubmitOutcomeUnknown.
        """
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                resp = self.http.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never reached the provider: safe to retry even a submit.
                if last:
                    raise ProviderUnavailable(f"cannot connect: {exc}") from exc
                self.sleep(self._jitter(attempt))
                continue
            except httpx.TransportError as exc:
                if is_submit:
                    raise SubmitOutcomeUnknown(f"no answer to submit: {exc!r}") from exc
                if last:
                    raise ProviderUnavailable(f"no answer: {exc!r}") from exc
                self.sleep(self._jitter(attempt))
                continue
            if resp.status_code == 429:
                wait = retry_after(resp)
                if last or (wait is not None and wait > self.max_retry_after):
                    raise ProviderRateLimited("rate limited", retry_after=wait, raw=resp.text)
                self.sleep(wait if wait is not None else self._jitter(attempt))
                continue
            if resp.status_code >= 500 and not last:
                self.sleep(self._jitter(attempt))
                continue
            return resp
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _jitter(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients over the window.
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))  # noqa: S311 - not crypto

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
