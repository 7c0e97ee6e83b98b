"""What a task cost: the provider's own figure where it reports one, else the operator's price table.

A task ends with one `TaskCost` (recorded by the after-end step `record_cost`, so it is in the task's event
and webhook): `billed_seconds` from the MP4 we stored, `provider_cost` and where it came from, and the
client's charge, which is 0 for any task that did not succeed (failed, cancelled, timed out, or never
accepted by a provider). Pass-through pricing: a succeeded task's client charge is its provider cost.
"""

from __future__ import annotations

from i2v.config import Settings
from i2v.models import CostSource, Status, Task, TaskCost


def price_per_second(settings: Settings, provider: str, resolution: str, audio: bool) -> float | None:
    """USD per second for this provider and request shape: from the operator's prices for it (I2V_PRICES)
    where there are any, else from the price the host publishes (its module's declaration); None if none."""
    # Imported here, not at the top: the registry imports every provider module, and the API (status
    # queries) and the ingest import this module on their cold start without needing any of them.
    from i2v.providers.registry import PROVIDERS

    declared = PROVIDERS.get(provider)
    table = settings.prices.get(provider) or (declared.price if declared else {})
    if audio and f"{resolution}+audio" in table:
        return table[f"{resolution}+audio"]
    return table.get(resolution)


def task_cost(settings: Settings, task: Task) -> TaskCost:
    delivered = task.status is Status.SUCCEEDED and task.output is not None
    seconds = round(task.output.duration or 0.0, 2) if delivered and task.output else 0.0
    cost: float | None
    source: CostSource
    if task.reported_cost_usd is not None:
        cost, source = task.reported_cost_usd, "reported"
    elif not delivered:
        cost, source = None, "not_billed"
    else:
        price = price_per_second(
            settings, task.provider or "", task.request.resolution, task.request.audio_url is not None
        )
        if price is None:
            cost, source = None, "no_price"
        elif task.output is None or task.output.duration is None:
            cost, source = None, "unmeasured"  # never an estimate of 0 for a video we could not measure
        else:
            operators = bool(settings.prices.get(task.provider or ""))
            cost, source = round(seconds * price, 6), "estimate" if operators else "list_price"
    charge = cost if delivered else 0.0
    return TaskCost(billed_seconds=seconds, provider_cost=cost, cost_source=source, client_charge=charge)
