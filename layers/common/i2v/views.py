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


def view(rt: Runtime, task: Task, with_webhook: bool = False) -> TaskView:
    """The task as the API shows it. An ended task shows no queue state (the provider's word for where the
    job was is stale once it ended) and no cancel link (nothing is left to cancel)."""
    output_url = expires_at = None
    ended = task.status.terminal
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
