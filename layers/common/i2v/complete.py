"""Complete: learn where a provider's job is, by its callback or by asking, and record it.

A callback body is never trusted: the per-task token is checked, then the provider's status API is asked.
A finished job goes to the ingest queue; the lifecycle decides what every other answer moves.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

import httpx
from aws_lambda_powertools import Logger

from i2v import capacity, lifecycle, pacing
from i2v.messages import IngestMessage
from i2v.models import RequestProblem, Status, Task, TaskError
from i2v.notify import end
from i2v.providers.base import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    UnknownProviderStatus,
    json_or_none,
)
from i2v.runtime import DocumentUnavailable, Runtime
from i2v.submit import callback_path, callback_token

logger = Logger(child=True)


def on_callback(
    rt: Runtime,
    provider: str,
    task_id: str,
    token: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> Task:
    """Verify the per-task token and, where the host signs its callbacks, the signature; then trust only
    what the provider's status API says. A callback refused on either changes nothing."""
    # Bytes, not str: compare_digest refuses non-ASCII str, and anyone can send any token.
    given = token.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(callback_token(rt, task_id).encode(), given):
        raise RequestProblem(401, "Invalid callback token")
    task = rt.tasks.get(task_id)
    last = task.attempts[-1] if task and task.attempts else None
    if task is None or provider != (task.provider or (last.provider if last else None)):
        raise RequestProblem(404, "Unknown task")
    adapter = rt.providers.get(provider)
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        refusal = adapter.callback_refusal(lowered, body, rt.clock(), rt.public_json) if adapter else None
    except DocumentUnavailable as exc:
        # The host's keys could not be had: nothing is decided, and a non-2xx makes the host call again.
        logger.warning("callback signature not checkable", task_id=task_id, provider=provider, error=str(exc))
        raise RequestProblem(503, "Callback signature cannot be checked now") from None
    if refusal:
        logger.warning("callback signature refused", task_id=task_id, provider=provider, reason=refusal)
        raise RequestProblem(401, "Invalid callback signature", detail=refusal)
    if task.status.terminal:
        return task
    if task.status is Status.ACCEPTED and last is not None and last.outcome in ("sent", "unknown"):
        # Sent, but no provider id recorded yet: a slow or lost submit answer. The callback names the job.
        return _reconcile(rt, task, body)
    return refresh(rt, task)


def _reconcile(rt: Runtime, task: Task, body: bytes) -> Task:
    """A submit whose answer was lost: the callback names the provider's job; adopt it once the provider's
    own status answer ties that job to this task.

    The callback body is a hint from whoever holds the token; the provider account is shared by every task,
    so a job that merely exists could be another task's. Only a job whose status echoes the callback URL
    this task sent is adopted; otherwise the task waits, and fails as submit_outcome_unknown when its
    reconcile window ends (never paying twice).
    """
    last = task.attempts[-1]
    provider = rt.providers.get(last.provider)
    job = provider.callback_task_id(body) if provider else None
    if provider is None or not job:
        return task
    if not JOB_ID.fullmatch(job):
        logger.warning("callback named a job id no provider uses", task_id=task.id, job=job[:200])
        return task
    try:
        answer = rt.client.send(provider.status(job))
        status = provider.parse_status(answer)
    except ProviderError as exc:
        logger.warning("callback named a job the provider does not confirm", task_id=task.id, error=str(exc))
        return task
    # The end of the callback URL this task's submit sent (the API's base URL may have moved since).
    if not _echoes_callback(answer, callback_path(rt, last.provider, task.id)):
        logger.warning("callback named a job not tied to this task", task_id=task.id, job=job)
        return task
    adopted = last.model_copy(
        update={"outcome": "accepted", "provider_task_id": job, "detail": "job id learnt from its callback"}
    )
    moved = rt.tasks.transition(
        task.id,
        Status.SUBMITTED,
        provider=last.provider,
        provider_task_id=job,
        attempts=[*task.attempts[:-1], adopted],
        next_poll_at=rt.now() + rt.settings.poll_interval_seconds,
    )
    if moved is None:
        # The submit recorded the job first (its answer came after all): the callback's news is still news.
        moved = rt.tasks.require(task.id)
        if moved.status.terminal or moved.provider_task_id != job:
            return moved
    return record_status(rt, moved, status)


