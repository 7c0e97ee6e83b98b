"""TaskStore: tasks, idempotency records and API keys in one DynamoDB table.

Every status change is a conditional write: terminal states never change and the first terminal write
wins. In-flight tasks carry `next_poll_at` in a sparse index, so the sweeper's "what is due" is a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
from botocore.exceptions import ClientError

from i2v.models import IN_FLIGHT, TERMINAL, ProviderHealth, RequestProblem, Status, Task, WebhookDelivery

BY_TENANT = "by_tenant"
BY_DUE = "by_due"


def new_task_id(now: float | None = None) -> str:
    """`vid_` + 48-bit millisecond time + 40 random bits, hex: sorts by creation time."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"vid_{ms:012x}{secrets.token_hex(5)}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class IdempotencyConflict(RequestProblem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "Idempotency-Key reused with a different request",
            detail="this Idempotency-Key was already used with a different body; use a new key",
        )


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; ours are all integers."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class TaskStore:
    table_name: str
    due_shards: int = 4
    ttl_days: int = 30
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._local = threading.local()

    @property
    def table(self) -> Any:
        # boto3 resources are not thread-safe (the sweeper polls from a pool): one per thread.
        table = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = boto3.resource("dynamodb").Table(self.table_name)
        return table

    # -- keys -------------------------------------------------------------------------------------
    @staticmethod
    def _task_pk(task_id: str) -> str:
        return f"TASK#{task_id}"

    def _shard(self, task_id: str) -> str:
        return f"DUE#{int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % self.due_shards}"

    def _due_attrs(self, task_id: str, next_poll_at: int) -> dict[str, Any]:
        return {
            "next_poll_at": next_poll_at,
            "due_pk": self._shard(task_id),
            "due_sk": f"{next_poll_at:010d}#{task_id}",
        }

    def _item(self, task: Task) -> dict[str, Any]:
        item: dict[str, Any] = task.model_dump(mode="json", exclude_none=True)
        item.update(
            pk=self._task_pk(task.id),
            tenant_pk=f"TENANT#{task.tenant}",
            tenant_sk=task.id,  # ids sort by creation time (milliseconds), so this lists newest first
            expires_at=task.created_at + self.ttl_days * 86400,
        )
        if task.next_poll_at is not None and task.status in IN_FLIGHT:
            item.update(self._due_attrs(task.id, task.next_poll_at))
        return item

    @staticmethod
    def _task(item: dict[str, Any]) -> Task:
        return Task.model_validate(_plain(item))

    # -- tasks ------------------------------------------------------------------------------------
    def create(self, task: Task, idempotency: tuple[str, str] | None = None) -> tuple[Task, bool]:
        """Store a new task; with (key, request hash) also the idempotency record, atomically.

        Returns (task, created). A reused key with the same hash returns the earlier task.
        """
        put_task = {
            "TableName": self.table_name,
            "Item": self._item(task),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if idempotency is None:
            self.table.put_item(Item=put_task["Item"], ConditionExpression=put_task["ConditionExpression"])
            return task, True
        key, request_hash = idempotency
        idem_pk = f"IDEM#{task.tenant}#{key}"
        put_idem = {
            "TableName": self.table_name,
            "Item": {
                "pk": idem_pk,
                "hash": request_hash,
                "task_id": task.id,
                "expires_at": task.created_at + 86400,
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        try:
            self.table.meta.client.transact_write_items(TransactItems=[{"Put": put_task}, {"Put": put_idem}])
            return task, True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
        existing = self.idempotent_task(task.tenant, key, request_hash)
        if existing is None:  # the record outlived its task (TTL); treat the key as spent
            raise IdempotencyConflict()
        return existing, False

    def idempotent_task(self, tenant: str, key: str, request_hash: str) -> Task | None:
        """The task an idempotency key already made (None if unused); another body under it is a conflict."""
        record = self.table.get_item(Key={"pk": f"IDEM#{tenant}#{key}"}, ConsistentRead=True).get("Item")
        if record is None:
            return None
        if record["hash"] != request_hash:
            raise IdempotencyConflict()
        return self.get(str(record["task_id"]))

    def get(self, task_id: str) -> Task | None:
        item = self.table.get_item(Key={"pk": self._task_pk(task_id)}, ConsistentRead=True).get("Item")
        return self._task(item) if item else None

    def transition(self, task_id: str, to: Status, expect: Iterable[Status], **changes: Any) -> Task | None:
        """Move a task to `to` if its status is one of `expect`; None if it was not (someone else won).

        Terminal targets clear the due-poll attributes so the task leaves the sweeper's index.
        """
        allowed = [s for s in expect if s not in TERMINAL]
        if not allowed:
            raise ValueError("terminal states never change")
        now = int(self.clock())
        sets: dict[str, Any] = {**changes, "status": to.value, "updated_at": now}
        removes: list[str] = []
        if to in TERMINAL:
            sets["finished_at"] = now
            sets.pop("next_poll_at", None)
            removes = ["next_poll_at", "due_pk", "due_sk", "ingest_lease"]
        elif "next_poll_at" in sets:
            sets.update(self._due_attrs(task_id, sets["next_poll_at"]))
        return self._update(task_id, sets, removes, allowed)

    def update(self, task_id: str, expect: Iterable[Status] = IN_FLIGHT, **changes: Any) -> Task | None:
        """Change fields of a task whose status is one of `expect` (by default: any not finished).

        None if it was not, so a stale writer cannot overwrite what a newer one recorded.
        """
        sets: dict[str, Any] = {**changes, "updated_at": int(self.clock())}
        if "next_poll_at" in sets:
            sets.update(self._due_attrs(task_id, sets["next_poll_at"]))
        return self._update(task_id, sets, [], [s for s in expect if s not in TERMINAL])

    def _update(
        self, task_id: str, sets: dict[str, Any], removes: list[str], expect: list[Status]
    ) -> Task | None:
        names = {f"#s{i}": name for i, name in enumerate(sets)}
        values: dict[str, Any] = {f":s{i}": _dynamo(value) for i, value in enumerate(sets.values())}
        expression = (
            "SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(sets))) + ", #version = #version + :one"
        )
        names["#version"] = "version"
        values[":one"] = 1
        if removes:
            names.update({f"#r{i}": name for i, name in enumerate(removes)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        names["#status"] = "status"
        values.update({f":e{i}": status.value for i, status in enumerate(expect)})
        condition = (
            "attribute_exists(pk) AND #status IN (" + ", ".join(f":e{i}" for i in range(len(expect))) + ")"
        )
        try:
            result = self.table.update_item(
                Key={"pk": self._task_pk(task_id)},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return self._task(result["Attributes"])

    def claim_ingest(self, task_id: str, lease_seconds: int) -> bool:
        """Take the right to copy a task's output; duplicate ingest messages find it taken."""
        now = int(self.clock())
        try:
            self.table.update_item(
                Key={"pk": self._task_pk(task_id)},
                UpdateExpression="SET ingest_lease = :until",
                ConditionExpression="attribute_exists(pk) AND #status IN (:a, :b, :c) AND "
                "(attribute_not_exists(ingest_lease) OR ingest_lease < :now)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":until": now + lease_seconds,
                    ":now": now,
                    ":a": Status.ACCEPTED.value,
                    ":b": Status.SUBMITTED.value,
                    ":c": Status.PROCESSING.value,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- queries ----------------------------------------------------------------------------------
    def list_for_tenant(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Task], str | None]:
        tenant_pk = f"TENANT#{tenant}"
        query: dict[str, Any] = {
            "IndexName": BY_TENANT,
            "KeyConditionExpression": "tenant_pk = :t",
            "ExpressionAttributeValues": {":t": tenant_pk},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            query["ExclusiveStartKey"] = _decode_cursor(cursor, tenant_pk)
        page = self.table.query(**query)
        tasks = [self._task(item) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        return tasks, _encode_cursor(last) if last else None

    def due(self, limit: int = 100) -> Iterator[str]:
        """Ids of in-flight tasks whose next poll time has come, oldest first per shard."""
        upper = f"{int(self.clock()):010d}~"  # '~' sorts after '#<id>'
        for shard in range(self.due_shards):
            page = self.table.query(
                IndexName=BY_DUE,
                KeyConditionExpression="due_pk = :p AND due_sk <= :u",
                ExpressionAttributeValues={":p": f"DUE#{shard}", ":u": upper},
                Limit=limit,
            )
            for item in page.get("Items", []):
                yield str(item["pk"]).removeprefix("TASK#")

    # -- provider health --------------------------------------------------------------------------
    def record_provider_outcome(self, provider: str, ok: bool, error: str | None = None) -> None:
        now = int(self.clock())
        values: dict[str, Any]
        if ok:
            expression, values = (
                "SET consecutive_failures = :zero, last_success_at = :now",
                {":zero": 0, ":now": now},
            )
        else:
            expression = "SET last_failure_at = :now, last_error = :error ADD consecutive_failures :one"
            values = {":now": now, ":error": (error or "")[:300], ":one": 1}
        self.table.update_item(
            Key={"pk": f"HEALTH#{provider}"}, UpdateExpression=expression, ExpressionAttributeValues=values
        )

    def provider_health(self, providers: Iterable[str]) -> dict[str, ProviderHealth]:
        names = list(providers)
        if not names:
            return {}
        got = self.table.meta.client.batch_get_item(
            RequestItems={self.table_name: {"Keys": [{"pk": f"HEALTH#{n}"} for n in names]}}
        )
        found = {str(item["pk"]).removeprefix("HEALTH#"): item for item in got["Responses"][self.table_name]}
        return {n: ProviderHealth.model_validate(_plain(found.get(n, {}))) for n in names}

    # -- webhook deliveries -----------------------------------------------------------------------
    def record_delivery(self, task_id: str, result: str, delivered: bool) -> None:
        """Append one attempt to the task's delivery log; a success marks it delivered for good."""
        attempt = {"at": int(self.clock()), "result": result[:300]}
        self.table.update_item(
            Key={"pk": f"DELIVERY#{task_id}"},
            UpdateExpression="SET attempts = list_append(if_not_exists(attempts, :none), :one), "
            + ("delivered = :yes" if delivered else "delivered = if_not_exists(delivered, :yes)")
            + ", expires_at = :ttl",
            ExpressionAttributeValues={
                ":none": [],
                ":one": [attempt],
                ":yes": delivered,
                ":ttl": int(self.clock()) + self.ttl_days * 86400,
            },
        )

    def delivery(self, task_id: str) -> WebhookDelivery:
        item = self.table.get_item(Key={"pk": f"DELIVERY#{task_id}"}, ConsistentRead=True).get("Item", {})
        return WebhookDelivery.model_validate(_plain(item))

    # -- api keys ---------------------------------------------------------------------------------
    def put_api_key(self, api_key: str, tenant: str) -> None:
        self.table.put_item(
            Item={
                "pk": f"KEY#{hash_key(api_key)}",
                "tenant": tenant,
                "created_at": int(self.clock()),
                "disabled": False,
            }
        )

    def tenant_for_key(self, api_key: str) -> str | None:
        item = self.table.get_item(Key={"pk": f"KEY#{hash_key(api_key)}"}).get("Item")
        if not item or item.get("disabled"):
            return None
        return str(item["tenant"])


def _dynamo(value: Any) -> Any:
    """Pydantic models and enums as DynamoDB-ready plain values."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    if isinstance(value, Status):
        return value.value
    return value


def _encode_cursor(key: dict[str, Any]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(_plain(key), separators=(",", ":")).encode()).decode().rstrip("=")
    )


def _decode_cursor(cursor: str, tenant_pk: str) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    # A cursor must point into the caller's own partition, or it is not one we issued.
    if (
        not isinstance(key, dict)
        or key.get("tenant_pk") != tenant_pk
        or set(key) != {"pk", "tenant_pk", "tenant_sk"}
    ):
        raise RequestProblem.invalid("cursor", "not a cursor from this listing")
    if not all(isinstance(v, str) for v in key.values()):
        raise RequestProblem.invalid("cursor", "not a cursor from this listing")
    return key
