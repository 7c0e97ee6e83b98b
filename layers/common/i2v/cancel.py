"""Cancel: end a task the client no longer wants. Stopping the provider's job is a step of its end."""

from __future__ import annotations

from i2v.models import RequestProblem, Status, Task
from i2v.notify import conclude
from i2v.runtime import Runtime
from i2v.views import iso, task_for_tenant


def cancel(rt: Runtime, tenant: str, task_id: str) -> Task:
    """The cancelled task, or a 409 if it ended first or its video is being stored."""
    task = task_for_tenant(rt, tenant, task_id)
    moved = None if task.status.terminal else conclude(rt, task_id, Status.CANCELLED)
    if moved is not None:
        return moved
    now = rt.tasks.require(task_id)
    if now.status.terminal:
        raise RequestProblem(409, "Task already finished", detail=f"{_ended(now)}; nothing to cancel")
    raise RequestProblem(
        409, "Task is finishing", detail="its video is being stored; it can no longer be cancelled"
    )


_ENDED = {
    Status.SUCCEEDED: "it succeeded",
    Status.FAILED: "it failed",
    Status.CANCELLED: "it was cancelled",
    Status.TIMED_OUT: "it timed out",
}


def _ended(task: Task) -> str:
    """How and when the task ended, in words: "it succeeded at 2026-11-25T10:00:00+00:00"."""
    when = task.finished_at or task.updated_at
    return f"{_ENDED[task.status]} at {iso(when)}"
