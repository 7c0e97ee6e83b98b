"""Uploads: presigned PUTs for local files, and the drop folder, where an image becomes a task.

An image put under uploads/<tenant>/ is animated with the options in its object metadata (x-amz-meta-prompt,
…) or in a sidecar <name>.json; a request that cannot be made is recorded as a failed task the tenant lists.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from i2v import layout, lifecycle
from i2v.create import create
from i2v.media import presign_put
from i2v.models import (
    Mode,
    RequestProblem,
    Status,
    Task,
    TaskError,
    UploadRequest,
    UploadTicket,
    VideoRequest,
)
from i2v.notify import finish
from i2v.runtime import Runtime
from i2v.store import new_task_id

logger = Logger(child=True)
SIDECAR_BYTES = 64 * 1024


def ticket(rt: Runtime, tenant: str, upload: UploadRequest) -> UploadTicket:
    bucket = rt.settings.bucket_name
    key = layout.input_key(tenant, upload.filename)
    put_url, expires_at = presign_put(rt.s3, bucket, key, upload.content_type, rt.settings.presign_seconds)
    return UploadTicket(url=layout.s3_url(bucket, key), put_url=put_url, expires_at=expires_at)


def from_upload(rt: Runtime, bucket: str, key: str, etag: str) -> Task | None:
    """The task an uploaded image becomes (None for anything that is not a drop-folder image)."""
    tenant = layout.upload_tenant(key)
    if tenant is None:
        return None
    options = _options(rt, bucket, key)
    options["image_url"] = layout.s3_url(bucket, key)
    try:
        req = VideoRequest.model_validate(options)
        task, _ = create(rt, tenant, req, idempotency_key=f"s3:{key}:{etag}", source_key=key)
    except (RequestProblem, ValueError) as exc:
        # Nobody is there to read a 422: record the refusal as a failed task the tenant can list.
        return _rejected(rt, tenant, key, exc)
    return task


def _options(rt: Runtime, bucket: str, key: str) -> dict[str, Any]:
    head = rt.s3.head_object(Bucket=bucket, Key=key)
    options: dict[str, Any] = {k.replace("-", "_"): v for k, v in head.get("Metadata", {}).items()}
    sidecar = layout.sidecar_key(key)
    try:
        loaded = json.loads(rt.s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read(SIDECAR_BYTES))
        if isinstance(loaded, dict):
            options = {**options, **loaded}
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchKey":
            raise
    except json.JSONDecodeError:
        logger.warning("sidecar is not JSON", key=sidecar)
    return options


def _rejected(rt: Runtime, tenant: str, key: str, exc: Exception) -> Task:
    now = rt.now()
    message = exc.detail if isinstance(exc, RequestProblem) else str(exc)
    task = Task(
        id=new_task_id(rt.clock()),
        tenant=tenant,
        status=Status.FAILED,
        request=VideoRequest(image_url=layout.s3_url(rt.settings.bucket_name, key)),
        mode=Mode.FIRST_FRAME,
        source="s3",
        source_key=key,
        error=TaskError(code="invalid_request", message=message[:1000]),
        created_at=now,
        updated_at=now,
        deadline_at=now,
        finished_at=now,
        next_poll_at=now,  # announced like every end: by the outbox, drained now or by the sweeper
        outbox=[step.value for step in lifecycle.steps_after(Status.FAILED)],
    )
    stored, created = rt.tasks.create(task, (f"s3:{key}:rejected", "rejected"))
    if created:
        finish(rt, stored)
    return stored
