"""The local stack under a burst of concurrent, mixed requests: each answer is its own request's answer.

A container runs one event at a time; were two invocations to share a resolver's state (the event it is
resolving, the route it matched), an answer could come from the other request's route, body, path or key.
Every answer here is held to the route it was asked of: a status code that route gives, a body of that
route's model, and the content only this request could get (its task id, its filename, its path in a 404,
its field in a 422).

Threads switch every 0.1 ms instead of every 5 ms during the burst, so that a race between two invocations
shows in a few thousand requests rather than once in a while.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from i2v.api import ProviderInfo, WebhookSecret
from i2v.models import TaskPage, TaskView, UploadTicket
from i2v.providers.registry import PROVIDERS
from i2v_local.simulator import Simulator
from i2v_local.stack import LocalStack
from tests.e2e.flows import create

pytestmark = pytest.mark.e2e

REQUESTS = 2000
CLIENTS = 24

Check = Callable[[int, Any], str | None]  # (status, JSON body) -> what is wrong with it, or None


@dataclass(frozen=True)
class Call:
    kind: str
    method: str
    path: str
    check: Check
    params: dict[str, Any] | None = None
    body: Any = None
    key: str | None = None  # another bearer key than the stack's


def problem(status: int, title: str, detail: str | None = None, field: str | None = None) -> Check:
    """A problem body with this status and title (and this detail, or an error about this field)."""

    def check(got: int, body: Any) -> str | None:
        if got != status or not isinstance(body, dict):
            return f"expected {status} {title!r}"
        if (body.get("status"), body.get("title")) != (status, title):
            return f"problem {body.get('status')} {body.get('title')!r} is not {status} {title!r}"
        if detail is not None and body.get("detail") != detail:
            return f"detail {body.get('detail')!r} is not {detail!r}"
        if field is not None and [e["field"] for e in body.get("errors", [])] != [field]:
            return f"errors {body.get('errors')} are not about {field}"
        return None

    return check


def model(status: int, adapter: TypeAdapter[Any], holds: Callable[[Any], bool] = lambda _: True) -> Check:
    """A body of the route's model, with content only this request could get."""

    def check(got: int, body: Any) -> str | None:
        if got != status:
            return f"expected {status}"
        try:
            value = adapter.validate_python(body)
        except ValueError as exc:
            return f"not a {adapter}: {exc}"
        return None if holds(value) else "a body of the right model but for another request"

    return check


TASK = TypeAdapter(TaskView)
PAGE = TypeAdapter(TaskPage)
TICKET = TypeAdapter(UploadTicket)
PROVIDER_LIST = TypeAdapter(list[ProviderInfo])
SECRET = TypeAdapter(WebhookSecret)
OPENAPI = TypeAdapter(dict[str, Any])


