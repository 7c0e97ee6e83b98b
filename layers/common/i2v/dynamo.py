"""The one DynamoDB table, as the stores use it: a resource per thread, consistent reads, plain values."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

import boto3
from botocore.exceptions import ClientError


@dataclass
class Table:
    name: str
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    @property
    def resource(self) -> Any:
        # boto3 resources are not thread-safe (the sweeper works from a pool): one per thread.
        table = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = boto3.resource("dynamodb").Table(self.name)
        return table

    def get(self, pk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.resource.get_item(Key={"pk": pk}, ConsistentRead=True).get("Item")
        return item

    def transact(self, writes: list[tuple[str, dict[str, Any]]], tries: int = 6) -> None:
        """All or none of (`Put` | `Update` | ..., its request without TableName), in one transaction.

        One that DynamoDB cancelled only for a conflict with another transaction on the same items (a
        tenant's budget or usage day that many tasks write at once) is tried again after a short random
        wait; a failed condition is the caller's to read (`cancellation_codes`)."""
        items = [{kind: {"TableName": self.name, **body}} for kind, body in writes]
        for attempt in range(tries):
            try:
                self.resource.meta.client.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                codes = cancellation_codes(exc)
                conflict = "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes
                if not conflict or attempt == tries - 1:
                    raise
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - a jitter, not a secret


def cancellation_codes(exc: ClientError) -> list[str | None]:
    """Per write of a cancelled transaction, why: "ConditionalCheckFailed", "TransactionConflict", "None"...
    (empty for any other error)."""
    if exc.response["Error"]["Code"] != "TransactionCanceledException":
        return []
    return [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: whole ones as int, others (costs, seconds) as float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dynamo_value(value: Any) -> Any:
    """Pydantic models and enums as DynamoDB-ready plain values (floats as Decimal, which boto3 needs)."""
    if hasattr(value, "model_dump"):
        return dynamo_value(value.model_dump(mode="json", exclude_none=True))
    if isinstance(value, list):
        return [dynamo_value(v) for v in value]
    if isinstance(value, dict):
        return {k: dynamo_value(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def conditionally(write: Callable[..., Any], **request: Any) -> bool:
    """Make a conditional write (`table.resource.update_item`...); False if its condition failed."""
    try:
        write(**request)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True
