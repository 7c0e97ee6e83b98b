"""Uploads: presigned PUTs for local files, and the drop folder, where an image becomes a task.

An image put under uploads/<tenant>/ is animated with the options in its object metadata (x-amz-meta-prompt,
…) or in a sidecar <name>.json; a request that cannot be made is recorded as a failed task the tenant lists.
Any key S3 can hold works (spaces, `+`, brackets, unicode); a key with a `.`, `..` or empty segment or a
backslash, a file the model cannot take (`.gif`), and a folder of no known tenant are failed tasks too.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError

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
    """The task an object put in the drop folder becomes: a task for an image, a failed task for anything
    that cannot be one, None for what is ignored quietly (sidecars, keys under no tenant, folder markers).

    A refusal is recorded under the tenant whose folder the key is written in, when that tenant exists:
    whoever wrote the key could write under uploads/<that tenant>/ (S3 and IAM prefixes see keys as
    written), so `uploads/acme/../beta/cat.png` is acme's doing, recorded for acme, never for beta. With no
    such tenant (`uploads/./beta/…`, `uploads/nobody/…`) it goes under `layout.UNATTRIBUTED`, a name no
    key can have: kept for operators, listed to no one.
    """
    found = layout.upload(key)
    if found is None:
        return None
    known = rt.records.tenant_exists(found.tenant)
    owner = found.tenant if known else layout.UNATTRIBUTED
    if found.refusal:
        return _rejected(rt, owner, key, etag, found.refusal)
    if not known:
        return _rejected(rt, owner, key, etag, f"{found.tenant!r} is not a tenant of this gateway")
    try:
        options = _options(rt, bucket, key)
    except Unreadable as exc:
        return _rejected(rt, owner, key, etag, str(exc))
    options["image_url"] = layout.s3_url(bucket, key)
    try:
        req = VideoRequest.model_validate(options)
        task, _ = create(rt, owner, req, idempotency_key=f"s3:{key}:{etag}", source_key=key)
    except ValidationError as exc:
        # Nobody is there to read a 422: record the refusal as a failed task the tenant can list.
        return _rejected(rt, owner, key, etag, _plain_errors(exc))
    except RequestProblem as exc:
        return _rejected(rt, owner, key, etag, exc.detail)
    except ValueError as exc:
        return _rejected(rt, owner, key, etag, str(exc))
    return task


class Unreadable(Exception):
    """The uploaded image itself could not be read (deleted since, or not readable by the gateway)."""


# What S3 answers for a key that is not there: 404 (NoSuchKey, or a bare 404 for HEAD) when the caller may
# list the bucket, else 403 (AccessDenied, or a bare 403 for HEAD). The trigger's role may not list.
ABSENT = {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}


def _options(rt: Runtime, bucket: str, key: str) -> dict[str, Any]:
    try:
        head = rt.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ABSENT:
            raise
        raise Unreadable("the image could not be read: deleted since, or not readable here") from None
    options: dict[str, Any] = {k.replace("-", "_"): v for k, v in head.get("Metadata", {}).items()}
    sidecar = layout.sidecar_key(key)
    try:
        loaded = json.loads(rt.s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read(SIDECAR_BYTES))
        if isinstance(loaded, dict):
            options = {**options, **loaded}
    except ClientError as exc:
        # No sidecar. Deployed, that is a 403: the role reads uploads/* but may not list the bucket.
        if exc.response["Error"]["Code"] not in ABSENT:
            raise
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("sidecar is not JSON", key=sidecar)
    return options


def _plain_errors(exc: ValidationError) -> str:
    """Pydantic's errors as `field: message; …`, without its input echo and help links."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}" for err in exc.errors()
    )


def _rejected(rt: Runtime, tenant: str, key: str, etag: str, message: str) -> Task:
    """Record an upload that cannot become a task as a failed task. Nothing about the key can make this
    fail: the request keeps the image URL only if it is a valid one (the key is in `source_key` anyway)."""
    now = rt.now()
    url = layout.s3_url(rt.settings.bucket_name, key)
    try:
        request = VideoRequest(image_url=url)
    except ValidationError:  # longer than a URL may be
        request = VideoRequest()
    logger.warning("upload refused", key=key, tenant=tenant, reason=message)
    task = Task(
        id=new_task_id(rt.clock()),
        tenant=tenant,
        status=Status.FAILED,
        request=request,
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
    stored, created = rt.tasks.create(task, (f"s3:{key}:{etag}:rejected", "rejected"))
    if created:
        finish(rt, stored)
    return stored
