"""Uploads: presigned PUTs for local files, and the drop folder, where an image becomes a task.

An image put under uploads/<tenant>/ is animated with the options in its object metadata (x-amz-meta-prompt,
…) or in a sidecar <name>.json; a request that cannot be made is recorded as a failed task the tenant lists.
Any key S3 can hold works (spaces, `+`, brackets, unicode); a key with a `.`, `..` or empty segment or a
backslash, a file the model cannot take (`.gif`), and a folder of no known tenant are failed tasks too.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from i2v import jsontext, layout, lifecycle
from i2v.create import create
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
from i2v.presign import presign_put
from i2v.runtime import Runtime
from i2v.store import Idempotency, new_task_id

logger = Logger(child=True)
SIDECAR_BYTES = 64 * 1024


def ticket(rt: Runtime, tenant: str, upload: UploadRequest) -> UploadTicket:
    bucket = rt.settings.bucket_name
    key = layout.input_key(tenant, upload.filename)
    put_url, expires_at = presign_put(rt.s3, bucket, key, upload.content_type, rt.settings.presign_seconds)
    return UploadTicket(url=layout.s3_url(bucket, key), put_url=put_url, expires_at=expires_at)


def from_upload(rt: Runtime, bucket: str, key: str, version: str) -> Task | None:
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
        return _rejected(rt, owner, key, version, found.refusal)
    if not known:
        return _rejected(rt, owner, key, version, f"{found.tenant!r} is not a tenant of this gateway")
    try:
        options, origins = _options(rt, bucket, key)
    except Unreadable as exc:
        return _rejected(rt, owner, key, version, str(exc))
    options["image_url"] = layout.s3_url(bucket, key)
    try:
        req = VideoRequest.model_validate(options)
        task, _ = create(rt, owner, req, source=(key, version))
    except ValidationError as exc:
        # Nobody is there to read a 422: record the refusal as a failed task the tenant can list.
        return _rejected(rt, owner, key, version, _plain_errors(exc, origins))
    except RequestProblem as exc:
        if exc.status >= 500:  # not the upload's fault (our storage did not answer): SQS sends it again
            raise
        return _rejected(rt, owner, key, version, _problem_words(exc, origins))
    except ValueError as exc:
        return _rejected(rt, owner, key, version, str(exc))
    return task


class Unreadable(Exception):
    """The uploaded image itself could not be read (deleted since, or not readable by the gateway)."""


# What S3 answers for a key that is not there: 404 (NoSuchKey, or a bare 404 for HEAD) when the caller may
# list the bucket, else 403 (AccessDenied, or a bare 403 for HEAD). The trigger's role may not list.
ABSENT = {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}


def _options(rt: Runtime, bucket: str, key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The request's options from the object's metadata and its sidecar (which wins), and where each came
    from, for the words of a refusal: `x-amz-meta-duration`, or `duration in cat.json`."""
    try:
        head = rt.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ABSENT:
            raise
        raise Unreadable("the image could not be read: deleted since, or not readable here") from None
    metadata: dict[str, str] = head.get("Metadata", {})
    options: dict[str, Any] = {k.replace("-", "_"): v for k, v in metadata.items()}
    origins = {k.replace("-", "_"): f"x-amz-meta-{k}" for k in metadata}
    sidecar = layout.sidecar_key(key)
    name = sidecar.rsplit("/", 1)[-1]
    try:
        body = rt.s3.get_object(Bucket=bucket, Key=sidecar)["Body"].read(SIDECAR_BYTES + 1)
    except ClientError as exc:
        # No sidecar. Deployed, that is a 403: the role reads uploads/* but may not list the bucket.
        if exc.response["Error"]["Code"] not in ABSENT:
            raise
        return options, origins
    # A sidecar that cannot be read is refused, not skipped: animating without the options the uploader
    # wrote (their prompt, their duration) would spend money on a video they did not ask for.
    if len(body) > SIDECAR_BYTES:
        raise Unreadable(f"{name} is larger than {SIDECAR_BYTES // 1024} KB; options fit in far less")
    try:
        loaded = jsontext.loads(body)
    except jsontext.NotJson as exc:
        raise Unreadable(f"{name} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise Unreadable(f'{name} must hold one JSON object of options, like {{"prompt": "..."}}')
    origins.update({str(k): f"{{}} in {name}" for k in loaded})  # {} is the field's path
    return {**options, **loaded}, origins


def _plain_errors(exc: ValidationError, origins: dict[str, str]) -> str:
    """Pydantic's errors as `where: what; …`, where naming the metadata key or sidecar field the option came
    from, and what in plain words with the limit (no input echo, no help links)."""
    errors = exc.errors()
    said: dict[str, list[str]] = {}
    for err in errors:
        # A union field (provider: a name or a list) has an error per member, its loc tagged with the
        # member's type ("list[constrained-str]"): keep the fields and indexes, and drop the complaint of
        # the member the value is not (a list is "not a string") when another one says what is wrong.
        path = [p for p in err["loc"] if isinstance(p, int) or p.isidentifier()] or ["request"]
        if len(path) < len(err["loc"]) and err["type"].endswith("_type") and _said_otherwise(err, errors):
            continue
        field = str(path[0]) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[1:])
        where = _as_set(field, str(path[0]), origins)
        said.setdefault(where, []).append(_plain(err))
    # What is left twice for a field is each union member's "not of this type": either would do.
    return "; ".join(
        f"{where}: {' or '.join([what[0], *(w.removeprefix('must be ') for w in what[1:])])}"
        for where, what in said.items()
    )


