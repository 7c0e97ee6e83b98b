"""The end of a task: the terminal write, and the steps owed after it (the outbox), then webhook delivery.

`conclude` is the one way a task ends. The terminal status and the steps still owed (cancel the provider's
job, discard a stray output, publish the event, queue the webhook) are written together on the task item,
so no end goes unannounced: the writer does the steps at once, and the sweeper does whatever a failure or a
crash left (the task stays in its due index until the outbox is empty). Each step is recorded when done,
so a retry repeats at most the one step that was under way; messages carry stable ids for that case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from i2v import capacity, layout, pacing, usage
from i2v.delivery import DeliveryFailed, post, signed_event, tenant_secret
from i2v.lifecycle import Step, Work
from i2v.media import UnsafeUrl
from i2v.messages import DeliveryMessage
from i2v.models import TERMINAL, Status, Task
from i2v.pricing import task_cost
from i2v.providers.base import ProviderRejected
from i2v.runtime import Runtime
from i2v.store import Claim
from i2v.views import view

logger = Logger(child=True)


def conclude(
    rt: Runtime, task_id: str, to: Status, *, holding: Claim | None = None, **changes: Any
) -> Task | None:
    """End a task (if the lifecycle allows it now) and do what its end owes; None if not ours to end."""
    moved = rt.tasks.transition(task_id, to, holding=holding, **changes)
    if moved is not None:
        finish(rt, moved)
    return moved


def end(rt: Runtime, task_id: str, to: Status, **changes: Any) -> Task:
    """`conclude`, returning the task as it now is whoever ended it."""
    return conclude(rt, task_id, to, **changes) or rt.tasks.require(task_id)


def finish(rt: Runtime, task: Task) -> str:
    """Do the steps an ended task still owes, holding the finish lease. A failed step is retried by the
    sweeper later; the task stays due until none is left."""
    if not task.outbox:
        return "done"
    claim = rt.tasks.claim(task.id, Work.FINISH, pacing.FINISH_LEASE_SECONDS, TERMINAL)
    if claim is None or claim.task is None:
        return "taken"
    current = claim.task
    steps = [Step(s) for s in current.outbox]
    try:
        while steps:
            current = _STEPS[steps[0]](rt, current) or current  # a step may return the task it changed
            steps = steps[1:]
            if rt.tasks.finished_step(claim, steps) is None:
                return "taken"  # our lease ran out and another finisher took over
    except Exception:
        logger.exception(
            "after-end step failed; the sweeper retries it", task_id=task.id, step=steps[0].value
        )
        rt.tasks.release(claim, next_poll_at=rt.now() + pacing.OUTBOX_RETRY_SECONDS)
        return "retry"
    return "done"


def _cancel_at_provider(rt: Runtime, task: Task) -> None:
    provider = rt.providers.get(task.provider or "")
    if provider is None or task.provider_task_id is None:
        return
    request = provider.cancel(task.provider_task_id)
    if request is None:
        return
    try:
        rt.client.send(request)
    except ProviderRejected as exc:  # it finished or is gone already: nothing left to stop
        logger.info("provider refused the cancel", task_id=task.id, error=str(exc))
    # Other provider errors raise: the job may still run (and bill), so the sweeper asks again.


def _release_slot(rt: Runtime, task: Task) -> None:
    """The provider slot the task still holds goes back (and to the next waiting task)."""
    if task.slot is not None:
        capacity.give_back(rt, task.id, task.slot)


def _discard_output(rt: Runtime, task: Task) -> None:
    """An ingest that stored the MP4 and died before it could end the task leaves an object no one may
    serve: remove it, if it is this task's (a drop-folder output key can be reused by a later upload)."""
    if not task.ingest_started:
        return
    bucket, key = rt.settings.bucket_name, layout.output_key(task)
    try:
        head = rt.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return
        raise
    if head.get("Metadata", {}).get("task-id") == task.id:
        rt.s3.delete_object(Bucket=bucket, Key=key)


def _publish(rt: Runtime, task: Task) -> None:
    if not rt.settings.event_bus_name:
        return
    detail = {
        "id": task.id,
        "tenant": task.tenant,
        "status": task.status.value,
        "output": task.output and task.output.key,
        "cost": task.cost and task.cost.model_dump(mode="json"),
    }
    sent = rt.events.put_events(
        Entries=[
            {
                "Source": "i2v.gateway",
                "DetailType": f"Video task {task.status.value}",
                "Detail": json.dumps(detail),
                "EventBusName": rt.settings.event_bus_name,
            }
        ]
    )
    if sent.get("FailedEntryCount"):  # PutEvents answers 200 with the entries it could not take
        raise RuntimeError(f"put_events refused the event: {sent['Entries']}")


def _notify(rt: Runtime, task: Task) -> None:
    if task.request.webhook_url and rt.settings.delivery_queue_url:
        message = DeliveryMessage(task_id=task.id)
        rt.sqs.send_message(QueueUrl=rt.settings.delivery_queue_url, MessageBody=message.model_dump_json())


def _record_cost(rt: Runtime, task: Task) -> Task | None:
    """The task's cost, and its tenant's usage with it: once, however often this step runs."""
    if task.cost is not None:
        return None
    return usage.record(rt, task, task_cost(rt.settings, task))


_STEPS: dict[Step, Callable[[Runtime, Task], Task | None]] = {
    Step.RECORD_COST: _record_cost,
    Step.CANCEL_AT_PROVIDER: _cancel_at_provider,
    Step.RELEASE_SLOT: _release_slot,
    Step.DISCARD_OUTPUT: _discard_output,
    Step.PUBLISH: _publish,
    Step.NOTIFY: _notify,
}


def deliver(rt: Runtime, message: DeliveryMessage) -> str:
    """POST an ended task's signed webhook. DeliveryFailed (for the queue to retry later) on a non-2xx."""
    task = rt.tasks.get(message.task_id)
    if task is None or not task.status.terminal or not task.request.webhook_url:
        return "skipped"
    owner = rt.records.claim_delivery(task.id, pacing.DELIVERY_LEASE_SECONDS)
    if owner is None:
        return "duplicate"  # delivered already, or another copy of this message is being delivered
    secret = tenant_secret(rt.settings.secret("webhook_secret"), task.tenant)
    headers, body = signed_event(view(rt, task), secret)
    url = task.request.webhook_url
    try:
        status = post(rt.fetcher, url, headers, body)
    except UnsafeUrl as exc:  # the host turned private since the task was created: never retried
        attempt = rt.records.record_delivery(task.id, owner, f"refused: {exc}", delivered=False)
        _log_failed_attempt(task.id, url, attempt, exc)
        return "refused"
    except (DeliveryFailed, httpx.HTTPError) as exc:
        attempt = rt.records.record_delivery(task.id, owner, str(exc), delivered=False)
        _log_failed_attempt(task.id, url, attempt, exc)
        raise
    rt.records.record_delivery(task.id, owner, f"HTTP {status}", delivered=True)
    return "delivered"


def _log_failed_attempt(task_id: str, url: str, attempt: int, exc: Exception) -> None:
    """One log line per failed attempt, for the operator: the receiver's host, the attempt's number and
    what happened (its HTTP status, or the error class and message behind "no answer"). The queue retries
    it; a traceback would say nothing more."""
    cause = exc.__cause__ or exc
    error = str(exc) if cause is exc else f"{type(cause).__name__}: {cause}"
    logger.warning(
        "webhook attempt failed",
        task_id=task_id,
        host=urlsplit(url).hostname,
        attempt=attempt,
        error=error,
    )
