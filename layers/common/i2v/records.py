"""Records beside the tasks in the one table: API keys, provider health and webhook deliveries."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from i2v import layout
from i2v.dynamo import Table, plain
from i2v.models import ProviderHealth, WebhookDelivery

MAX_BUDGET_USD = 1_000_000_000  # far above any month's spend, far below DynamoDB's largest number (1E+126)


def budget_usd(text: str) -> float:
    """A monthly budget as typed, in USD: a finite number from 0 to MAX_BUDGET_USD with no minus sign (`-0`
    is refused too); else a ValueError saying what a budget is. What `set_budget` holds amounts to."""
    try:
        usd = float(text)
    except ValueError:
        usd = math.nan
    if not math.isfinite(usd) or math.copysign(1.0, usd) < 0 or usd > MAX_BUDGET_USD:
        raise ValueError(
            f"{text[:40]!r} is not a budget: a budget is USD a month, a number from 0 to {MAX_BUDGET_USD:,}"
            " such as 20 or 12.50"
        )
    return usd


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class Records:
    table: Table
    ttl_days: int = 30
    clock: Callable[[], float] = time.time

    def now(self) -> int:
        return int(self.clock())

    # -- api keys ---------------------------------------------------------------------------------
    def put_api_key(self, api_key: str, tenant: str) -> None:
        """Store a key for a tenant, and the tenant itself (the drop folder serves only known tenants).
        A tenant name that is not a short slug (`layout.TENANT_SLUG`) is a ValueError: nothing is stored."""
        layout.check_tenant(tenant)
        self.table.resource.update_item(
            Key={"pk": f"TENANT#{tenant}"},
            UpdateExpression="SET created_at = if_not_exists(created_at, :now)",
            ExpressionAttributeValues={":now": self.now()},
        )
        self.table.resource.put_item(
            Item={
                "pk": f"KEY#{hash_key(api_key)}",
                "tenant": tenant,
                "created_at": self.now(),
                "disabled": False,
            }
        )

    def budget(self, tenant: str) -> float | None:
        """The tenant's monthly budget in USD; None: no budget (never blocked)."""
        item = self.table.get(f"TENANT#{tenant}")
        value = item.get("budget_usd") if item else None
        return None if value is None else float(value)

    def set_budget(self, tenant: str, usd: float | None) -> None:
        """Set (or with None remove) a tenant's monthly budget. This month's remaining amount moves by the
        change, so what is reserved or spent stays counted."""
        layout.check_tenant(tenant)
        if usd is not None:
            budget_usd(repr(usd))
        key = {"pk": f"TENANT#{tenant}"}
        if usd is None:
            self.table.resource.update_item(Key=key, UpdateExpression="REMOVE budget_usd")
            return
        amount = Decimal(repr(float(usd)))
        self.table.resource.update_item(
            Key=key, UpdateExpression="SET budget_usd = :b", ExpressionAttributeValues={":b": amount}
        )
        month = datetime.fromtimestamp(self.now(), UTC).strftime("%Y-%m")
        period = self.table.get(f"BUDGET#{tenant}#{month}")
        if period and "limit" in period:
            old = period["limit"]
            self.table.resource.update_item(
                Key={"pk": f"BUDGET#{tenant}#{month}"},
                UpdateExpression="SET #limit = :new ADD remaining :delta",
                ConditionExpression="#limit = :old",
                ExpressionAttributeNames={"#limit": "limit"},
                ExpressionAttributeValues={":new": amount, ":delta": amount - old, ":old": old},
            )

    def tenant_exists(self, tenant: str) -> bool:
        """Was a key ever made for this tenant? (The tenant record is written with its first key.)"""
        return layout.valid_tenant(tenant) and self.table.get(f"TENANT#{tenant}") is not None

    def tenant_for_key(self, api_key: str) -> str | None:
        item = self.table.resource.get_item(Key={"pk": f"KEY#{hash_key(api_key)}"}).get("Item")
        if not item or item.get("disabled"):
            return None
        return str(item["tenant"])

    # -- provider health --------------------------------------------------------------------------
    def record_provider_outcome(
        self, provider: str, ok: bool, error: str | None = None, *, fault: bool = False
    ) -> ProviderHealth:
        """Count a submit's outcome on the provider's record; the record as it now is. `fault`: the host
        failed (5xx, no answer), as opposed to refusing this one request (a 4xx): faults in a row open the
        circuit (i2v.capacity). A success also earns the credit that raises a lowered cap back."""
        values: dict[str, Any]
        if ok:
            expression = (
                "SET consecutive_failures = :zero, consecutive_faults = :zero, last_success_at = :now"
                " ADD credit :one"
            )
            values = {":zero": 0, ":now": self.now(), ":one": 1}
        else:
            expression = "SET last_failure_at = :now, last_error = :error ADD consecutive_failures :one"
            if fault:
                expression += ", consecutive_faults :one"
            values = {":now": self.now(), ":error": (error or "")[:300], ":one": 1}
        written = self.table.resource.update_item(
            Key={"pk": f"HEALTH#{provider}"},
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return ProviderHealth.model_validate(plain(written["Attributes"]))

    def provider_health(self, providers: Iterable[str]) -> dict[str, ProviderHealth]:
        names = list(dict.fromkeys(providers))  # BatchGetItem refuses a key named twice
        if not names:
            return {}
        got = self.table.resource.meta.client.batch_get_item(
            RequestItems={self.table.name: {"Keys": [{"pk": f"HEALTH#{n}"} for n in names]}}
        )
        found = {str(i["pk"]).removeprefix("HEALTH#"): i for i in got["Responses"][self.table.name]}
        return {n: ProviderHealth.model_validate(plain(found.get(n, {}))) for n in names}

    # -- webhook deliveries -----------------------------------------------------------------------
    def claim_delivery(self, task_id: str, seconds: int) -> str | None:
        """The right to POST a task's webhook now (an owner token), unless it was delivered or another
        delivery of the same message is under way: duplicate queue messages never post twice at once."""
        owner = secrets.token_hex(8)
        try:
            self.table.resource.update_item(
                Key={"pk": f"DELIVERY#{task_id}"},
                UpdateExpression="SET lease_owner = :owner, lease_until = :until, expires_at = :ttl",
                ConditionExpression="(attribute_not_exists(delivered) OR delivered = :no) AND "
                "(attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={
                    ":owner": owner,
                    ":until": self.now() + seconds,
                    ":now": self.now(),
                    ":no": False,
                    ":ttl": self.now() + self.ttl_days * 86400,
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return owner

    def record_delivery(self, task_id: str, owner: str, result: str, delivered: bool) -> int:
        """Append one attempt to the task's delivery log and give the lease back; a success is for good.
        Returns the attempt's number (the log's length after it), from the write itself."""
        attempt = {"at": self.now(), "result": result[:300]}
        written = self.table.resource.update_item(
            Key={"pk": f"DELIVERY#{task_id}"},
            UpdateExpression="SET attempts = list_append(if_not_exists(attempts, :none), :one), "
            "delivered = :delivered REMOVE lease_owner, lease_until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues={
                ":none": [],
                ":one": [attempt],
                ":delivered": delivered,
                ":owner": owner,
            },
            ReturnValues="UPDATED_NEW",
        )
        return len(written["Attributes"]["attempts"])

    def delivery(self, task_id: str) -> WebhookDelivery:
        item = self.table.get(f"DELIVERY#{task_id}") or {}
        return WebhookDelivery.model_validate(plain(item))
