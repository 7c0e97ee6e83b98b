"""Queue messages, typed: the producer writes the model and the consumer's BatchProcessor parses the same
(S3 writes the upload notifications; UploadNotification reads the part of them we use).

Each `*Record` is the SQS record with its body parsed into the message (powertools' parser models), so a
handler's record function receives a typed message and a malformed body is one failed record, not a crash.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, Json


class IngestMessage(BaseModel):
    """A provider reported the video done: copy it from `result_url` into our bucket."""

    task_id: str
    result_url: str


class DeliveryMessage(BaseModel):
    """A task ended and has a webhook_url: POST its signed event."""

    task_id: str


class S3Bucket(BaseModel):
    name: str


class S3Object(BaseModel):
    key: str  # URL-encoded, as S3 writes it in notifications
    eTag: str = ""

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


class IngestRecord(SqsRecordModel):
    body: Json[IngestMessage]


class DeliveryRecord(SqsRecordModel):
    body: Json[DeliveryMessage]


class UploadRecord(SqsRecordModel):
    body: Json[UploadNotification]
