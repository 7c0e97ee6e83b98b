"""What the API and the webhooks show of a task: its view, with a fresh presigned output URL."""

from __future__ import annotations

from datetime import UTC, datetime

from i2v.models import (
    DeliveryAttemptView,
    RequestProblem,
    Status,
    Task,
    TaskLinks,
    TaskView,
    WebhookDelivery,
    WebhookDeliveryView,
)
from i2v.presign import presign_get
from i2v.runtime import Runtime


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def task_for_tenant(rt: Runtime, tenant: str, task_id: str) -> Task:
    task = rt.tasks.get(task_id)
    if task is None or task.tenant != tenant:  # another tenant's task does not exist for you
        raise RequestProblem(404, "Task not found", detail=f"no task {task_id}")
    return task


def view(rt: Runtime, task: Task, with_webhook: bool = False, with_queue: bool = False) -> TaskView:
    """The task as the API shows it. An ended task shows no queue state (the provider's word for where the
    job was is stale once it ended) and no cancel link (nothing is left to cancel). `with_queue`: a task
    waiting for a provider slot shows its place (a count query: a single task's view, not a listing's)."""
    output_url = expires_at = None
    ended = task.status.terminal
    place = None
    if with_queue and task.queue_sk is not None and not ended:
        from i2v.capacity import place as queue_place

        place = queue_place(rt, task)
    waited = None
    if task.submitted_at is not None:
        waited = task.submitted_at - task.created_at
    elif not ended:
        waited = rt.now() - task.created_at
    if task.status is Status.SUCCEEDED and task.output:
        output_url, expires_at = presign_get(
            rt.s3, rt.settings.bucket_name, task.output.key, rt.settings.presign_seconds
        )
    return TaskView(
        id=task.id,
        status=task.status,
        mode=task.mode,
        progress=task.progress,
        source=task.source,
        source_key=task.source_key,
        queue_state=None if ended else task.queue_state,
        provider=task.provider,
        request=task.request,
        output_url=output_url,
        expires_at=expires_at,
        output=task.output,
        error=task.error,
        cost=task.cost,
        attempts=task.attempts,
        queue=place,
        queue_wait_seconds=waited,
        webhook=webhook_view(rt.records.delivery(task.id))
        if with_webhook and task.request.webhook_url
        else None,
        created_at=iso(task.created_at),
        updated_at=iso(task.updated_at),
        links=TaskLinks(
            self=f"/v1/videos/{task.id}", cancel=None if ended else f"/v1/videos/{task.id}/cancel"
        ),
    )


def webhook_view(delivery: WebhookDelivery) -> WebhookDeliveryView:
    """The stored delivery log (epoch seconds) with ISO 8601 times, as every time the API shows."""
    return WebhookDeliveryView(
        delivered=delivery.delivered,
        attempts=[DeliveryAttemptView(at=iso(a.at), result=a.result) for a in delivery.attempts],
    )
