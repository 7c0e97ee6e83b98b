"""Ingest: copy a finished job's video into our bucket, then end the task `succeeded` — once.

The ingest lease makes duplicate messages harmless, and while it is held no cancel or time-out can end the
task: so a task that ends `cancelled` never gets an output, and a `succeeded` one always has it.
"""

from __future__ import annotations

import httpx
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from i2v import layout, pacing
from i2v.lifecycle import Work
from i2v.media import IngestError, stream_to_s3
from i2v.messages import IngestMessage
from i2v.models import Status, TaskError
from i2v.notify import conclude
from i2v.presign import presign_get
from i2v.probe import ProbeError, probe
from i2v.runtime import Runtime
from i2v.store import Claim

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
    for _ in range(2):  # a second copy only after removing the stray of an earlier holder
        try:
            output = stream_to_s3(
                rt.fetcher,
                rt.s3,
                message.result_url,
                bucket,
                key,
                {"task-id": task.id},
                deadline=rt.settings.ingest_deadline_seconds,
                headers=_result_headers(rt, task.provider, message.result_url),
            )
            break
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
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "PreconditionFailed":
                rt.tasks.release(claim)
                raise
            if not _remove_stray(rt, claim, bucket, key):
                return "lost_lease"
    else:
        rt.tasks.release(claim)
        raise RuntimeError(f"{key} was written again while this ingest held its lease")
    output = output.model_copy(update={"duration": _duration(rt, bucket, key)})
    if conclude(rt, task.id, Status.SUCCEEDED, holding=claim, output=output, progress=100) is None:
        # Our lease ran out (this copy took too long): whoever holds it now removes our copy before it
        # writes its own (`_remove_stray`), and a task that ends otherwise discards it (i2v.notify).
        return "lost_lease"
    return "succeeded"


def _remove_stray(rt: Runtime, claim: Claim, bucket: str, key: str) -> bool:
    """An object is at this task's key already: the copy of an earlier ingest of this task that lost its
    lease (it died, or stalled) before it could end the task. While we hold the lease no one else can make
    the task succeed, so that copy is no one's video: remove it (only that version of it, If-Match) and say
    so. False if the lease is ours no longer: then the object may be the video of the holder that took it.
    """
    if rt.tasks.update(claim.task_id, {Status.SUBMITTED, Status.PROCESSING}, holding=claim) is None:
        return False
    head = rt.s3.head_object(Bucket=bucket, Key=key)
    if head.get("Metadata", {}).get("task-id") != claim.task_id:
        # Not a copy of ours (someone with write access to the bucket put it there): never overwritten.
        rt.tasks.release(claim)
        raise RuntimeError(f"{key} holds an object of another origin; this task's video is not stored")
    logger.warning("removing an earlier ingest's copy of this task's video", task_id=claim.task_id, key=key)
    try:
        rt.s3.delete_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("PreconditionFailed", "NoSuchKey"):
            raise
    return True


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


def _result_headers(rt: Runtime, provider: str | None, url: str) -> dict[str, str]:
    """What the download of `url` needs: nothing, but the key of a host whose result links take it (only
    then are the keys read)."""
    from i2v.providers.registry import PROVIDERS

    declared = PROVIDERS.get(provider or "")
    if declared is None or not declared.keyed_results:
        return {}
    adapter = rt.providers.get(provider or "")
    return adapter.result_headers(url) if adapter else {}
