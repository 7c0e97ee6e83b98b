"""Queue messages, typed: the producer writes the model and the consumer parses the same from the record's
body (S3 writes the upload notifications; UploadNotification reads the part of them we use). A malformed
body fails its own record only (i2v.batch: SQS's partial batch response), never the batch.

The consumers parse with `Model.model_validate_json(record.body)` rather than through powertools' parser
models: importing those builds a model for every AWS event type, which cost ~70 ms of each cold start.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from pydantic import BaseModel


class IngestMessage(BaseModel):
    """A provider reported the video done: copy it from `result_url` into our bucket."""

    task_id: str
    result_url: str


class PollMessage(BaseModel):
    """A task's turn is due (or overdue): poll it, submit it again, time it out or finish its outbox."""

    task_id: str


class DeliveryMessage(BaseModel):
    """A task ended and has a webhook_url: POST its signed event."""

    task_id: str


class S3Bucket(BaseModel):
    name: str


class S3Object(BaseModel):
    key: str  # URL-encoded, as S3 writes it in notifications
    eTag: str = ""
    sequencer: str = ""

    @property
    def version(self) -> str:
        """What tells this put of the key from another: S3's sequencer (it grows with every put of a key;
        a redelivered notification repeats it), else the ETag (moto's notifications have no sequencer)."""
        return self.sequencer or self.eTag

    @property
    def plain_key(self) -> str:
        return unquote_plus(self.key)


class S3Entity(BaseModel):
    bucket: S3Bucket
    object: S3Object


class S3Record(BaseModel):
    s3: S3Entity


class UploadNotification(BaseModel):
    """What S3 writes to the uploads queue (or sends straight to a function) when an object is created.
    S3's test event, sent when the notification is set up, has no Records."""

    Records: list[S3Record] = []
