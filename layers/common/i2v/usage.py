"""Usage per tenant: each ended task adds its cost to its tenant's day, once (and settles its budget
reservation in the same transaction, see i2v.budgets); `/v1/usage` reads the days.

A day is one item (`USAGE#<tenant>#<yyyy-mm-dd>`) of counters per provider and status, added to with `ADD`
in the same transaction that records the task's cost, on the condition that the cost is not recorded yet:
so a task counts once however often its after-end step runs, and a report reads at most one item per day
(no Scan, no per-task query).
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from botocore.exceptions import ClientError

from i2v import budgets
from i2v.dynamo import cancellation_codes, dynamo_value, plain
from i2v.models import RequestProblem, Task, TaskCost, UsageFigures, UsageGroup, UsageReport
from i2v.runtime import Runtime

GroupBy = Literal["provider", "day", "status"]
MAX_DAYS = 366
# The dates a report may name: wide enough for any usage, narrow enough that no day arithmetic overflows.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)
YYYY_MM_DD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Counters kept per (provider, status) in a day's item: attribute prefix -> the report's field.
FIELDS = {
    "n": "tasks",
    "s": "billed_seconds",
    "c": "provider_cost",
    "k": "client_charge",
    "u": "unpriced_tasks",
}


def day_of(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).date().isoformat()


def record(rt: Runtime, task: Task, cost: TaskCost) -> Task | None:
    """Record `task`'s cost and add it to its tenant's day, both or neither; None if already recorded."""
    day = day_of(task.finished_at or rt.now())
    group = f"{task.provider or 'none'}|{task.status.value}"
    adds = {
        f"n|{group}": 1,
        f"s|{group}": cost.billed_seconds,
        f"c|{group}": cost.provider_cost or 0,
        f"k|{group}": cost.client_charge or 0,
        f"u|{group}": 1 if cost.provider_cost is None and cost.client_charge is None else 0,
    }
    names = {f"#a{i}": name for i, name in enumerate(adds)}
    values = {f":a{i}": _number(value) for i, value in enumerate(adds.values())}
    settle = budgets.settlement(task, cost)
    try:
        rt.tasks.table.transact(
            [
                (
                    "Update",
                    {
                        "Key": {"pk": f"TASK#{task.id}"},
                        "UpdateExpression": "SET #cost = :cost",
                        "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(#cost)",
                        "ExpressionAttributeNames": {"#cost": "cost"},
                        "ExpressionAttributeValues": {":cost": dynamo_value(cost)},
                    },
                ),
                (
                    "Update",
                    {
                        "Key": {"pk": f"USAGE#{task.tenant}#{day}"},
                        "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds))),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    },
                ),
                *([("Update", settle)] if settle else []),
            ]
        )
    except ClientError as exc:
        if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
            return None  # recorded before (this step ran again after a crash), or the task is gone
        raise  # anything else (a conflict that outlasted the retries): the outbox tries the step again
    return task.model_copy(update={"cost": cost})  # the transaction changed nothing else of the task


def report(rt: Runtime, tenant: str, start: str | None, end: str | None, group_by: GroupBy) -> UsageReport:
    """The tenant's usage from `start` to `end` (ISO dates, inclusive; the last 30 days by default)."""
    last = _date("to", end) if end else datetime.fromtimestamp(rt.now(), UTC).date()
    first = _date("from", start) if start else last - timedelta(days=29)
    if first > last:
        raise RequestProblem.invalid("from", f"must not be after to ({last.isoformat()})")
    if (last - first).days >= MAX_DAYS:
        raise RequestProblem.invalid("from", f"a report covers at most {MAX_DAYS} days")
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    groups: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS.values(), 0.0))
    for day, item in _days(rt, tenant, days):
        for name, value in item.items():
            prefix, _, group = name.partition("|")
            if prefix not in FIELDS or not group:
                continue
            provider, _, status = group.partition("|")
            key = {"provider": provider, "status": status, "day": day}[group_by]
            groups[key][FIELDS[prefix]] += float(value)
    total = dict.fromkeys(FIELDS.values(), 0.0)
    rows = []
    for key in sorted(groups):
        rows.append(
            UsageGroup.model_validate({"key": key, **{k: _shown(k, v) for k, v in groups[key].items()}})
        )
        for k, v in groups[key].items():
            total[k] += v
    return UsageReport.model_validate(
        {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "group_by": group_by,
            "groups": rows,
            "total": UsageFigures.model_validate({k: _shown(k, v) for k, v in total.items()}),
        }
    )


def _days(rt: Runtime, tenant: str, days: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Each day's item that exists, by BatchGetItem (100 keys a call; unprocessed keys asked again)."""
    table = rt.tasks.table
    found: list[tuple[str, dict[str, Any]]] = []
    for n in range(0, len(days), 100):
        keys: list[dict[str, Any]] = [{"pk": f"USAGE#{tenant}#{day}"} for day in days[n : n + 100]]
        while keys:
            got = table.resource.meta.client.batch_get_item(
                RequestItems={table.name: {"Keys": keys, "ConsistentRead": True}}
            )
            for item in got["Responses"].get(table.name, []):
                found.append((str(item["pk"]).rsplit("#", 1)[1], plain(item)))
            keys = got.get("UnprocessedKeys", {}).get(table.name, {}).get("Keys", [])
    return sorted(found)


def _date(field: str, text: str) -> date:
    """A query's date as the README documents it: YYYY-MM-DD, from FIRST_DAY to LAST_DAY. (date.fromisoformat
    alone also reads 20261201 and 2026-W01-1, and day arithmetic near year 1 or 9999 overflows.)"""
    try:
        if not YYYY_MM_DD.fullmatch(text):
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise RequestProblem.invalid(field, f"must be a date as YYYY-MM-DD, not {text[:40]!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise RequestProblem.invalid(field, f"must be between {FIRST_DAY} and {LAST_DAY}")
    return day


def _number(value: float | int) -> Decimal | int:
    return Decimal(repr(float(value))) if isinstance(value, float) else value


def _shown(field: str, value: float) -> float | int:
    if field in ("tasks", "unpriced_tasks"):
        return int(value)
    return round(value, 6)
