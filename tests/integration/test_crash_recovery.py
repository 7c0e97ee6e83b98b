"""A crash at any step leaves a task the sweeper can finish: each case stops a flow where a crash would."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3

from i2v.lifecycle import Work
from i2v.models import Mode, Status, Task, VideoRequest
from i2v.runtime import Runtime
from i2v.store import new_task_id
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.support import invoke, load_event


def past() -> int:
    return int(time.time()) - 1


def run_sweeper() -> dict[str, int]:
    outcomes: dict[str, int] = invoke("sweeper", load_event("schedule.json"))
    return outcomes


def pump_ingest(aws: LocalResources) -> None:
    """Hand what is on the ingest queue to the ingest function, as its SQS event source would."""
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=aws.refs["IngestQueue"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    records: list[dict[str, Any]] = [
        {**load_event("sqs_ingest.json")["Records"][0], "messageId": m["MessageId"], "body": m["Body"]}
        for m in got.get("Messages", [])
    ]
    assert records, "nothing was queued for ingest"
    invoke("ingest", {"Records": records})


def wait_rendered(sim: LocalSimulator) -> None:
    deadline = time.monotonic() + 30
    while not any(t.state == "succeeded" for t in sim.tasks.values()):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_task_stored_but_never_submitted_is_submitted_by_the_sweeper(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, media_server: tuple[Path, str]
) -> None:
    # The API function died between writing the task and calling the provider.
    now = int(time.time())
    task = Task(
        id=new_task_id(),
        tenant=tenant,
        status=Status.ACCEPTED,
        request=VideoRequest(image_url=f"{media_server[1]}/sample.png", duration=2, resolution="720p"),
        mode=Mode.FIRST_FRAME,
        providers=["local"],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_poll_at=past(),
    )
    rt.tasks.create(task)
    assert run_sweeper() == {"submitted": 1}
    assert local_sim.submits == 1
    stored = rt.tasks.get(task.id)
    assert stored is not None
    assert stored.provider_task_id in local_sim.tasks


def test_submit_interrupted_after_sending_is_failed_not_sent_twice(
    rt: Runtime, tenant: str, local_sim: LocalSimulator
) -> None:
    now = int(time.time())
    task = Task.model_validate(
        {
            "id": new_task_id(),
            "tenant": tenant,
            "status": "accepted",
            "request": {"image_url": "https://media.example/a.png"},
            "mode": "first_frame",
            "providers": ["local"],
            "attempts": [{"provider": "local", "at": "2026-01-01T00:00:00+00:00", "outcome": "sent"}],
            "created_at": now,
            "updated_at": now,
            "deadline_at": now + 3600,
            "next_poll_at": past(),
        }
    )
    rt.tasks.create(task)
    assert run_sweeper() == {"failed": 1}
    stored = rt.tasks.get(task.id)
    assert stored is not None
    assert stored.error is not None
    assert stored.error.code == "submit_outcome_unknown"
    assert local_sim.submits == 0


def test_ingest_that_died_mid_copy_is_redone_once_its_claim_lapses(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, aws: LocalResources
) -> None:
    local_sim.faults.drop_callbacks = True
    result = invoke("api", load_event("api_create.json"))
    assert result["statusCode"] == 202
    created = json.loads(result["body"])
    wait_rendered(local_sim)
    rt.tasks.update(created["id"], next_poll_at=past())
    run_sweeper()  # sees the success, queues the ingest
    # The ingest function took the claim and died before copying anything; its message is gone.
    assert rt.tasks.claim(created["id"], Work.INGEST, 600)
    boto3.client("sqs").purge_queue(QueueUrl=aws.refs["IngestQueue"])
    rt.tasks.update(created["id"], lease_ingest_until=past(), next_poll_at=past())  # time passes
    run_sweeper()
    pump_ingest(aws)
    stored = rt.tasks.get(created["id"])
    assert stored is not None
    assert stored.status is Status.SUCCEEDED
    assert stored.output is not None
