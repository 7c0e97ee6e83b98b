"""TaskStore: tasks in DynamoDB, every change a conditional write.

A status changes only through `transition`, on the moves `i2v.lifecycle` allows. Work done once per task is
claimed first with `claim` (a lease: an owner and an expiry on the task item). A terminal write records the
steps still owed (the outbox) in the same write, and keeps the task in the due index until they are done.
In-flight tasks carry `next_poll_at` in a sparse index, so the sweeper's "what is due" is a query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from i2v import lifecycle
from i2v.dynamo import Table, cancellation_codes, dynamo_value, plain
from i2v.lifecycle import Step, Work
from i2v.models import IN_FLIGHT, TERMINAL, RequestProblem, Status, Task

BY_TENANT = "by_tenant"
BY_DUE = "by_due"
BY_QUEUE = "by_queue"  # the fair queue of tasks waiting for a provider slot (i2v.capacity)
QUEUE_KEYS = ("queue_pk", "queue_sk")  # that sparse index's keys: present only while a task waits


def new_task_id(now: float | None = None) -> str:
    """`vid_` + 48-bit millisecond time + 40 random bits, hex: sorts by creation time."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"vid_{ms:012x}{secrets.token_hex(5)}"


class BudgetExceeded(Exception):
    """The budget reservation's condition failed: less remains than the request's worst case."""


class IdempotencyConflict(RequestProblem):
    def __init__(self) -> None:
        super().__init__(
            422,
            "Idempotency-Key reused with a different request",
            detail="this Idempotency-Key was already used with a different body; use a new key",
        )


@dataclass(frozen=True)
class Claim:
    """A held lease: `owner` is what the conditional writes of its holder check."""

    task_id: str
    work: Work
    owner: str
    until: int
    task: Task | None = None  # the task as the claim left it


def _lease(work: Work) -> tuple[str, str]:
    return f"lease_{work.value}", f"lease_{work.value}_until"


def due_attributes(task_id: str, next_poll_at: int, shards: int) -> dict[str, Any]:
    """The sparse `by_due` index's keys for a task due at `next_poll_at`: tasks spread over `shards`
    partitions, sorted by time within each."""
    shard = int(hashlib.sha256(task_id.encode()).hexdigest(), 16) % shards
    return {
        "next_poll_at": next_poll_at,
        "due_pk": f"DUE#{shard}",
        "due_sk": f"{next_poll_at:010d}#{task_id}",
    }


def due_tasks(table: Table, shards: int, now: int, limit: int) -> Iterator[str]:
    """Every due task id, shard by shard, `limit` per page (read as the caller consumes them)."""
    upper = f"{now:010d}~"  # '~' sorts after '#<id>'
    for shard in range(shards):
        query: dict[str, Any] = {
            "IndexName": BY_DUE,
            "KeyConditionExpression": "due_pk = :p AND due_sk <= :u",
            "ExpressionAttributeValues": {":p": f"DUE#{shard}", ":u": upper},
            "Limit": limit,
        }
        while True:
            page = table.resource.query(**query)
            for item in page.get("Items", []):
                yield str(item["pk"]).removeprefix("TASK#")
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _ends_turn(sets: dict[str, Any], removes: list[str] | None = None) -> list[str]:
    """A write that schedules a task's next turn (`next_poll_at`) also ends the current one: it gives the poll
    lease back in the same write, so a turn costs no separate release. (A claim sets `next_poll_at` too, to
    its lease's end, and does not come through here.)"""
    removes = list(removes or [])
    if "next_poll_at" in sets:
        removes += [name for name in _lease(Work.POLL) if name not in removes]
    return removes


