"""Submit: send an accepted task to the first capable provider that takes it, holding the submit lease.

The order of writes is the safety argument: each send is recorded before it happens and the provider's job
id the moment it is known, so a crash anywhere leaves a task the sweeper can finish without paying twice.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
from aws_lambda_powertools import Logger

from i2v import capacity, layout, pacing
from i2v.capacity import Take
from i2v.models import MEDIA_FIELDS, Attempt, Status, Task, TaskError, VideoRequest
from i2v.notify import end
from i2v.presign import presign_get
from i2v.providers.base import (
    DeadlineReached,
    Provider,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    SubmitOutcomeUnknown,
)
from i2v.runtime import Runtime
from i2v.store import Claim
from i2v.views import iso

logger = Logger(child=True)


def callback_token(rt: Runtime, task_id: str) -> str:
    return token_under(rt.settings.secret("callback_secret"), task_id)


def token_under(secret: str, task_id: str) -> str:
    """A task's callback token: the HMAC-SHA256 of its id under the callback secret."""
    return hmac.new(secret.encode(), task_id.encode(), hashlib.sha256).hexdigest()


def callback_path(rt: Runtime, provider: str, task_id: str) -> str:
    """Path and query of a task's callback URL (the route of the callback function, with its token)."""
    return f"/v1/callbacks/{provider}/{task_id}?token={callback_token(rt, task_id)}"


def provider_view(rt: Runtime, task: Task) -> VideoRequest:
    """The request as a provider sees it: our s3:// inputs become presigned GETs valid to the deadline."""
    bucket = rt.settings.bucket_name
    seconds = max(rt.settings.presign_seconds, task.deadline_at - rt.now())
    changes: dict[str, Any] = {}
    for name in MEDIA_FIELDS:
        url = getattr(task.request, name)
        if url and url.startswith("s3://"):
            changes[name] = presign_get(rt.s3, bucket, layout.parse_s3_url(url, bucket), seconds)[0]
    return task.request.model_copy(update=changes)


