"""Batches (issue 24, docs/batches.md): a manifest of request lines, each line to become one task.

This module is the part that needs no AWS: reading a manifest's lines (JSONL, or CSV whose columns are
request fields), laying the batch's defaults under each, checking each line as the body of a single
create, and the task id a line's task gets (derived, so a line expanded twice is one task).
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from i2v.jsontext import NotJson, loads
from i2v.models import MEDIA_FIELDS, FieldError, VideoRequest

MAX_INLINE_LINES = 1_000
MAX_MANIFEST_LINES = 100_000
MAX_CUSTOM_ID = 64
MAX_LINE_CHARS = 64 * 1024  # a line longer than any valid request body is refused without being parsed


@dataclass(frozen=True)
class Line:
    """One line of a manifest: its number (from 1, as editors count), the client's `custom_id`, and either
    the request it asks for or why it cannot be one."""

    number: int
    custom_id: str | None = None
    request: VideoRequest | None = None
    errors: list[FieldError] = field(default_factory=list)


def line_task_id(batch_id: str, number: int) -> str:
    """The id of the task a batch's line becomes: the same however often the line is expanded."""
    return "vid_" + hashlib.sha256(f"{batch_id}:{number}".encode()).hexdigest()[:22]


def lines(
    text_lines: Iterable[str], fmt: str, defaults: Mapping[str, Any], folder: str | None = None
) -> Iterator[Line]:
    """Each line of a manifest (`fmt` "jsonl" or "csv") as a Line. `folder`: the s3:// folder of the
    manifest, against which a media value that is not a URL is read as the key of a file beside it."""
    if fmt == "csv":
        rows: Iterator[tuple[int, dict[str, Any] | FieldError]] = _csv_rows(text_lines)
    else:
        rows = _jsonl_rows(text_lines)
    for number, row in rows:
        if isinstance(row, FieldError):
            yield Line(number, errors=[row])
            continue
        custom_id = row.pop("custom_id", None)
        if custom_id is not None and (not isinstance(custom_id, str) or len(custom_id) > MAX_CUSTOM_ID):
            error = FieldError(
                field="custom_id", message=f"must be text of at most {MAX_CUSTOM_ID} characters"
            )
            yield Line(number, errors=[error])
            continue
        if folder is not None:
            _beside(row, folder)
        try:
            request = VideoRequest.model_validate({**defaults, **row})
        except ValidationError as exc:
            yield Line(number, custom_id, errors=field_errors(exc))
            continue
        yield Line(number, custom_id, request)


def field_errors(exc: ValidationError) -> list[FieldError]:
    """A request's validation errors as the API words them: the field's path, and pydantic's message."""
    return [
        FieldError(field=".".join(str(p) for p in err["loc"]) or "request", message=err["msg"])
        for err in exc.errors(include_url=False, include_input=False)
    ]


def _jsonl_rows(text_lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | FieldError]]:
    """Each non-blank line with its number in the file (blank ones, a trailing newline, are no line of the
    batch, but count as an editor counts them)."""
    for number, text in enumerate(text_lines, 1):
        if not text.strip():
            continue
        if len(text) > MAX_LINE_CHARS:
            yield number, FieldError(field="line", message=f"is longer than {MAX_LINE_CHARS} characters")
            continue
        try:
            row = loads(text)
        except NotJson as exc:
            yield number, FieldError(field="line", message=f"is not JSON: {exc}")
            continue
        if not isinstance(row, dict):
            yield number, FieldError(field="line", message='must be one JSON object, like {"prompt": "..."}')
            continue
        yield number, row


def _csv_rows(text_lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | FieldError]]:
    """Rows of a CSV whose header names request fields (`metadata.<key>` for metadata; `provider` may list
    several, comma-separated), each with the number of its line. An empty cell leaves the field to the
    defaults."""
    reader = csv.DictReader(text_lines)  # it takes lines as they come: a manifest is never read whole
    for cells in reader:
        number = reader.line_num  # the file's line the row ends on: the header is line 1
        if None in cells:  # more cells than the header has names
            yield number, FieldError(field="line", message="has more cells than the header has columns")
            continue
        row: dict[str, Any] = {}
        for name, value in cells.items():
            if value is None or value == "":
                continue
            if name.startswith("metadata."):
                row.setdefault("metadata", {})[name.removeprefix("metadata.")] = value
            elif name == "provider" and "," in value:
                row[name] = [part.strip() for part in value.split(",") if part.strip()]
            else:
                row[name] = value
        yield number, row


def _beside(row: dict[str, Any], folder: str) -> None:
    """A media value that is not a URL names a file beside the manifest: `photos/a b.png` in a manifest at
    s3://bucket/inputs/t/batch.csv is s3://bucket/inputs/t/photos/a%20b.png (`folder` encoded already)."""
    for name in MEDIA_FIELDS:
        value = row.get(name)
        if isinstance(value, str) and "://" not in value:
            row[name] = folder.rstrip("/") + "/" + quote(value.lstrip("/"), safe="/")  # as layout.s3_url


__all__ = ["MAX_INLINE_LINES", "MAX_MANIFEST_LINES", "Line", "field_errors", "line_task_id", "lines"]