class Idempotency(NamedTuple):
    """An idempotency record's key, and the hash of the request made under it.

    Keys clients send (`Idempotency-Key`) and keys the gateway makes for itself (a drop-folder object's key
    and ETag) live under their own prefixes: a client cannot spend a key the gateway will use, or the other
    way round, whatever it sends.
    """

    record: str
    request_hash: str

    @classmethod
    def client(cls, tenant: str, key: str, request_hash: str) -> Idempotency:
        return cls(f"IDEM#{tenant}#{key}", request_hash)

    @classmethod
    def gateway(cls, tenant: str, key: str, request_hash: str) -> Idempotency:
        return cls(f"OWNIDEM#{tenant}#{key}", request_hash)


def _idempotency_record(task: Task, idem: Idempotency) -> dict[str, Any]:
    """The Put of the record that ties an idempotency key (and its request) to the task it made, a day."""
    return {
        "Item": {
            "pk": idem.record,
            "hash": idem.request_hash,
            "task_id": task.id,
            "expires_at": task.created_at + 86400,
        },
        "ConditionExpression": "attribute_not_exists(pk)",
    }


def _held(claim: Claim) -> tuple[list[str], dict[str, Any]]:
    """The condition (and its value) that a lease is still `claim`'s."""
    return [f"{_lease(claim.work)[0]} = :holder"], {":holder": claim.owner}


