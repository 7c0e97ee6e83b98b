"""A task whose submit answer was lost adopts the job a callback names only when the provider's own status
answer ties that job to this task; the token alone never attaches another job of the shared account."""

from __future__ import annotations

import json
from typing import Any

import pytest

from i2v.models import Attempt, Mode, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v.store import new_task_id
from i2v.submit import callback_token
from i2v_local.sim_local import LocalSimulator
from tests.support import invoke, load_event


@pytest.fixture(autouse=True)
def _stalled(local_sim: LocalSimulator, tenant: str) -> None:
    local_sim.faults.stall = True  # jobs stay queued: adoption, not rendering, is under test


def lost_submit(rt: Runtime) -> Task:
    """A task sent to `local` whose submit answer never came: accepted, its last attempt `unknown`."""
    now = rt.now()
    task = Task(
        id=new_task_id(rt.clock()),
        tenant="demo",
        status=Status.ACCEPTED,
        request=VideoRequest(image_url="https://media.example/cat.png"),
        mode=Mode.FIRST_FRAME,
        providers=["local"],
        attempts=[Attempt(provider="local", at="2026-11-25T00:00:00Z", outcome="unknown")],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_poll_at=now + 900,
    )
    return rt.tasks.create(task)[0]


def job_for(rt: Runtime, task_id: str) -> str:
    """A job at the local provider made (as a submit makes it) with `task_id`'s callback URL."""
    provider = rt.providers["local"]
    callback = f"{rt.settings.base_url()}/v1/callbacks/local/{task_id}?token={callback_token(rt, task_id)}"
    req = VideoRequest(image_url="https://media.example/cat.png")
    return provider.parse_submit(rt.client.send(provider.submit(req, Mode.FIRST_FRAME, callback)))


def callback(rt: Runtime, task_id: str, body: dict[str, Any] | str, base64_encoded: bool = False) -> int:
    event = load_event("callback.json")
    token = callback_token(rt, task_id)
    text = body if isinstance(body, str) else json.dumps(body)
    event.update(path=f"/v1/callbacks/local/{task_id}", body=text, isBase64Encoded=base64_encoded)
    event["pathParameters"] = {"provider": "local", "task_id": task_id}
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    status: int = invoke("callback", event)["statusCode"]
    return status


def test_a_callback_naming_its_own_job_is_adopted(rt: Runtime) -> None:
    task = lost_submit(rt)
    own = job_for(rt, task.id)
    assert callback(rt, task.id, {"id": own, "status": "queued"}) == 200
    adopted = rt.tasks.require(task.id)
    assert adopted.status is Status.SUBMITTED
    assert adopted.provider_task_id == own
    assert adopted.attempts[-1].detail == "job id learnt from its callback"


def test_a_callback_naming_another_tasks_job_changes_nothing(rt: Runtime) -> None:
    task = lost_submit(rt)
    other = job_for(rt, lost_submit(rt).id)  # a job of the same account, made for another task
    assert callback(rt, task.id, {"id": other, "status": "queued"}) == 200
    assert rt.tasks.require(task.id) == task


@pytest.mark.parametrize("job", ["../../v1/tasks", "a/b", "x?y=1", "a b", "é", "-x", "x" * 129])
def test_a_callback_naming_an_id_no_host_uses_is_not_even_asked_about(
    rt: Runtime, local_sim: LocalSimulator, job: str
) -> None:
    task = lost_submit(rt)
    local_sim.faults.rate_limit_polls = 1  # a status query would spend it
    assert callback(rt, task.id, {"id": job}) == 200
    assert rt.tasks.require(task.id) == task
    assert local_sim.faults.rate_limit_polls == 1


@pytest.mark.parametrize(
    ("body", "base64_encoded"),
    [
        ('{"id": ' + "1" * 5000 + "}", False),  # past int(str)'s 4,300 digits
        ("[" * 100_000 + "]" * 100_000, False),  # past the recursion limit
        ("//79", True),  # base64 of bytes that are not UTF-8
        ("%%%", True),  # not base64
    ],
    ids=["5000-digit-number", "deep-nesting", "base64-not-utf8", "not-base64"],
)
def test_a_callback_body_that_cannot_be_read_is_no_hint_and_changes_nothing(
    rt: Runtime, body: str, base64_encoded: bool
) -> None:
    task = lost_submit(rt)
    assert callback(rt, task.id, body, base64_encoded) == 200
    assert rt.tasks.require(task.id) == task


def test_a_callback_that_loses_the_race_to_the_submits_own_answer_still_applies_what_it_says(
    rt: Runtime, local_sim: LocalSimulator
) -> None:
    from i2v.complete import on_callback

    task = lost_submit(rt)
    own = job_for(rt, task.id)
    local_sim.tasks[own].state, local_sim.tasks[own].error = "failed", "content refused"  # it failed at once
    send = rt.client.send

    def submit_answer_arrives_meanwhile(request: Any, **kwargs: Any) -> Any:
        # While the callback asks the provider, the submit's own answer comes and records the job.
        rt.tasks.transition(task.id, Status.SUBMITTED, provider="local", provider_task_id=own)
        return send(request, **kwargs)

    rt.client.send = submit_answer_arrives_meanwhile  # type: ignore[method-assign]
    on_callback(rt, "local", task.id, callback_token(rt, task.id), json.dumps({"id": own}).encode())

    ended = rt.tasks.require(task.id)
    assert ended.status is Status.FAILED  # not left `submitted` until a poll happens to find it
    assert ended.error is not None
    assert ended.error.message == "content refused"