# Job ids the hosts hand out: uuids, `task-unified-…`, numbers. Anything else never reaches a URL path.
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Where hosts that echo a callback URL keep it in a status answer: `callback_url`, or `webhook.url` in
# Novita's `extra`. Searched to this depth, so an answer cannot make the search expensive.
CALLBACK_KEYS = ("callback_url", "webhook_url")
ECHO_DEPTH = 4


def _echoes_callback(answer: httpx.Response, suffix: str) -> bool:
    data = json_or_none(answer.content)

    def found(value: Any, depth: int) -> bool:
        if depth > ECHO_DEPTH or not isinstance(value, dict):
            return False
        for key, item in value.items():
            if key in CALLBACK_KEYS and isinstance(item, str) and item.endswith(suffix):
                return True
            if key == "webhook" and isinstance(item, dict) and str(item.get("url", "")).endswith(suffix):
                return True
            if found(item, depth + 1):
                return True
        return False

    return found(data, 0)


def refresh(rt: Runtime, task: Task) -> Task:
    """Ask the provider where the job is and record it."""
    provider = rt.providers.get(task.provider or "")
    if provider is None or task.provider_task_id is None:
        return task
    try:
        status = provider.parse_status(rt.client.send(provider.status(task.provider_task_id)))
    except UnknownProviderStatus as exc:
        return _fail(rt, task, "unknown_provider_status", str(exc), exc.raw)
    except ProviderRejected as exc:
        if exc.status_code in (404, 410):  # the provider does not know the job (any more)
            return _fail(rt, task, exc.code or "not_found", f"status query: {exc}", exc.raw)
        # Anything else (a rotated key, a permission) may be fixed: keep asking until the deadline.
        logger.warning("status query refused", task_id=task.id, provider=task.provider, error=str(exc))
        return _later(rt, task, pacing.REFUSED_POLL_SECONDS)
    except ProviderError as exc:
        logger.warning("status query failed", task_id=task.id, error=str(exc))
        wait = exc.retry_after if isinstance(exc, ProviderRateLimited) else None
        return _later(rt, task, pacing.after_poll_error(wait))
    return record_status(rt, task, status)


def record_status(rt: Runtime, task: Task, status: ProviderStatus) -> Task:
    now = rt.now()
    # The provider's own figure for the job's cost, where its answer has one (kept for the task's end).
    spent: dict[str, Any] = {"reported_cost_usd": status.cost_usd} if status.cost_usd is not None else {}
    if status.state is ProviderState.SUCCEEDED:
        if not status.result_url:
            return _fail(rt, task, "no_result_url", "provider reported success without a URL", **spent)
        message = IngestMessage(task_id=task.id, result_url=status.result_url)
        rt.sqs.send_message(QueueUrl=rt.settings.ingest_queue_url, MessageBody=message.model_dump_json())
        until = now + pacing.INGEST_RECHECK_SECONDS
        moved = rt.tasks.update(
            task.id, result_url=status.result_url, progress=99, next_poll_at=until, **spent
        )
        if moved is not None and moved.slot is not None:
            # The job is done at the host: its slot goes to the next task while the video is copied.
            capacity.give_back(rt, moved.id, moved.slot)
            capacity.finished_job(rt, moved)
        return moved or rt.tasks.require(task.id)
    if status.state is ProviderState.FAILED:
        message_text = status.error_message or "the provider failed the task"
        code = status.error_code or "provider_failed"
        return _fail(rt, task, code, message_text, status.raw_status, **spent)
    if status.state is ProviderState.CANCELLED:
        return end(rt, task.id, Status.CANCELLED)
    changes: dict[str, Any] = {
        "queue_state": status.raw_status,
        "next_poll_at": now + pacing.next_poll(rt.settings, status.eta_seconds),
    }
    if status.progress is not None:
        changes["progress"] = max(0, min(int(status.progress), 99))
    target = lifecycle.reported(task.status, status.state)
    moved = rt.tasks.transition(task.id, target, **changes) if target else None
    return moved or rt.tasks.update(task.id, **changes) or rt.tasks.require(task.id)


def _fail(rt: Runtime, task: Task, code: str, message: str, raw: str | None = None, **changes: Any) -> Task:
    return end(rt, task.id, Status.FAILED, error=TaskError(code=code, message=message, raw=raw), **changes)


def _later(rt: Runtime, task: Task, seconds: int) -> Task:
    return rt.tasks.update(task.id, next_poll_at=rt.now() + seconds) or rt.tasks.require(task.id)