def submit(rt: Runtime, task: Task, claim: Claim, deadline: float | None = None) -> Task:
    """Send the task (accepted, its submit lease held by `claim`). Never raises for provider trouble.

    Each send holds a slot of its provider (i2v.capacity): a provider with none free is passed over, and a
    task that finds no slot anywhere, or only hosts that refuse for now, waits in the fair queue. A task new
    to the gateway queues behind tasks already waiting rather than taking a slot before them.

    `deadline` (an `rt.client.clock` instant; default: the submit budget from now) bounds every send: time
    that runs out before a provider is sent to leaves the task to the sweeper, with its lease released.
    """
    if deadline is None:
        deadline = rt.client.deadline_in(rt.settings.submit_budget_seconds)
    if task.slot is None and task.queue_place is None and capacity.anyone_waiting(rt):
        return capacity.wait(rt, task, claim, list(task.attempts))
    req = provider_view(rt, task)
    attempts = list(task.attempts)
    held = task.slot  # a dispatch from the queue gave it this provider's slot: that one goes first
    wait_for_slot = False
    last_error = TaskError(code="no_provider", message="no provider accepted the task")
    for name in [*([held] if held else []), *(n for n in task.providers if n != held)]:
        provider = rt.providers.get(name)
        if provider is None:
            if held == name:  # the provider was unconfigured since: its slot is no use
                capacity.give_back(rt, task.id, name)
                held = None
            continue
        if rt.client.clock() + rt.client.min_attempt_seconds > deadline:
            # API Gateway gives up on the caller after 29 s: the next provider is the sweeper's to try (with
            # the slot the task holds, if it holds one).
            return _leave_to_sweeper(rt, task, claim, attempts)
        if held != name:
            got = capacity.take(rt, task.id, name, holding=claim)
            if got is Take.GONE:  # the lease is gone (a callback adopted the job, or it expired)
                return rt.tasks.require(task.id)
            if got is Take.FULL:
                attempts.append(Attempt(provider=name, at=iso(rt.now()), outcome="full"))
                wait_for_slot = True
                continue
            held = name
        callback = None
        if provider.capabilities.callback:
            callback = rt.settings.base_url() + callback_path(rt, name, task.id)
        # Record the send before it happens: after a crash this says "it may be there".
        attempts.append(Attempt(provider=name, at=iso(rt.now()), outcome="sent"))
        if rt.tasks.update(task.id, {Status.ACCEPTED}, holding=claim, attempts=attempts) is None:
            return rt.tasks.require(task.id)  # the lease is gone (a callback adopted the job, or it expired)
        try:
            job = _send(rt, provider, provider.submit(req, task.mode, callback), deadline)
        except SubmitOutcomeUnknown as exc:
            # The job may exist: never send it again, here or elsewhere (that could bill it twice). It keeps
            # its slot: the job may be running.
            record = rt.records.record_provider_outcome(name, ok=False, error=str(exc), fault=True)
            capacity.faulted(rt, record, name)
            attempts[-1] = attempts[-1].model_copy(update={"outcome": "unknown", "detail": str(exc)[:500]})
            if provider.capabilities.callback:
                # Its callback will name the job: wait for it (the sweeper fails the task if none comes).
                until = min(task.deadline_at, rt.now() + pacing.RECONCILE_SECONDS)
                return rt.tasks.release(claim, attempts=attempts, next_poll_at=until) or rt.tasks.require(
                    task.id
                )
            error = TaskError(code="submit_outcome_unknown", message=f"{name}: {exc}; not resubmitted")
            return end(rt, task.id, Status.FAILED, attempts=attempts, error=error)
        except DeadlineReached:
            # Not sent (again): this try proved nothing was made. The sweeper goes on with time of its own.
            attempts.pop()
            return _leave_to_sweeper(rt, task, claim, attempts)
        except ProviderError as exc:
            logger.warning("provider refused submit", provider=name, task_id=task.id, error=str(exc))
            # A 429 means our cap is above what the host runs for us now; a fault (5xx, no answer) that the
            # host is in trouble; a 4xx that this request is refused. No job was made: the slot goes back.
            fault = not isinstance(exc, ProviderRejected | ProviderRateLimited)
            record = rt.records.record_provider_outcome(name, ok=False, error=str(exc), fault=fault)
            if isinstance(exc, ProviderRateLimited):
                capacity.refused(rt, record, name, exc.retry_after)
            elif fault:
                capacity.faulted(rt, record, name)
            capacity.give_back(rt, task.id, name)
            held = None
            attempts[-1] = attempts[-1].model_copy(update={"outcome": "rejected", "detail": str(exc)[:500]})
            wait_for_slot = wait_for_slot or not isinstance(exc, ProviderRejected)
            code = exc.code or "provider_error"
            last_error = TaskError(code=code, message=f"{name}: {exc}", raw=exc.raw or None)
            continue
        capacity.accepted(rt, rt.records.record_provider_outcome(name, ok=True), name)
        attempts[-1] = attempts[-1].model_copy(update={"outcome": "accepted", "provider_task_id": job})
        moved = rt.tasks.transition(
            task.id,
            Status.SUBMITTED,
            provider=name,
            provider_task_id=job,
            attempts=attempts,
            next_poll_at=rt.now() + rt.settings.poll_interval_seconds,
        )
        if moved is None:
            moved = rt.tasks.require(task.id)
            if moved.status.terminal and moved.provider_task_id != job:
                # It was ended (cancelled, timed out) while we were sending: stop the job no one will use.
                logger.warning("task ended during its submit; cancelling the new job", task_id=task.id)
                _stop(rt, provider, job)
        return moved
    if wait_for_slot:
        # Every provider was full, busy or down: the task waits for a slot, in its place in the queue.
        return capacity.wait(rt, task, claim, attempts)
    return end(rt, task.id, Status.FAILED, attempts=attempts, error=last_error)


def _leave_to_sweeper(rt: Runtime, task: Task, claim: Claim, attempts: list[Attempt]) -> Task:
    """The time budget ran out with no job made: release the lease, due for the next sweep at once."""
    logger.info("submit budget spent; left to the sweeper", task_id=task.id)
    return rt.tasks.release(claim, attempts=attempts, next_poll_at=rt.now()) or rt.tasks.require(task.id)


def _send(rt: Runtime, provider: Provider, request: httpx.Request, deadline: float) -> str:
    """One submit through the engine, with the host's own "not created" answers; the provider's job id.

    A success whose answer names no job cannot be failed over either: the host took the job."""
    resp = rt.client.send(
        request, is_submit=True, not_created=provider.capabilities.submit_not_created, deadline=deadline
    )
    try:
        return provider.parse_submit(resp)
    except ProviderError as exc:
        if resp.is_success:
            raise SubmitOutcomeUnknown(f"unreadable answer to submit: {exc}", raw=exc.raw) from exc
        raise


def _stop(rt: Runtime, provider: Provider, job: str) -> None:
    request = provider.cancel(job)
    if request is not None:
        try:
            rt.client.send(request)
        except ProviderError as exc:
            logger.warning("could not cancel an unused job", provider=provider.name, job=job, error=str(exc))
