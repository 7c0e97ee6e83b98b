"""Use cases: create and submit a task, learn of completion (callback or poll), ingest, cancel.

Each public method is what one handler calls. The order of writes is the safety argument: the task is
stored before any provider is called, the provider's task id the moment it is known, and every in-flight
task has a `next_poll_at`, so a crash anywhere leaves work the sweeper picks up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import PurePosixPath
from typing import Any

import boto3
import httpx
from aws_lambda_powertools import Logger

from i2v.config import Settings
from i2v.delivery import DeliveryFailed, post, signed_event, tenant_secret
from i2v.media import (
    IngestError,
    UnsafeUrl,
    guarded_client,
    parse_s3_url,
    presign_get,
    resolve_public,
    s3_client,
    stream_to_s3,
)
from i2v.models import (
    IN_FLIGHT,
    Attempt,
    FieldError,
    Mode,
    RequestProblem,
    Status,
    Task,
    TaskError,
    TaskLinks,
    TaskView,
    VideoRequest,
)
from i2v.probe import Kind, MediaInfo, ProbeError, limit_violations, probe
from i2v.providers import registry
from i2v.providers.base import (
    Provider,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    SubmitOutcomeUnknown,
    UnknownProviderStatus,
)
from i2v.providers.client import ProviderClient
from i2v.store import TaskStore, new_task_id

logger = Logger(child=True)

MEDIA_KINDS: dict[str, Kind] = {
    "image_url": "image",
    "last_frame_url": "image",
    "video_url": "video",
    "audio_url": "audio",
}
INGEST_LEASE_SECONDS = 600
RECONCILE_SECONDS = 900  # how long a submit with a lost answer waits for the provider's callback
INGEST_RECHECK_SECONDS = 120  # if the ingest message is lost, the sweeper looks again after this
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def request_hash(req: VideoRequest) -> str:
    return hashlib.sha256(req.model_dump_json(exclude_defaults=False).encode()).hexdigest()


@dataclass
class Gateway:
    settings: Settings
    store: TaskStore
    client: ProviderClient = field(default_factory=ProviderClient)
    clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        store = TaskStore(
            settings.table_name, due_shards=settings.due_shards, ttl_days=settings.task_ttl_days
        )
        return cls(
            settings=settings, store=store, client=ProviderClient(timeout=settings.http_timeout_seconds)
        )

    @cached_property
    def providers(self) -> dict[str, Provider]:
        # On first use: the ingest function never needs them, nor permission to read their keys.
        return registry.configured(self.settings)

    @cached_property
    def fetcher(self) -> httpx.Client:
        return guarded_client(self.settings.allow_private_urls)

    def now(self) -> int:
        return int(self.clock())

    # -- create & submit --------------------------------------------------------------------------
    def create_task(
        self,
        tenant: str,
        req: VideoRequest,
        idempotency_key: str | None = None,
        source: str = "api",
        source_key: str | None = None,
    ) -> tuple[Task, bool]:
        """Validate, route, store, then submit.

        Returns (task, created); a replayed idempotency key returns the first task.
        """
        mode = req.resolved_mode()
        idem = (idempotency_key, request_hash(req)) if idempotency_key else None
        if idem:
            # A replay is answered before the media are fetched again (their URLs may have expired since).
            replayed = self.store.idempotent_task(tenant, *idem)
            if replayed is not None:
                return replayed, False
        for name in MEDIA_KINDS:
            url = getattr(req, name)
            if url and url.startswith("s3://"):
                self._own_object(tenant, name, url)
        if req.webhook_url:
            self._check_webhook_url(req.webhook_url)
        media = self.probe_media(req)
        chosen = self.route(req, mode, alpha=any(info.has_alpha for info in media.values()))
        now = self.now()
        task = Task(
            id=new_task_id(self.clock()),
            tenant=tenant,
            status=Status.ACCEPTED,
            request=req,
            mode=mode,
            source="s3" if source == "s3" else "api",
            source_key=source_key,
            providers=chosen,
            created_at=now,
            updated_at=now,
            deadline_at=now + self.settings.task_deadline_seconds,
            # The sweeper's safety net from the start, but not before this submit could have finished.
            next_poll_at=now + self.settings.submit_grace_seconds,
        )
        stored, created = self.store.create(task, idem)  # the transaction settles concurrent first uses
        if created:
            stored = self.submit(stored)
        return stored, created

    def _own_object(self, tenant: str, field_name: str, url: str) -> None:
        try:
            key = parse_s3_url(url, self.settings.bucket_name)
        except RequestProblem as problem:
            raise RequestProblem.invalid(field_name, problem.errors[0].message) from None
        if not key.startswith((f"inputs/{tenant}/", f"uploads/{tenant}/")):
            raise RequestProblem.invalid(field_name, "s3 URL must name one of your own uploads")

    def probe_media(self, req: VideoRequest) -> dict[str, MediaInfo]:
        """Read each input's header through the URL guard and hold it to the model's limits.

        A request the model would reject is a 422 here, before any provider is paid.
        """
        if not self.settings.probe_media:
            return {}
        found: dict[str, MediaInfo] = {}
        errors: list[FieldError] = []
        for name, kind in MEDIA_KINDS.items():
            url = getattr(req, name)
            if not url:
                continue
            try:
                info = probe(self.fetcher, self._fetchable(url), kind)
            except (UnsafeUrl, ProbeError) as exc:
                errors.append(FieldError(field=name, message=f"cannot be used: {exc}"))
                continue
            found[name] = info
            errors += [FieldError(field=name, message=message) for message in limit_violations(info)]
        clip = found.get("video_url")
        if clip and clip.duration and req.duration + 0.1 < clip.duration:
            message = f"is the total length in video_continuation: at least the clip's {clip.duration:.1f} s"
            errors.append(FieldError(field="duration", message=message))
        if errors:
            raise RequestProblem(422, "Media outside the model's limits", errors)
        return found

    def _check_webhook_url(self, url: str) -> None:
        """Refuse now what delivery would refuse later: plain http (but on the local stack), private hosts."""
        if not url.startswith("https://") and not self.settings.allow_private_urls:
            raise RequestProblem.invalid("webhook_url", "must be an https URL")
        try:
            resolve_public(url, self.settings.allow_private_urls)
        except UnsafeUrl as exc:
            raise RequestProblem.invalid("webhook_url", f"cannot be used: {exc}") from None

    def _fetchable(self, url: str) -> str:
        if not url.startswith("s3://"):
            return url
        key = parse_s3_url(url, self.settings.bucket_name)
        return presign_get(self.settings.bucket_name, key, 300)[0]

    def route(self, req: VideoRequest, mode: Mode, alpha: bool = False) -> list[str]:
        """Eligible providers in order. A provider the client named that cannot serve the request is a 422."""
        asked = req.providers()
        if asked:
            for name in asked:
                if name not in registry.PROVIDERS:
                    raise RequestProblem.invalid(
                        "provider", f"unknown provider {name!r}; see GET /v1/providers"
                    )
                if name not in self.providers:
                    raise RequestProblem.invalid("provider", f"{name} is not configured on this gateway")
                refusal = self.providers[name].capabilities.refusal(req, mode, alpha)
                if refusal:
                    raise RequestProblem.invalid("provider", f"{name} {refusal}")
            return asked
        order = [n for n in self.settings.default_providers if n in self.providers]
        eligible = [n for n in order if self.providers[n].capabilities.refusal(req, mode, alpha) is None]
        # A host failing right now goes last rather than first; it stays as a last resort.
        health = self.store.provider_health(eligible)
        eligible.sort(key=lambda n: health[n].degraded(self.now()))
        if not eligible:
            raise RequestProblem(
                422,
                "No provider can serve this request",
                detail=f"configured providers: {', '.join(order) or 'none'}",
            )
        return eligible

    def callback_token(self, task_id: str) -> str:
        secret = self.settings.secret("callback_secret").encode()
        return hmac.new(secret, task_id.encode(), hashlib.sha256).hexdigest()

    def _provider_view(self, task: Task) -> VideoRequest:
        """The request as a provider sees it: our s3:// inputs become presigned GETs valid to the deadline."""
        seconds = max(self.settings.presign_seconds, task.deadline_at - self.now())
        changes: dict[str, Any] = {}
        for name in ("image_url", "last_frame_url", "video_url", "audio_url"):
            url = getattr(task.request, name)
            if url and url.startswith("s3://"):
                changes[name] = presign_get(
                    self.settings.bucket_name, parse_s3_url(url, self.settings.bucket_name), seconds
                )[0]
        return task.request.model_copy(update=changes)

    def submit(self, task: Task) -> Task:
        """Send an accepted task to the first provider that takes it. Never raises for provider trouble."""
        req = self._provider_view(task)
        attempts = list(task.attempts)
        retry_later = False
        last_error = TaskError(code="no_provider", message="no provider accepted the task")
        started = self.clock()
        for name in task.providers:
            provider = self.providers.get(name)
            if provider is None:
                continue
            if attempts and self.clock() - started > self.settings.submit_budget_seconds:
                # API Gateway gives up on the caller after 29 s: the next provider is the sweeper's to try.
                retry_later = True
                break
            callback = None
            if provider.capabilities.callback:
                token = self.callback_token(task.id)
                callback = f"{self.settings.base_url()}/v1/callbacks/{name}/{task.id}?token={token}"
            # Record the send before it happens: after a crash this says "it may be there".
            attempts.append(Attempt(provider=name, at=iso(self.now()), outcome="sent"))
            self.store.update(
                task.id, attempts=attempts, next_poll_at=self.now() + self.settings.submit_grace_seconds
            )
            try:
                provider_task_id = provider.parse_submit(
                    self.client.send(provider.submit(req, callback), is_submit=True)
                )
            except SubmitOutcomeUnknown as exc:
                # The job may exist: never send it again, here or elsewhere (that could bill it twice).
                self.store.record_provider_outcome(name, ok=False, error=str(exc))
                attempts[-1] = attempts[-1].model_copy(
                    update={"outcome": "unknown", "detail": str(exc)[:500]}
                )
                if provider.capabilities.callback:
                    # Its callback will name the job: wait for it (the sweeper fails the task if none comes).
                    until = min(task.deadline_at, self.now() + RECONCILE_SECONDS)
                    # Conditional: its callback may already have named the job and moved the task on.
                    moved = self.store.update(
                        task.id, [Status.ACCEPTED], attempts=attempts, next_poll_at=until
                    )
                    return moved or self._reload(task.id)
                return self._fail(
                    task.id, attempts, "submit_outcome_unknown", f"{name}: {exc}; not resubmitted"
                )
            except ProviderError as exc:
                logger.warning("provider refused submit", provider=name, task_id=task.id, error=str(exc))
                self.store.record_provider_outcome(name, ok=False, error=str(exc))
                attempts[-1] = attempts[-1].model_copy(
                    update={"outcome": "rejected", "detail": str(exc)[:500]}
                )
                retry_later = retry_later or not isinstance(exc, ProviderRejected)
                last_error = TaskError(
                    code=exc.code or "provider_error", message=f"{name}: {exc}", raw=exc.raw or None
                )
                continue
            self.store.record_provider_outcome(name, ok=True)
            attempts[-1] = attempts[-1].model_copy(
                update={"outcome": "accepted", "provider_task_id": provider_task_id}
            )
            moved = self.store.transition(
                task.id,
                Status.SUBMITTED,
                expect=[Status.ACCEPTED],
                provider=name,
                provider_task_id=provider_task_id,
                attempts=attempts,
                next_poll_at=self.now() + self.settings.poll_interval_seconds,
            )
            return moved or self._reload(task.id)
        if retry_later:
            # Every provider was busy or down: keep the task, the sweeper submits it again.
            return self.store.update(
                task.id, attempts=attempts, next_poll_at=self.now() + 30
            ) or self._reload(task.id)
        return self._fail(task.id, attempts, last_error.code, last_error.message, last_error.raw)

    def _fail(
        self, task_id: str, attempts: list[Attempt], code: str, message: str, raw: str | None = None
    ) -> Task:
        moved = self.store.transition(
            task_id,
            Status.FAILED,
            expect=IN_FLIGHT,
            attempts=attempts,
            error=TaskError(code=code, message=message, raw=raw),
        )
        if moved:
            self.publish(moved)
        return moved or self._reload(task_id)

    def _reload(self, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None:
            raise LookupError(task_id)
        return task

    # -- completion: callbacks and polling --------------------------------------------------------
    def on_callback(self, provider: str, task_id: str, token: str, body: bytes = b"") -> Task:
        """Verify the per-task token, then trust only what the provider's status API says."""
        if not hmac.compare_digest(self.callback_token(task_id), token):
            raise RequestProblem(401, "Invalid callback token")
        task = self.store.get(task_id)
        last = task.attempts[-1] if task and task.attempts else None
        if task is None or provider != (task.provider or (last.provider if last else None)):
            raise RequestProblem(404, "Unknown task")
        if task.status.terminal:
            return task
        if task.status is Status.ACCEPTED and last is not None and last.outcome in ("sent", "unknown"):
            # Sent, but no provider id recorded yet: a slow or lost submit answer. The callback names the job.
            return self._reconcile(task, body)
        return self.refresh(task)

    def _reconcile(self, task: Task, body: bytes) -> Task:
        """A submit whose answer was lost: the callback names the provider's job; adopt it once confirmed."""
        last = task.attempts[-1]
        provider = self.providers.get(last.provider)
        provider_task_id = provider.callback_task_id(body) if provider else None
        if provider is None or not provider_task_id:
            return task
        try:  # the body is only a hint: the provider's status API must know the job
            status = provider.parse_status(self.client.send(provider.status(provider_task_id)))
        except ProviderError as exc:
            logger.warning(
                "callback named a job the provider does not confirm", task_id=task.id, error=str(exc)
            )
            return task
        attempts = [
            *task.attempts[:-1],
            last.model_copy(
                update={
                    "outcome": "accepted",
                    "provider_task_id": provider_task_id,
                    "detail": "job id learnt from its callback",
                }
            ),
        ]
        moved = self.store.transition(
            task.id,
            Status.SUBMITTED,
            expect=[Status.ACCEPTED],
            provider=last.provider,
            provider_task_id=provider_task_id,
            attempts=attempts,
            next_poll_at=self.now() + self.settings.poll_interval_seconds,
        )
        return self.record_status(moved, status) if moved else self._reload(task.id)

    def refresh(self, task: Task) -> Task:
        """Ask the provider where the task is and record it; a finished result goes to the ingest queue."""
        provider = self.providers.get(task.provider or "")
        if provider is None or task.provider_task_id is None:
            return task
        try:
            status = provider.parse_status(self.client.send(provider.status(task.provider_task_id)))
        except UnknownProviderStatus as exc:
            return self._fail(task.id, task.attempts, "unknown_provider_status", str(exc), exc.raw)
        except ProviderRejected as exc:
            if exc.status_code in (404, 410):  # the provider does not know the job (any more)
                return self._fail(
                    task.id, task.attempts, exc.code or "not_found", f"status query: {exc}", exc.raw
                )
            # Anything else (a rotated key, a permission) may be fixed: keep asking until the deadline.
            logger.warning("status query refused", task_id=task.id, provider=task.provider, error=str(exc))
            return self.store.update(task.id, next_poll_at=self.now() + 60) or self._reload(task.id)
        except ProviderError as exc:
            wait = exc.retry_after if isinstance(exc, ProviderRateLimited) and exc.retry_after else 30
            logger.warning("status query failed", task_id=task.id, error=str(exc))
            return self.store.update(task.id, next_poll_at=self.now() + int(wait)) or self._reload(task.id)
        return self.record_status(task, status)

    def record_status(self, task: Task, status: ProviderStatus) -> Task:
        now = self.now()
        if status.state is ProviderState.SUCCEEDED:
            if not status.result_url:
                return self._fail(
                    task.id, task.attempts, "no_result_url", "provider reported success without a URL"
                )
            self.enqueue_ingest(task.id, status.result_url)
            return self.store.update(
                task.id, result_url=status.result_url, progress=99, next_poll_at=now + INGEST_RECHECK_SECONDS
            ) or self._reload(task.id)
        if status.state is ProviderState.FAILED:
            code = status.error_code or "provider_failed"
            return self._fail(
                task.id,
                task.attempts,
                code,
                status.error_message or "the provider failed the task",
                status.raw_status,
            )
        if status.state is ProviderState.CANCELLED:
            moved = self.store.transition(task.id, Status.CANCELLED, expect=IN_FLIGHT)
            if moved:
                self.publish(moved)
            return moved or self._reload(task.id)
        wait = min(max(status.eta_seconds or self.settings.poll_interval_seconds, 2), 120)
        changes: dict[str, Any] = {"queue_state": status.raw_status, "next_poll_at": now + wait}
        if status.progress is not None:
            changes["progress"] = max(0, min(int(status.progress), 99))
        target = Status.PROCESSING if status.state is ProviderState.PROCESSING else Status.SUBMITTED
        if target is not task.status:
            moved = self.store.transition(
                task.id, target, expect=[Status.SUBMITTED, Status.PROCESSING], **changes
            )
            return moved or self._reload(task.id)
        return self.store.update(task.id, **changes) or self._reload(task.id)

    def enqueue_ingest(self, task_id: str, result_url: str) -> None:
        sqs().send_message(
            QueueUrl=self.settings.ingest_queue_url,
            MessageBody=json.dumps({"task_id": task_id, "result_url": result_url}),
        )

    def poll_due(self) -> Counter[str]:
        """The sweeper: every due task is polled, submitted again or timed out, a few at a time."""
        ids = list(self.store.due())
        with ThreadPoolExecutor(max_workers=max(1, self.settings.sweeper_concurrency)) as pool:
            outcomes = list(pool.map(self._sweep_one, ids))
        return Counter(outcomes)

    def _sweep_one(self, task_id: str) -> str:
        try:
            task = self.store.get(task_id)
            if task is None or task.status.terminal:
                return "skipped"
            if self.now() >= task.deadline_at:
                return self._time_out(task)
            if task.status is Status.ACCEPTED:
                if task.attempts and task.attempts[-1].outcome in ("sent", "unknown"):
                    # A crash between sending and hearing back, or a lost answer no callback explained in
                    # time: the job may exist at the provider. Do not pay twice.
                    self._fail(
                        task.id,
                        task.attempts,
                        "submit_outcome_unknown",
                        f"{task.attempts[-1].provider}: submit answer lost; not resubmitted",
                    )
                    return "failed"
                return self.submit(task).status.value
            return self.refresh(task).status.value
        except Exception:
            logger.exception("sweeping a task failed", task_id=task_id)
            return "error"

    def _time_out(self, task: Task) -> str:
        self._cancel_at_provider(task)
        moved = self.store.transition(
            task.id,
            Status.TIMED_OUT,
            expect=IN_FLIGHT,
            error=TaskError(
                code="timed_out", message=f"not finished within {self.settings.task_deadline_seconds} s"
            ),
        )
        if moved:
            self.publish(moved)
        return Status.TIMED_OUT.value

    def _cancel_at_provider(self, task: Task) -> None:
        provider = self.providers.get(task.provider or "")
        if provider is None or task.provider_task_id is None:
            return
        request = provider.cancel(task.provider_task_id)
        if request is None:
            return
        try:
            self.client.send(request)
        except ProviderError as exc:  # best effort: our own state is what the client sees
            logger.warning("provider cancel failed", task_id=task.id, error=str(exc))

    # -- ingest -----------------------------------------------------------------------------------
    def output_key(self, task: Task) -> str:
        if task.source == "s3" and task.source_key:
            # uploads/<tenant>/a/cat.png -> outputs/<tenant>/a/cat.mp4
            return str(
                PurePosixPath("outputs", *PurePosixPath(task.source_key).parts[1:]).with_suffix(".mp4")
            )
        return f"outputs/{task.tenant}/{task.id}.mp4"

    def ingest(self, task_id: str, result_url: str) -> str:
        """Copy the result into our bucket, then the one terminal transition. Duplicates are no-ops."""
        task = self.store.get(task_id)
        if task is None or task.status.terminal:
            return "duplicate"
        if not self.store.claim_ingest(task_id, INGEST_LEASE_SECONDS):
            return "in_progress"
        try:
            output = stream_to_s3(self.fetcher, result_url, self.settings.bucket_name, self.output_key(task))
        except (httpx.HTTPError, OSError):
            # Transient: give the claim back so the queue's retry of this message can take it at once.
            self.store.update(task_id, ingest_lease=0)
            raise
        except IngestError as exc:
            if exc.expired:
                # The link died before we copied it: ask the provider again for a fresh one.
                logger.warning("result URL expired", task_id=task_id)
                self.store.update(task_id, next_poll_at=self.now(), ingest_lease=0)
                return "expired"
            self._fail(task_id, task.attempts, "ingest_failed", str(exc))
            return "failed"
        moved = self.store.transition(
            task_id, Status.SUCCEEDED, expect=IN_FLIGHT, output=output, progress=100
        )
        if moved:
            self.publish(moved)
            return "succeeded"
        return "duplicate"

    # -- cancel & views ---------------------------------------------------------------------------
    def cancel(self, tenant: str, task_id: str) -> Task:
        task = self.get_for_tenant(tenant, task_id)
        if task.status.terminal:
            raise RequestProblem(409, "Task already finished", detail=f"task is {task.status.value}")
        self._cancel_at_provider(task)
        moved = self.store.transition(task_id, Status.CANCELLED, expect=IN_FLIGHT)
        if moved:
            self.publish(moved)
            return moved
        return self._reload(task_id)

    def get_for_tenant(self, tenant: str, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None or task.tenant != tenant:  # another tenant's task does not exist for you
            raise RequestProblem(404, "Task not found", detail=f"no task {task_id}")
        return task

    def view(self, task: Task, with_webhook: bool = False) -> TaskView:
        output_url = expires_at = None
        if task.status is Status.SUCCEEDED and task.output:
            output_url, expires_at = presign_get(
                self.settings.bucket_name, task.output.key, self.settings.presign_seconds
            )
        return TaskView(
            id=task.id,
            status=task.status,
            mode=task.mode,
            progress=task.progress,
            source=task.source,
            source_key=task.source_key,
            queue_state=task.queue_state,
            provider=task.provider,
            request=task.request,
            output_url=output_url,
            expires_at=expires_at,
            output=task.output,
            error=task.error,
            attempts=task.attempts,
            webhook=self.store.delivery(task.id) if with_webhook and task.request.webhook_url else None,
            created_at=iso(task.created_at),
            updated_at=iso(task.updated_at),
            links=TaskLinks(self=f"/v1/videos/{task.id}", cancel=f"/v1/videos/{task.id}/cancel"),
        )

    def publish(self, task: Task) -> None:
        """Tell the event bus a task finished. Delivery problems are logged, never fatal to the transition."""
        if not self.settings.event_bus_name:
            return
        detail = {
            "id": task.id,
            "tenant": task.tenant,
            "status": task.status.value,
            "output": task.output and task.output.key,
        }
        try:
            events().put_events(
                Entries=[
                    {
                        "Source": "i2v.gateway",
                        "DetailType": f"Video task {task.status.value}",
                        "Detail": json.dumps(detail),
                        "EventBusName": self.settings.event_bus_name,
                    }
                ]
            )
        except Exception:
            logger.exception("put_events failed", task_id=task.id)
        if task.request.webhook_url and self.settings.delivery_queue_url:
            try:
                sqs().send_message(
                    QueueUrl=self.settings.delivery_queue_url, MessageBody=json.dumps({"task_id": task.id})
                )
            except Exception:
                logger.exception("queueing the webhook failed", task_id=task.id)

    def deliver(self, task_id: str) -> str:
        """POST a finished task's signed webhook. DeliveryFailed (for the queue to retry) on a non-2xx."""
        task = self.store.get(task_id)
        if task is None or not task.status.terminal or not task.request.webhook_url:
            return "skipped"
        if self.store.delivery(task_id).delivered:
            return "duplicate"
        secret = tenant_secret(self.settings.secret("webhook_secret"), task.tenant)
        headers, body = signed_event(self.view(task), secret)
        try:
            status = post(self.fetcher, task.request.webhook_url, headers, body)
        except UnsafeUrl as exc:  # the host turned private since the task was created: never retried
            self.store.record_delivery(task_id, f"refused: {exc}", delivered=False)
            return "refused"
        except DeliveryFailed as exc:
            self.store.record_delivery(task_id, str(exc), delivered=False)
            raise
        self.store.record_delivery(task_id, f"HTTP {status}", delivered=True)
        return "delivered"

    # -- S3 drop folder ---------------------------------------------------------------------------
    def create_from_upload(self, bucket: str, key: str, etag: str) -> Task | None:
        """An image under uploads/<tenant>/ becomes a task; options from metadata or a sidecar <name>.json."""
        parts = PurePosixPath(key).parts
        if len(parts) < 3 or parts[0] != "uploads" or not key.lower().endswith(IMAGE_SUFFIXES):
            return None
        tenant = parts[1]
        options = self._upload_options(bucket, key)
        options["image_url"] = f"s3://{bucket}/{key}"
        try:
            req = VideoRequest.model_validate(options)
            task, _ = self.create_task(
                tenant, req, idempotency_key=f"s3:{key}:{etag}", source="s3", source_key=key
            )
        except (RequestProblem, ValueError) as exc:
            # Nobody is there to read a 422: record the refusal as a failed task the tenant can list.
            return self._record_rejected_upload(tenant, key, exc)
        return task

    def _upload_options(self, bucket: str, key: str) -> dict[str, Any]:
        head = s3_client().head_object(Bucket=bucket, Key=key)
        options: dict[str, Any] = {k.replace("-", "_"): v for k, v in head.get("Metadata", {}).items()}
        sidecar = str(PurePosixPath(key).with_suffix(".json"))
        try:
            body = s3_client().get_object(Bucket=bucket, Key=sidecar)["Body"].read(64 * 1024)
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                options = {**options, **loaded}
        except s3_client().exceptions.NoSuchKey:
            pass
        except json.JSONDecodeError:
            logger.warning("sidecar is not JSON", key=sidecar)
        return options

    def _record_rejected_upload(self, tenant: str, key: str, exc: Exception) -> Task:
        now = self.now()
        message = exc.detail if isinstance(exc, RequestProblem) else str(exc)
        task = Task(
            id=new_task_id(self.clock()),
            tenant=tenant,
            status=Status.FAILED,
            request=VideoRequest(image_url=f"s3://{self.settings.bucket_name}/{key}"),
            mode=Mode.FIRST_FRAME,
            source="s3",
            source_key=key,
            error=TaskError(code="invalid_request", message=message[:1000]),
            created_at=now,
            updated_at=now,
            deadline_at=now,
            finished_at=now,
        )
        stored, _ = self.store.create(task, (f"s3:{key}:rejected", "rejected"))
        return stored


@lru_cache(maxsize=1)
def gateway() -> Gateway:
    """The process-wide Gateway, built on first use (cold start) from the environment."""
    from i2v.config import get_settings

    return Gateway.from_settings(get_settings())


@lru_cache(maxsize=1)
def sqs() -> Any:
    return boto3.client("sqs")


@lru_cache(maxsize=1)
def events() -> Any:
    return boto3.client("events")