@dataclass
class TaskStore:
    table: Table
    due_shards: int = 4
    ttl_days: int = 30
    clock: Callable[[], float] = time.time

    def now(self) -> int:
        return int(self.clock())

    # -- keys -------------------------------------------------------------------------------------
    @staticmethod
    def _pk(task_id: str) -> str:
        return f"TASK#{task_id}"

    def _item(self, task: Task) -> dict[str, Any]:
        item: dict[str, Any] = dynamo_value(task)
        item.update(
            pk=self._pk(task.id),
            tenant_pk=f"TENANT#{task.tenant}",
            tenant_sk=task.id,  # ids sort by creation time (milliseconds), so this lists newest first
            expires_at=task.created_at + self.ttl_days * 86400,
        )
        if task.next_poll_at is not None and (task.status in IN_FLIGHT or task.outbox):
            item.update(due_attributes(task.id, task.next_poll_at, self.due_shards))
        return item

    # -- tasks ------------------------------------------------------------------------------------
    def new_claim(self, task_id: str, work: Work, seconds: int) -> Claim:
        return Claim(task_id, work, secrets.token_hex(8), self.now() + seconds)

    def create(
        self,
        task: Task,
        idempotency: Idempotency | None = None,
        holding: Claim | None = None,
        reserve: dict[str, Any] | None = None,
    ) -> tuple[Task, bool]:
        """Store a new task (with `holding` already claimed); with (key, request hash) also the idempotency
        record, and with `reserve` a conditional update (a budget reservation), all or none. Returns (task,
        created): a reused key with the same hash returns the earlier task; a refused reservation is
        BudgetExceeded.
        """
        item = self._item(task)
        if holding is not None:
            owner, until = _lease(holding.work)
            item.update({owner: holding.owner, until: holding.until})
        put_task = {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        if idempotency is None and reserve is None:
            self.table.resource.put_item(**put_task)
            return task, True
        writes: list[tuple[str, dict[str, Any]]] = [("Put", put_task)]
        if idempotency is not None:
            writes.append(("Put", _idempotency_record(task, idempotency)))
        if reserve is not None:
            writes.append(("Update", reserve))
        try:
            self.table.transact(writes)
            return task, True
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if not codes:
                raise
            replay = idempotency is not None and len(codes) > 1 and codes[1] == "ConditionalCheckFailed"
            if reserve is not None and codes[-1:] == ["ConditionalCheckFailed"] and not replay:
                raise BudgetExceeded() from None
            if idempotency is None:
                raise
        # The key was used (or is being used) by a concurrent or earlier create: answer with its task.
        existing = self.idempotent_task(idempotency)
        if existing is None:  # the record outlived its task (TTL); treat the key as spent
            raise IdempotencyConflict()
        return existing, False

    def idempotent_task(self, idem: Idempotency) -> Task | None:
        """The task an idempotency key already made (None if unused); another body under it is a conflict."""
        record = self.table.get(idem.record)
        if record is None:
            return None
        if record["hash"] != idem.request_hash:
            raise IdempotencyConflict()
        return self.get(str(record["task_id"]))

    def get(self, task_id: str) -> Task | None:
        item = self.table.get(self._pk(task_id))
        return Task.model_validate(plain(item)) if item else None

    def require(self, task_id: str) -> Task:
        task = self.get(task_id)
        if task is None:
            raise LookupError(task_id)
        return task

    def transition(
        self, task_id: str, to: Status, *, holding: Claim | None = None, **changes: Any
    ) -> Task | None:
        """Move a task to `to` if `i2v.lifecycle` allows the move from its status; None if not (someone else
        moved it first).

        While an ingest holds its lease only that ingest may end the task, so a cancel or a time-out cannot
        end a task whose video is being stored, and `succeeded` needs the ingest lease (`holding`).
        A terminal move records the outbox and keeps the task due until the outbox is done.
        """
        frm = lifecycle.sources(to)
        if not frm:
            raise ValueError(f"nothing moves to {to.value}")
        now = self.now()
        sets: dict[str, Any] = {**changes, "status": to, "updated_at": now}
        removes: list[str] = []
        conditions: list[str] = []
        values: dict[str, Any] = {}
        if to in TERMINAL:
            # Due at once: the outbox is the sweeper's if its writer cannot do it.
            sets.update(finished_at=now, outbox=lifecycle.steps_after(to), next_poll_at=now)
            removes = [name for work in (Work.SUBMIT, Work.POLL, Work.INGEST) for name in _lease(work)]
            removes += list(QUEUE_KEYS)  # an ended task waits for nothing (a slot it holds: the outbox)
            owner, until = _lease(Work.INGEST)
            if to is Status.SUCCEEDED:
                if holding is None or holding.work is not Work.INGEST:
                    raise ValueError("only the holder of the ingest lease can make a task succeed")
                conditions.append(f"{owner} = :holder")
                values[":holder"] = holding.owner
            else:
                conditions.append(f"(attribute_not_exists({until}) OR {until} < :now OR {owner} = :holder)")
                values.update({":now": now, ":holder": holding.owner if holding else "-"})
        elif to is Status.SUBMITTED:  # the job exists: the submit is over, whoever learnt its id
            removes = list(_lease(Work.SUBMIT))
            sets["submitted_at"] = now
        return self._update(task_id, sets, _ends_turn(sets, removes), frm, conditions, values)

    def update(
        self,
        task_id: str,
        expect: Collection[Status] = IN_FLIGHT,
        *,
        holding: Claim | None = None,
        **changes: Any,
    ) -> Task | None:
        """Change fields (not the status) of a task whose status is one of `expect`, by default any not
        finished, and (with `holding`) only while that lease is still ours. None if not, so a late writer
        cannot overwrite what a newer one recorded."""
        sets: dict[str, Any] = {**changes, "updated_at": self.now()}
        if holding is None:
            return self._update(task_id, sets, _ends_turn(sets), expect)
        return self._update(task_id, sets, _ends_turn(sets), expect, *_held(holding))

    def claim(
        self,
        task_id: str,
        work: Work,
        seconds: int,
        statuses: Collection[Status] = IN_FLIGHT,
        *,
        due: bool = False,
    ) -> Claim | None:
        """Take the lease for `work` on a task in one of `statuses`; None if another holder's lease is live.

        `due` also requires the task to be due and moves its next poll past the lease, so overlapping sweeps
        each take a different share of the due tasks.
        """
        claim = self.new_claim(task_id, work, seconds)
        owner, until = _lease(work)
        sets: dict[str, Any] = {owner: claim.owner, until: claim.until}
        conditions = [f"(attribute_not_exists({until}) OR {until} < :now)"]
        values: dict[str, Any] = {":now": self.now()}
        if work is Work.INGEST:
            sets["ingest_started"] = True
        if due:
            conditions.append("next_poll_at <= :now")
            sets["next_poll_at"] = claim.until
        moved = self._update(task_id, sets, [], statuses, conditions, values, touch=False)
        return replace(claim, task=moved) if moved else None

    def release(self, claim: Claim, **changes: Any) -> Task | None:
        """Give a lease back (with `changes`) if it is still ours; None if it was not."""
        owner, until = _lease(claim.work)
        sets: dict[str, Any] = {**changes, "updated_at": self.now()} if changes else {}
        return self._update(
            claim.task_id,
            sets,
            _ends_turn(sets, [owner, until]),
            set(Status),
            *_held(claim),
            touch=bool(changes),
        )

    def finished_step(self, claim: Claim, rest: list[Step]) -> Task | None:
        """Record the outbox left after a done step; with nothing left the task leaves the due index."""
        owner, until = _lease(Work.FINISH)
        sets: dict[str, Any] = {"outbox": rest} if rest else {}
        removes = [] if rest else ["outbox", "next_poll_at", "due_pk", "due_sk", owner, until]
        return self._update(claim.task_id, sets, removes, TERMINAL, *_held(claim), touch=False)

    def _update(
        self,
        task_id: str,
        sets: dict[str, Any],
        removes: list[str],
        expect: Collection[Status],
        conditions: list[str] | None = None,
        values: dict[str, Any] | None = None,
        *,
        touch: bool = True,
    ) -> Task | None:
        if "next_poll_at" in sets:  # the due index follows the next poll
            sets = {**sets, **due_attributes(task_id, sets["next_poll_at"], self.due_shards)}
        names = {f"#s{i}": name for i, name in enumerate(sets)}
        values = {**(values or {}), **{f":s{i}": dynamo_value(v) for i, v in enumerate(sets.values())}}
        assignments = [f"#s{i} = :s{i}" for i in range(len(sets))]
        if touch:  # a change a reader should see bumps the version; a lease or an outbox step does not
            names["#version"] = "version"
            values[":one"] = 1
            assignments.append("#version = #version + :one")
        expression = ("SET " + ", ".join(assignments)) if assignments else ""
        if removes:
            names.update({f"#r{i}": name for i, name in enumerate(removes)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        names["#status"] = "status"
        values.update({f":e{i}": status.value for i, status in enumerate(expect)})
        allowed = ", ".join(f":e{i}" for i in range(len(expect)))
        condition = " AND ".join([f"attribute_exists(pk) AND #status IN ({allowed})", *(conditions or [])])
        try:
            result = self.table.resource.update_item(
                Key={"pk": self._pk(task_id)},
                UpdateExpression=expression.strip(),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return Task.model_validate(plain(result["Attributes"]))

    # -- queries ----------------------------------------------------------------------------------
    def list_for_tenant(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Task], str | None]:
        """A page of the tenant's tasks, newest first, and the cursor of the next page (None: no more)."""
        return tenant_tasks(self.table, tenant, limit, cursor)

    def due(self, limit: int = 500) -> Iterator[str]:
        """Ids of tasks whose next poll (or outbox retry) time has come, oldest first per shard."""
        return due_tasks(self.table, self.due_shards, self.now(), limit)


def tenant_tasks(table: Table, tenant: str, limit: int, cursor: str | None) -> tuple[list[Task], str | None]:
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
    page = table.resource.query(**query)
    tasks = [Task.model_validate(plain(item)) for item in page.get("Items", [])]
    last = page.get("LastEvaluatedKey")
    return tasks, _encode_cursor(last) if last else None


def _encode_cursor(key: dict[str, Any]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(plain(key), separators=(",", ":")).encode()).decode().rstrip("=")
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
        or not all(isinstance(v, str) for v in key.values())
    ):
        raise RequestProblem.invalid("cursor", "not a cursor from this listing")
    return key
