"""Budgets per tenant that hold under concurrency: a create reserves its worst case, atomically, and the
task's end gives back what it did not cost.

- A tenant's budget is USD per calendar month (UTC), set on its `TENANT#` record (`i2v keys budget`). A tenant
  without one is never blocked and reserves nothing.
- The month's item `BUDGET#<tenant>#<yyyy-mm>` holds what `remaining` of it. A create's worst case (duration
  x the highest price among the providers it may be routed to) is taken off `remaining` in the same
  DynamoDB transaction that stores the task, on the condition that that much remains: concurrent creates
  are serialised on the item, so they cannot together take more than the budget. A refused one is a 402.
- The task's end (the cost step, `i2v.usage.record`) adds back the reservation less what the client is
  charged, in the transaction that records the cost: once per task.
- Under a budget a provider without a price cannot be used (its cost could not be reserved), unless the
  operator allows it (`allow_unpriced_under_budget`); then only the priced ones' worst case is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from i2v.models import RequestProblem, Task, TaskCost, VideoRequest
from i2v.pricing import price_per_second
from i2v.runtime import Runtime


def period_of(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class Hold:
    """What a create takes off its tenant's month: `amount` USD of `limit`, in `period` (yyyy-mm)."""

    tenant: str
    period: str
    limit: float
    amount: float

    def update(self) -> dict[str, Any]:
        """The conditional update that takes `amount` off the month's remaining budget (set from `limit`
        the month's first time; that first time is checked against the limit by `hold`, as DynamoDB
        compares an attribute with a value, not two values)."""
        return {
            "Key": {"pk": f"BUDGET#{self.tenant}#{self.period}"},
            "UpdateExpression": "SET remaining = if_not_exists(remaining, :limit) - :amount, "
            "#limit = if_not_exists(#limit, :limit)",
            "ConditionExpression": "attribute_not_exists(remaining) OR remaining >= :amount",
            "ExpressionAttributeNames": {"#limit": "limit"},
            "ExpressionAttributeValues": {":limit": _usd(self.limit), ":amount": _usd(self.amount)},
        }


def hold(
    rt: Runtime, tenant: str, chosen: list[str], req: VideoRequest, now: int
) -> tuple[list[str], Hold | None]:
    """The providers usable for this create and what it must reserve (None: the tenant has no budget)."""
    limit = rt.records.budget(tenant)
    if limit is None:
        return chosen, None
    settings = rt.settings
    audio = req.audio_url is not None
    prices = {name: price_per_second(settings, name, req.resolution, audio) for name in chosen}
    usable = [n for n in chosen if prices[n] is not None or settings.allow_unpriced_under_budget]
    if not usable:
        raise RequestProblem(
            402,
            "No priced provider",
            detail=f"under a budget only providers with a price can be used; none of {', '.join(chosen)} has"
            f" one for {req.resolution}",
        )
    worst = round(req.duration * max((p for p in prices.values() if p is not None), default=0.0), 6)
    held = Hold(tenant, period_of(now), limit, worst)
    if worst > limit:
        raise refusal(rt, held)
    return usable, held


def refusal(rt: Runtime, held: Hold) -> RequestProblem:
    """The 402 for a create whose worst case is more than remains: it says what remains."""
    item = rt.tasks.table.get(f"BUDGET#{held.tenant}#{held.period}")
    remaining = float(item["remaining"]) if item and "remaining" in item else held.limit
    return RequestProblem(
        402,
        "Budget exceeded",
        detail=f"this request may cost up to ${held.amount:.4f}; ${max(remaining, 0):.4f} of your"
        f" ${held.limit:.2f} budget for {held.period} remains",
    )


def settlement(task: Task, cost: TaskCost) -> dict[str, Any] | None:
    """The update that gives back a task's reservation less its charge (an unknown charge keeps it all)."""
    if task.reserved_usd is None or task.budget_period is None:
        return None
    charged = task.reserved_usd if cost.client_charge is None else cost.client_charge
    return {
        "Key": {"pk": f"BUDGET#{task.tenant}#{task.budget_period}"},
        "UpdateExpression": "ADD remaining :back",
        "ExpressionAttributeValues": {":back": _usd(task.reserved_usd - charged)},
    }


def _usd(value: float) -> Decimal:
    return Decimal(repr(round(value, 6)))
