"""A provider job id goes into the host's URL as one escaped segment or query value: an id from a callback
or a host can never change which path, host or query a status or cancel request goes to."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from i2v.providers.base import Declaration
from i2v.providers.registry import PROVIDERS

BASE = "https://host.example/base"
HOSTILE = "../../admin/x?y=1#z"
ESCAPED = "..%2F..%2Fadmin%2Fx%3Fy%3D1%23z"


def requests_for(declared: Declaration, job: str) -> list[httpx.Request]:
    provider = declared.build(BASE, "k")
    calls: list[Callable[[str], httpx.Request | None]] = [provider.status, provider.cancel]  # type: ignore[attr-defined]
    return [r for r in (call(job) for call in calls) if r is not None]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hostile_job_id_stays_one_escaped_value_of_the_same_url(provider: str) -> None:
    declared = PROVIDERS[provider]
    for hostile, plain in zip(requests_for(declared, HOSTILE), requests_for(declared, "JOB"), strict=True):
        assert (hostile.method, hostile.url.host, hostile.url.fragment) == (plain.method, plain.url.host, "")
        if "JOB" in plain.url.path:  # the id is a path segment: escaped whole, "/" and "?" included
            assert hostile.url.raw_path.decode() == plain.url.raw_path.decode().replace("JOB", ESCAPED)
        else:  # the id is a query value
            assert hostile.url.path == plain.url.path
            assert [v for _, v in hostile.url.params.multi_items()] == [HOSTILE]