def mixed_calls(existing: list[str], secret: str, count: int, rng: random.Random) -> list[Call]:
    """`count` requests over every route in random order; `existing`: the tenant's tasks, oldest first."""
    newest_first = existing[::-1]

    def one(i: int) -> Call:
        task_id, missing = rng.choice(existing), f"vid_missing{i:05d}"
        limit = rng.randint(1, len(existing) + 1)
        makers: list[Callable[[], Call]] = [
            lambda: Call(
                "task",
                "GET",
                f"/v1/videos/{task_id}",
                model(200, TASK, lambda v: v.id == task_id and v.status == "submitted"),
            ),
            lambda: Call(
                "missing task",
                "GET",
                f"/v1/videos/{missing}",
                problem(404, "Task not found", f"no task {missing}"),
            ),
            lambda: Call(
                "cancel missing",
                "POST",
                f"/v1/videos/{missing}/cancel",
                problem(404, "Task not found", f"no task {missing}"),
            ),
            lambda: Call(
                "another tenant's key",
                "GET",
                f"/v1/videos/{task_id}",
                problem(401, "Invalid API key"),
                key=f"i2v_nobody_{i}",
            ),
            lambda: Call(
                "list",
                "GET",
                "/v1/videos",
                model(200, PAGE, lambda p: [t.id for t in p.items] == newest_first[:limit]),
                params={"limit": limit},
            ),
            lambda: Call(
                "list, limit out of range",
                "GET",
                "/v1/videos",
                problem(422, "Request validation failed", field="limit"),
                params={"limit": rng.choice([0, 101, 1000])},
            ),
            lambda: Call(
                "upload",
                "POST",
                "/v1/uploads",
                model(
                    201, TICKET, lambda t: t.url.endswith(f"-frame{i}.png") and f"-frame{i}.png?" in t.put_url
                ),
                body={"filename": f"frame{i}.png", "content_type": "image/png"},
            ),
            lambda: Call(
                "upload, bad filename",
                "POST",
                "/v1/uploads",
                problem(422, "Request validation failed", field="filename"),
                body={"filename": f"frames/{i}.png", "content_type": "image/png"},
            ),
            lambda: Call(
                "upload, bad content type",
                "POST",
                "/v1/uploads",
                problem(422, "Request validation failed", field="content_type"),
                body={"filename": f"frame{i}.gif", "content_type": "image/gif"},
            ),
            lambda: Call(
                "providers",
                "GET",
                "/v1/providers",
                model(200, PROVIDER_LIST, lambda ps: {p.name for p in ps} == set(PROVIDERS)),
            ),
            lambda: Call(
                "webhook secret",
                "GET",
                "/v1/webhooks/secret",
                model(200, SECRET, lambda s: s.secret == secret),
            ),
            lambda: Call(
                "openapi",
                "GET",
                "/openapi.json",
                model(200, OPENAPI, lambda d: "/v1/uploads" in d.get("paths", {})),
            ),
            lambda: Call(
                "create, duration out of range",
                "POST",
                "/v1/videos",
                problem(422, "Request validation failed", field="duration"),
                body={"prompt": f"p{i}", "duration": 16 + i},
            ),
            lambda: Call(
                "create, no media",
                "POST",
                "/v1/videos",
                problem(
                    422,
                    "Request validation failed",
                    "image_url: one of image_url or video_url is required",
                ),
                body={"prompt": f"p{i}", "duration": 2 + i % 14},
            ),
            lambda: Call(
                "create, unknown field",
                "POST",
                "/v1/videos",
                problem(422, "Request validation failed", field=f"colour{i}"),
                body={"image_url": "https://127.0.0.1:9/a.png", f"colour{i}": "red"},
            ),
            lambda: Call(
                "unknown route",
                "GET",
                f"/v1/nothing/{i}",
                problem(404, "Not found", f"no route GET /v1/nothing/{i}"),
            ),
            lambda: Call(
                "wrong method",
                "DELETE",
                f"/v1/videos/{task_id}",
                problem(405, "Method not allowed", f"/v1/videos/{task_id} answers GET, not DELETE"),
            ),
        ]
        return rng.choice(makers)()

    return [one(i) for i in range(count)]


@pytest.fixture
def tasks(sims: dict[str, Simulator], api: httpx.Client, image_url: str) -> list[str]:
    """Four tasks in flight (the simulator holds them), oldest first."""
    sims["local"].faults.stall = True
    return [create(api, {"image_url": image_url, "duration": 2 + n})["id"] for n in range(4)]


@pytest.fixture
def fine_interleaving() -> Iterator[None]:
    default = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(default)


def test_every_answer_under_concurrent_mixed_requests_is_its_own_routes_answer(
    stack: LocalStack, api: httpx.Client, tasks: list[str], fine_interleaving: None
) -> None:
    secret = api.get("/v1/webhooks/secret").json()["secret"]
    calls = mixed_calls(tasks, secret, REQUESTS, random.Random(7))
    local = threading.local()

    def send(call: Call) -> tuple[Call, str | None]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=stack.url, timeout=30)
        key = call.key or stack.api_key
        resp = local.client.request(
            call.method,
            call.path,
            params=call.params,
            json=call.body,
            headers={"Authorization": f"Bearer {key}"},
        )
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        wrong = call.check(resp.status_code, body)
        return call, None if wrong is None else f"{resp.status_code} {wrong}: {str(body)[:200]}"

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(send, calls))
    elapsed = time.monotonic() - started

    kinds = Counter(call.kind for call in calls)
    assert len(kinds) == 17  # every kind of request was in the burst
    wrong = [(call.kind, call.method, call.path, what) for call, what in answers if what]
    assert not wrong, (
        f"{len(wrong)} of {len(calls)} answers in {elapsed:.1f} s were not their own: {wrong[:10]}"
    )
