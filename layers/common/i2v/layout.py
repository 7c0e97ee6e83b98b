"""Where things live in the media bucket, in one place.

inputs/<tenant>/<yyyymmdd>/<random>-<filename>   files sent through POST /v1/uploads (expire after 7 days)
uploads/<tenant>/<path>                          the drop folder: an image here becomes a task
outputs/<tenant>/<task id>.mp4                   the video of an API task
outputs/<tenant>/<path>-<task id>.mp4            the video of a drop-folder task, beside its upload's name

Every task's output key is its own (task ids are unique, and `-` is in no task id, so the two forms never
meet): uploading `cat.png` again, or `cat.jpg` beside it, makes another video, never a new one under an
old task. The key is written once: the copy refuses to overwrite (`If-None-Match: *`, i2v.media).

S3 keys are literal strings: `a/../b` is not `b` to S3, but HTTP clients and path libraries collapse it. So a
key the gateway acts on has no `.`, `..` or empty segment and no backslash; such keys are refused, never
normalised into some other object. `s3://` URLs carry keys percent-encoded (`s3_url` / `parse_s3_url`).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

from i2v.models import RequestProblem, Task

INPUTS, UPLOADS, OUTPUTS = "inputs", "uploads", "outputs"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SIDECAR_SUFFIX = ".json"
# A tenant is a short slug: no `/` or `#`, so it can neither leave its key prefix nor collide in a record key.
TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,38}")
# Where a rejected upload is recorded when no tenant can be trusted with it: not a slug, so never a tenant.
UNATTRIBUTED = "_unattributed"


def valid_tenant(name: str) -> bool:
    return TENANT_SLUG.fullmatch(name) is not None


def check_tenant(name: str) -> str:
    """The name, if it is a valid tenant slug; else ValueError saying what one is."""
    if not valid_tenant(name):
        raise ValueError(
            f"tenant {name!r} is not a valid name: 2-39 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return name


def unsafe_path(key: str) -> str | None:
    """Why a key cannot be acted on as it is written (None if it can)."""
    if "\\" in key:
        return "has a backslash"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return f"has a {'empty' if not segment else repr(segment)} path segment"
    return None


def input_key(tenant: str, filename: str, now: datetime | None = None) -> str:
    """Where an uploaded file goes: its name made key-safe (`key_safe_name`) behind a random prefix."""
    day = f"{(now or datetime.now(UTC)):%Y%m%d}"
    return f"{INPUTS}/{tenant}/{day}/{secrets.token_hex(8)}-{key_safe_name(filename)}"


def key_safe_name(filename: str) -> str:
    """A file's own name as a plain key segment: accents dropped ("Café" -> "Cafe"), every other character
    outside A-Z a-z 0-9 . _ - a "_" ("au lait (1).png" -> "au_lait_1_.png"), runs of "_" made one. The
    name is only a hint for people reading keys; the random prefix before it is what makes the key unique."""
    bare = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]", "_", bare)).strip("_") or "file"


def _stem(key: str) -> str:
    """The key without its file suffix (`a/b.c.png` -> `a/b.c`; a name without a dot is kept whole)."""
    name_at = key.rfind("/") + 1
    dot = key.rfind(".", name_at)
    return key if dot < 0 else key[:dot]


def output_key(task: Task) -> str:
    """The task's own video key (see the module's docstring)."""
    if task.source == "s3" and task.source_key:
        # uploads/<tenant>/a/cat.png -> outputs/<tenant>/a/cat-vid_….mp4
        return f"{OUTPUTS}/{_stem(task.source_key.removeprefix(f'{UPLOADS}/'))}-{task.id}.mp4"
    return f"{OUTPUTS}/{task.tenant}/{task.id}.mp4"


class Upload(NamedTuple):
    """An object put under uploads/<tenant>/: whose folder it is in, and why it cannot be a task (if so)."""

    tenant: str  # the key's segment after uploads/, as written (checked against the tenants by the caller)
    refusal: str | None  # a message for the tenant; None when the key is a drop-folder image


def upload(key: str) -> Upload | None:
    """What an object under the drop folder is; None for what is ignored quietly: keys under no tenant
    (`uploads/cat.png`), sidecars (`.json`) and the folder markers S3 consoles create (`…/trips/`)."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != UPLOADS or key.endswith("/"):
        return None
    name = parts[-1]
    if name.lower().endswith(SIDECAR_SUFFIX):
        return None
    tenant = parts[1]
    problem = unsafe_path(key)
    if problem:
        return Upload(tenant, f"{key!r} {problem}: drop-folder keys must stay inside uploads/<tenant>/")
    if not valid_tenant(tenant):
        return Upload(tenant, f"{key!r} is not under a known tenant's folder")
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return Upload(tenant, f"{name!r} is not an image the model accepts (JPEG, PNG, BMP, WEBP)")
    return Upload(tenant, None)


def sidecar_key(key: str) -> str:
    """uploads/<tenant>/a/cat.png -> uploads/<tenant>/a/cat.json: a drop-folder image's options."""
    return f"{_stem(key)}{SIDECAR_SUFFIX}"


def owned_by(tenant: str, key: str) -> bool:
    """Is this a key a tenant may name as an input (its own uploads)?"""
    return (
        valid_tenant(tenant)
        and unsafe_path(key) is None
        and key.startswith((f"{INPUTS}/{tenant}/", f"{UPLOADS}/{tenant}/"))
    )


def s3_url(bucket: str, key: str) -> str:
    """s3://<bucket>/<key>, the key percent-encoded (spaces, `%`, `?`, `#`, unicode), `/` kept."""
    return f"s3://{bucket}/{quote(key, safe='/')}"


def parse_s3_url(url: str, bucket: str) -> str:
    """The key of an s3:// URL that points into our bucket; anything else is a 422.

    The path is percent-decoded once, then held to `unsafe_path`: `inputs/acme/../beta/x.png`,
    `inputs/acme/%2e%2e/beta/x.png`, `inputs//acme/x.png` and backslashes are refused, not resolved.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        raise RequestProblem.invalid("url", "is not a valid s3:// URL") from None
    if parts.scheme != "s3" or parts.netloc != bucket or not parts.path.strip("/"):
        raise RequestProblem.invalid("url", f"s3 URLs must point into this gateway's bucket ({bucket})")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise RequestProblem.invalid("url", "s3 URLs name a key: percent-encode '?' and '#' in it")
    try:
        key = unquote(parts.path.removeprefix("/"), errors="strict")
    except UnicodeDecodeError:
        raise RequestProblem.invalid("url", "s3 URL has a percent-escape that is not UTF-8") from None
    problem = unsafe_path(key)
    if problem:
        raise RequestProblem.invalid("url", f"s3 URL {problem}: name the object by its plain key")
    return key
