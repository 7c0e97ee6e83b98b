"""Ingest: copy a finished job's video into our bucket, then end the task `succeeded` — once.

The ingest lease makes duplicate messages harmless, and while it is held no cancel or time-out can end the
task: so a task that ends `cancelled` never gets an output, and a `succeeded` one always has it.
"""

from __future__ import annotations

import httpx
from aws_lambda_powertools import Logger

from i2v import layout, pacing
from i2v.lifecycle import Work
from i2v.media import IngestError, stream_to_s3
from i2v.messages import IngestMessage
from i2v.models import Status, TaskError
from i2v.notify import conclude
from i2v.presign import presign_get
from i2v.probe import ProbeError, probe
from i2v.runtime import Runtime

logger = Logger(child=True)


def ingest(rt: Runtime, message: IngestMessage) -> str:
    """Copy, then the one terminal move. Returns what happened; raises on a transient failure (the queue
    delivers the message again)."""
    claim = rt.tasks.claim(
        message.task_id, Work.INGEST, pacing.INGEST_LEASE_SECONDS, {Status.SUBMITTED, Status.PROCESSING}
    )
    if claim is None or claim.task is None:
        return "duplicate"  # ended already, or another copy of this message holds the lease
    task = claim.task
    bucket, key = rt.settings.bucket_name, layout.output_key(task)
    try:
        output = stream_to_s3(
            rt.fetcher,
            rt.s3,
            message.result_url,
            bucket,
            key,
            {"task-id": task.id},
            deadline=rt.settings.ingest_deadline_seconds,
        )
    except (httpx.HTTPError, OSError):
        # Transient: give the lease back so the queue's retry of this message can take it at once.
        rt.tasks.release(claim)
        raise
    except IngestError as exc:
        if exc.expired:
            # The link died before we copied it: ask the provider again for a fresh one.
            logger.warning("result URL expired", task_id=task.id)
            rt.tasks.release(claim, next_poll_at=rt.now())
            return "expired"
        error = TaskError(code="ingest_failed", message=str(exc))
        conclude(rt, task.id, Status.FAILED, holding=claim, error=error)
        return "failed"
    output = output.model_copy(update={"duration": _duration(rt, bucket, key)})
    if conclude(rt, task.id, Status.SUCCEEDED, holding=claim, output=output, progress=100) is None:
        # Our lease ran out (this copy took too long). If another copy made the task succeed, the object at
        # the key is its video too; if the task ended otherwise, ours is a stray no one may serve.
        if rt.tasks.require(task.id).status is not Status.SUCCEEDED:
            rt.s3.delete_object(Bucket=bucket, Key=key)
        return "lost_lease"
    return "succeeded"


def _duration(rt: Runtime, bucket: str, key: str) -> float | None:
    """The stored MP4's duration (its moov box, read back from S3 with ranged GETs): what is billed."""
    url, _ = presign_get(rt.s3, bucket, key, 300)
    try:
        return probe(rt.fetcher, url, "video").duration
    except ProbeError as exc:
        logger.warning(
            "stored video's duration unreadable; billed_seconds will be 0", key=key, error=str(exc)
        )
        return None