def _problem_words(exc: RequestProblem, origins: dict[str, str]) -> str:
    """A refusal of the request (a provider that cannot serve it, media past the model's limits), its
    fields named as the uploader set them."""
    if not exc.errors:
        return exc.detail
    return "; ".join(f"{_as_set(e.field, e.field, origins)}: {e.message}" for e in exc.errors)


def _as_set(field: str, option: str, origins: dict[str, str]) -> str:
    """`field` (a path under the option `option`) named where the uploader set it: `x-amz-meta-duration`,
    or `duration in cat.json` (`origins` holds "{}" where the path goes); as is if neither."""
    return origins.get(option, "{}").replace("{}", field)


def _said_otherwise(err: ErrorDetails, errors: list[ErrorDetails]) -> bool:
    """Another error on the same field says more than "not of this type"."""
    return any(e["loc"][:1] == err["loc"][:1] and not e["type"].endswith("_type") for e in errors)


def _plain(err: ErrorDetails) -> str:
    """One pydantic error in words a drop-folder user acts on: the rule and its limit."""
    ctx, kind = err.get("ctx") or {}, err["type"]
    words = {
        "less_than_equal": f"must be at most {ctx.get('le')}",
        "greater_than_equal": f"must be at least {ctx.get('ge')}",
        "less_than": f"must be less than {ctx.get('lt')}",
        "greater_than": f"must be more than {ctx.get('gt')}",
        "string_type": "must be text",
        "list_type": "must be a list",
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "int_type": "must be a whole number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "too_long": f"must have at most {ctx.get('max_length')} entries",
        "literal_error": f"must be {ctx.get('expected')}",
        "enum": f"must be {ctx.get('expected')}",
        "extra_forbidden": f"is not an option (the options: {', '.join(VideoRequest.model_fields)})",
        "value_error": str(ctx.get("error", err["msg"])),
    }
    return words.get(kind, err["msg"])


def _rejected(rt: Runtime, tenant: str, key: str, version: str, message: str) -> Task:
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
    # Once per put and reason: a redelivered notification records nothing more; the same bytes put again
    # with other (still refused) options are recorded again, saying why this time.
    reason = hashlib.sha256(message.encode()).hexdigest()
    stored, created = rt.tasks.create(
        task, Idempotency.gateway(tenant, f"{key}:{version}:{reason}", "rejected")
    )
    if created:
        finish(rt, stored)
    return stored
