"""Capacity: how many jobs each provider runs for us at once, and who waits, in what order, for a free one.

Slots. A provider's record (`HEALTH#<name>`, beside its health counters) counts the jobs in flight there, and
a task that holds one of them names the provider in its own `slot` attribute. Taking and giving back are one
transaction over both items (with the per-minute counter when taking), so the count is always the number of
tasks that name the provider: no crash can leak a slot or let two tasks hold one, and the cap holds under
any concurrency because the count is compared with it in the same write. A task gives its slot back when its
job can no longer run at the host: the host refused the submit, reported the job done (the video goes to
ingest), or the task ended. The terminal write records `release_slot` in the task's outbox, so a crash there
leaves the step to the sweeper, which keeps every task due until its outbox is done. A crash between taking
a slot and sending leaves an accepted task holding it: due when its submit lease ends, the sweeper's turn
sends it with that slot (or, if the send may have happened, fails it and so gives the slot back). So the
sweeper's turns are the reconciliation: a slot is held only by a task that is still in the due index.

The queue. A task that finds no free slot at any provider it may use waits in `accepted`, in the sparse
index `by_queue` (one partition: a position is one count query, and the head is one query away). Its sort
key is `<round>#<enqueued ms>#<id>`, the round by start-time fair queuing: a tenant's tasks take rounds
1, 2, 3... from the round being served when they arrive, so tenants interleave one task each, and FIFO
holds within a tenant. A tenant with 5 tasks behind another's 10,000 gets the next slot. A released slot
dispatches the head at once (`dispatch`): the task takes the slot and becomes due now, and a poll message
brings a poll worker to send it; the minute sweep dispatches too (a Retry-After that ended, a lost message).

Why not SQS fair queues (MessageGroupId = tenant): a consumer that receives a task while every slot is taken
can only put it back, which is the receive-refuse-release storm this replaces, and a queue cannot tell a
task where it stands. DynamoDB gives both with the conditional writes the slots need anyway.

What the host says. A 429 despite our cap lowers the provider's effective cap (multiplicatively, to at most
the jobs the host was running for us when it refused) and honours Retry-After; accepted submits raise it
back by one per INCREASE_WINDOWS windows. Faults (5xx, no answer) back off exponentially; five in a row open
the circuit: no job goes there for the cooldown, then one job tries it. Meanwhile waiting tasks that allow
another provider go there (spill over); a task whose submit outcome is unknown never moves.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from i2v import polls
from i2v.dynamo import cancellation_codes, conditionally, plain
from i2v.models import Attempt, ProviderHealth, QueuePlace, Status, Task
from i2v.runtime import Runtime
from i2v.store import BY_QUEUE, QUEUE_KEYS, Claim, due_attributes
from i2v.views import iso

logger = Logger(child=True)

QUEUE = "QUEUE"  # the by_queue partition (one: at 1,000 writes a second per partition, far above our creates)
DEFAULT_MAX_IN_FLIGHT = 5  # a host that documents no cap: conservative (LTX's default is 2, Leonardo's 10)
DEFAULT_SUBMITS_PER_MINUTE = 60
BLOCK_ON_429_SECONDS = 5  # a 429 without Retry-After
MAX_BLOCK_SECONDS = 300  # a longer Retry-After is cut to this (the sweeper looks again then)
CIRCUIT_COOLDOWN_SECONDS = 60
INCREASE_WINDOWS = 4  # accepted submits (x the effective cap) that raise a lowered cap by one
DECREASE = 0.75  # a 429 lowers the effective cap to at most this share of it
# A dispatch after one release fills one slot: its first query reads a few waiting tasks (every item a
# query returns is read and paid for), and the pages grow only when those were taken or could not go there.
DISPATCH_PAGES = (8, 50)
DISPATCH_SCAN = 1000  # waiting tasks one dispatch looks at, at most
DEFAULT_JOB_SECONDS = 60  # for a queue's eta before a provider has finished any job for us
RECENT_JOBS = 20  # job times kept per provider (p50 for eta and `fastest` routing)


@dataclass(frozen=True)
class Limits:
    max_in_flight: int
    max_submits_per_minute: int


def limits(rt: Runtime, provider: str) -> Limits:
    """The deployment's caps for a provider (ProviderSettings), else the host's documented ones, else ours."""
    from i2v.config import ProviderOptions
    from i2v.providers.registry import PROVIDERS

    options = rt.settings.provider_settings.get(provider, ProviderOptions())
    declared = PROVIDERS.get(provider)
    return Limits(
        options.max_in_flight or (declared and declared.max_in_flight) or DEFAULT_MAX_IN_FLIGHT,
        options.max_submits_per_minute
        or (declared and declared.max_submits_per_minute)
        or DEFAULT_SUBMITS_PER_MINUTE,
    )


class Take(StrEnum):
    TAKEN = "taken"
    FULL = "full"  # no free slot now (cap, effective cap, the minute's submits, Retry-After, the circuit)
    GONE = "gone"  # the task is not in the state the take needs (taken by another, ended, lease lost)


# A free slot: under the cap and the effective cap, not blocked, and a circuit that is closed or, after its
# cooldown, half open with nothing in flight (one job tries the host).
_ROOM = (
    "(attribute_not_exists(in_flight) OR (in_flight < :cap AND"
    " (attribute_not_exists(eff_cap) OR in_flight < eff_cap)))"
    " AND (attribute_not_exists(blocked_until) OR blocked_until <= :now)"
    " AND (attribute_not_exists(consecutive_faults) OR consecutive_faults < :trip"
    " OR attribute_not_exists(in_flight) OR in_flight < :one)"
)


def take(rt: Runtime, task_id: str, provider: str, *, holding: Claim | None = None) -> Take:
    """Take a slot of `provider` for an accepted task holding no slot: with `holding` (its submit lease,
    a task about to be sent), else a waiting task from the queue, which becomes due at once."""
    now = rt.now()
    cap = limits(rt, provider)
    minute = now // 60
    task: dict[str, Any] = {
        "Key": {"pk": f"TASK#{task_id}"},
        "ConditionExpression": "#status = :accepted AND attribute_not_exists(slot)",
        "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
        "ExpressionAttributeValues": {":p": provider, ":accepted": Status.ACCEPTED.value, ":one": 1},
    }
    sets = "slot = :p, #version = #version + :one"
    if holding is not None:
        task["ConditionExpression"] += " AND lease_submit = :holder"
        task["ExpressionAttributeValues"][":holder"] = holding.owner
    else:  # from the queue: due now, so the sweeper sends it if the poll message is lost
        task["ConditionExpression"] += " AND attribute_exists(queue_sk)"
        due = due_attributes(task_id, now, rt.tasks.due_shards)
        sets += ", " + ", ".join(f"{name} = :{name}" for name in due)
        task["ExpressionAttributeValues"].update({f":{name}": value for name, value in due.items()})
    task["UpdateExpression"] = f"SET {sets} REMOVE {', '.join(QUEUE_KEYS)}"
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            "Update",
            {
                "Key": {"pk": f"HEALTH#{provider}"},
                "UpdateExpression": "ADD in_flight :one",
                "ConditionExpression": _ROOM,
                "ExpressionAttributeValues": {
                    ":one": 1,
                    ":cap": cap.max_in_flight,
                    ":now": now,
                    ":trip": ProviderHealth.CIRCUIT_AFTER,
                },
            },
        ),
        (
            "Update",
            {
                "Key": {"pk": f"RATE#{provider}#{minute}"},
                "UpdateExpression": "ADD submits :one SET expires_at = :ttl",
                "ConditionExpression": "attribute_not_exists(submits) OR submits < :max",
                "ExpressionAttributeValues": {
                    ":one": 1,
                    ":max": cap.max_submits_per_minute,
                    ":ttl": now + 3600,
                },
            },
        ),
        ("Update", task),
    ]
    try:
        rt.tasks.table.transact(writes)
    except ClientError as exc:
        codes = cancellation_codes(exc)
        if not codes:
            raise
        return Take.GONE if codes[2] == "ConditionalCheckFailed" else Take.FULL  # or a conflict: later
    return Take.TAKEN


def give_back(rt: Runtime, task_id: str, provider: str) -> bool:
    """Release the task's slot of `provider` (if it holds it: once, however often this is called), then
    dispatch the next waiting task to it."""
    writes: list[tuple[str, dict[str, Any]]] = [
        (
            "Update",
            {
                "Key": {"pk": f"TASK#{task_id}"},
                "UpdateExpression": "REMOVE slot",
                "ConditionExpression": "slot = :p",
                "ExpressionAttributeValues": {":p": provider},
            },
        ),
        (
            "Update",
            {
                "Key": {"pk": f"HEALTH#{provider}"},
                "UpdateExpression": "ADD in_flight :minus",
                "ExpressionAttributeValues": {":minus": -1},
            },
        ),
    ]
    try:
        rt.tasks.table.transact(writes)
    except ClientError as exc:
        if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
            return False  # given back already
        raise
    dispatch(rt, [provider])
    return True


def wait(rt: Runtime, task: Task, claim: Claim, attempts: list[Attempt]) -> Task:
    """Put a task that found no free slot in the queue (its submit lease given back, `attempts` recorded):
    due only at its deadline, when it times out if it is still waiting. One that waited before keeps its
    place."""
    place = task.queue_place or _place_for(rt, task)
    waiting = rt.tasks.release(
        claim,
        attempts=attempts,
        queue_pk=QUEUE,
        queue_sk=place,
        queue_place=place,
        next_poll_at=task.deadline_at,
    )
    if waiting is None:
        return rt.tasks.require(task.id)
    # A slot that came free since this task looked was offered to a queue it was not in yet: take it now.
    records = rt.records.provider_health(task.providers)
    if any(has_room(rt, name, records[name]) for name in task.providers) and dispatch(rt, task.providers):
        return rt.tasks.get(task.id) or waiting
    return waiting


def _place_for(rt: Runtime, task: Task) -> str:
    """The task's sort key in the queue: its tenant's next round (never before the round being served)."""
    table = rt.tasks.table
    serving = int(plain((table.get(QUEUE) or {}).get("round", 0)))
    key = {"pk": f"TENANT#{task.tenant}"}
    round_ = serving
    if not conditionally(
        table.resource.update_item,
        Key=key,
        UpdateExpression="SET next_round = :after",
        ConditionExpression="attribute_not_exists(next_round) OR next_round <= :serving",
        ExpressionAttributeValues={":after": serving + 1, ":serving": serving},
    ):  # the tenant has tasks in later rounds already: the next of its own
        written = table.resource.update_item(
            Key=key,
            UpdateExpression="ADD next_round :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="UPDATED_NEW",
        )
        round_ = int(written["Attributes"]["next_round"]) - 1
    return f"{round_:012d}#{int(rt.clock() * 1000):013d}#{task.id}"


def _waiting(rt: Runtime, pages: tuple[int, ...] | None = DISPATCH_PAGES) -> Iterator[dict[str, Any]]:
    """The queue, head first: (task) pk, queue_sk and the providers each task may use; read `pages[0]`
    entries in the first query, then `pages[1]`, ... (the last size from then on; None: as many as a query
    returns, 1 MB: for counting)."""
    query: dict[str, Any] = {
        "IndexName": BY_QUEUE,
        "KeyConditionExpression": "queue_pk = :q",
        "ExpressionAttributeValues": {":q": QUEUE},
    }
    sizes = iter(pages or ())
    limit = None
    while True:
        limit = next(sizes, limit)
        if limit is not None:
            query["Limit"] = limit
        answer = rt.tasks.table.resource.query(**query)
        yield from answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return
        query["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def dispatch(rt: Runtime, providers: Iterable[str] | None = None) -> int:
    """Fill the free slots of `providers` (every configured one by default) from the head of the queue; a
    task goes to the first provider of its own list with room. Each dispatched task is due now and its
    turn is queued. Returns how many were dispatched."""
    open_ = set(rt.providers if providers is None else providers) & set(rt.providers)
    if providers is None and open_:  # the sweep's: only the providers whose record says they have room
        records = rt.records.provider_health(open_)
        open_ = {name for name in open_ if has_room(rt, name, records[name])}
    dispatched: list[str] = []
    served = 0
    if open_:
        # A provider with room that no waiting task may use would have the whole queue read: the first
        # DISPATCH_SCAN waiting tasks are looked at, the rest at the next release or sweep.
        for entry in islice(_waiting(rt), DISPATCH_SCAN):
            task_id = str(entry["pk"]).removeprefix("TASK#")
            for name in [p for p in entry.get("providers", []) if p in open_]:
                got = take(rt, task_id, name)
                if got is Take.TAKEN:
                    dispatched.append(task_id)
                    served = max(served, int(str(entry["queue_sk"]).split("#", 1)[0]))
                if got is not Take.FULL:
                    break
                open_.discard(name)
            if not open_:
                break
    if dispatched:
        _serving(rt, served)
        if rt.settings.poll_queue_url:
            polls.dispatch(rt, dispatched)
        logger.info("dispatched waiting tasks", count=len(dispatched))
    return len(dispatched)


def _serving(rt: Runtime, round_: int) -> None:
    """The round being served moves forward only: a tenant arriving now starts there."""
    conditionally(
        rt.tasks.table.resource.update_item,
        Key={"pk": QUEUE},
        UpdateExpression="SET #round = :r",
        ConditionExpression="attribute_not_exists(#round) OR #round < :r",
        ExpressionAttributeNames={"#round": "round"},
        ExpressionAttributeValues={":r": round_},
    )


def anyone_waiting(rt: Runtime) -> bool:
    """Is any task in the queue? A new task that would take a free slot before them waits its turn."""
    page = rt.tasks.table.resource.query(
        IndexName=BY_QUEUE,
        KeyConditionExpression="queue_pk = :q",
        ExpressionAttributeValues={":q": QUEUE},
        Limit=1,
    )
    return bool(page.get("Items"))


# -- what the host says ---------------------------------------------------------------------------------
def refused(rt: Runtime, record: ProviderHealth, provider: str, retry_after: float | None) -> None:
    """A 429 to a submit while we held a slot there (`record`: the provider's, as counting the refusal left
    it): the host runs fewer of our jobs than our cap lets out. Lower the effective cap (to at most the jobs
    it held besides this one, and to DECREASE of it) and let nothing new go there before Retry-After."""
    cap = effective_cap(rt, provider, record)
    lowered = max(1, min(record.in_flight - 1, math.ceil(cap * DECREASE)))
    block = min(MAX_BLOCK_SECONDS, math.ceil(retry_after) if retry_after else BLOCK_ON_429_SECONDS)
    values = {":until": rt.now() + block, ":cap": lowered, ":zero": 0, ":one": 1}
    key = {"pk": f"HEALTH#{provider}"}
    table = rt.tasks.table.resource
    if not conditionally(
        table.update_item,
        Key=key,
        UpdateExpression="SET blocked_until = :until, eff_cap = :cap, credit = :zero ADD refused :one",
        ConditionExpression="attribute_not_exists(eff_cap) OR eff_cap > :cap",
        ExpressionAttributeValues=values,
    ):
        del values[":cap"], values[":zero"]  # lowered as far already by another refusal
        table.update_item(
            Key=key,
            UpdateExpression="SET blocked_until = :until ADD refused :one",
            ExpressionAttributeValues=values,
        )
    logger.warning("provider refused a submit for capacity", provider=provider, effective_cap=lowered)
    _metric({"Refused": 1}, provider)


def faulted(rt: Runtime, record: ProviderHealth, provider: str) -> None:
    """A fault (5xx, no answer) at submit: no new job there for a backoff that doubles per fault in a row,
    up to the circuit's cooldown once it is open."""
    seconds = min(CIRCUIT_COOLDOWN_SECONDS, 2 ** max(0, record.consecutive_faults - 1))
    if record.consecutive_faults >= ProviderHealth.CIRCUIT_AFTER:
        seconds = CIRCUIT_COOLDOWN_SECONDS  # the circuit opens (again)
    rt.tasks.table.resource.update_item(
        Key={"pk": f"HEALTH#{provider}"},
        UpdateExpression="SET blocked_until = :until",
        ExpressionAttributeValues={":until": rt.now() + seconds},
    )


def accepted(rt: Runtime, record: ProviderHealth, provider: str) -> None:
    """An accepted submit: after enough of them, raise a lowered effective cap by one (back to none)."""
    if record.eff_cap is None or record.credit < INCREASE_WINDOWS * record.eff_cap:
        return
    raised = record.eff_cap + 1
    values: dict[str, Any] = {":zero": 0, ":seen": record.eff_cap}
    if raised >= limits(rt, provider).max_in_flight:
        expression = "SET credit = :zero REMOVE eff_cap"  # back to the configured cap
    else:
        expression = "SET credit = :zero, eff_cap = :raised"
        values[":raised"] = raised
    conditionally(  # another finisher raised it first: once is enough
        rt.tasks.table.resource.update_item,
        Key={"pk": f"HEALTH#{provider}"},
        UpdateExpression=expression,
        ConditionExpression="eff_cap = :seen",
        ExpressionAttributeValues=values,
    )


def finished_job(rt: Runtime, task: Task) -> None:
    """Keep how long the job took at its provider (submit to done), the last RECENT_JOBS of them."""
    if task.provider is None or task.submitted_at is None:
        return
    seconds = max(0, rt.now() - task.submitted_at)
    written = rt.tasks.table.resource.update_item(
        Key={"pk": f"HEALTH#{task.provider}"},
        UpdateExpression="SET recent_seconds = list_append(if_not_exists(recent_seconds, :none), :one)",
        ExpressionAttributeValues={":none": [], ":one": [seconds]},
        ReturnValues="UPDATED_NEW",
    )
    kept = len(written["Attributes"]["recent_seconds"])
    if kept > RECENT_JOBS:  # drop the oldest; the condition keeps two finishers from both trimming
        conditionally(
            rt.tasks.table.resource.update_item,
            Key={"pk": f"HEALTH#{task.provider}"},
            UpdateExpression="REMOVE " + ", ".join(f"recent_seconds[{i}]" for i in range(kept - RECENT_JOBS)),
            ConditionExpression="size(recent_seconds) = :kept",
            ExpressionAttributeValues={":kept": kept},
        )


# -- what is shown --------------------------------------------------------------------------------------
def provider_record(rt: Runtime, provider: str) -> ProviderHealth:
    return ProviderHealth.model_validate(plain(rt.tasks.table.get(f"HEALTH#{provider}") or {}))


def p50(record: ProviderHealth) -> float | None:
    times = sorted(record.recent_seconds)
    return times[len(times) // 2] if times else None


def has_room(rt: Runtime, provider: str, record: ProviderHealth) -> bool:
    """As the record read says (a take's condition decides): a free slot, not blocked."""
    free = record.in_flight < effective_cap(rt, provider, record)
    return free and (record.blocked_until or 0) <= rt.now()


def effective_cap(rt: Runtime, provider: str, record: ProviderHealth) -> int:
    cap = limits(rt, provider).max_in_flight
    return min(cap, record.eff_cap) if record.eff_cap is not None else cap


def publish(rt: Runtime) -> dict[str, dict[str, int]]:
    """In flight, waiting and the effective cap of each configured provider, as EMF metrics with a
    `provider` dimension (the sweeper publishes them every run: a gauge a minute). Returns them."""
    records = rt.records.provider_health(rt.providers)
    waiting = waiting_by_provider(rt)
    figures = {
        name: {
            "InFlight": records[name].in_flight,
            "Waiting": waiting.get(name, 0),
            "EffectiveCap": effective_cap(rt, name, records[name]),
        }
        for name in rt.providers
    }
    for name, values in figures.items():
        # An idle provider at its configured cap says nothing (the local stack sweeps every 2 s; a missing
        # point reads as no data, which an alarm on in flight or waiting treats as zero).
        if values["InFlight"] or values["Waiting"] or values["EffectiveCap"] < limits(rt, name).max_in_flight:
            _metric(values, name)
    return figures


def _metric(values: dict[str, int], provider: str) -> None:
    """EMF metrics with the provider as their dimension, one line. powertools' EphemeralMetrics: its own
    set (the handler's Metrics would give all its metrics this dimension), flushed at once, and silent
    where metrics are disabled (the local stack)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    emitted = EphemeralMetrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "I2vGateway"))
    emitted.add_dimension(name="provider", value=provider)
    for name, value in values.items():
        emitted.add_metric(name=name, unit=MetricUnit.Count, value=value)
    emitted.flush_metrics()


def waiting_by_provider(rt: Runtime) -> dict[str, int]:
    """How many waiting tasks may use each provider (a task that allows two counts at both)."""
    counts: dict[str, int] = {}
    for entry in _waiting(rt, pages=None):
        for name in entry.get("providers", []):
            counts[name] = counts.get(name, 0) + 1
    return counts


def place(rt: Runtime, task: Task) -> QueuePlace | None:
    """Where a waiting task stands: tasks before it in the queue (one count query), what it waits for, and
    when it should go: its turn among the slots of its providers, at their recent job times."""
    if task.queue_sk is None or task.status is not Status.ACCEPTED:
        return None
    ahead = 0
    query: dict[str, Any] = {
        "IndexName": BY_QUEUE,
        "KeyConditionExpression": "queue_pk = :q AND queue_sk < :mine",
        "ExpressionAttributeValues": {":q": QUEUE, ":mine": task.queue_sk},
        "Select": "COUNT",
    }
    while True:
        page = rt.tasks.table.resource.query(**query)
        ahead += int(page.get("Count", 0))
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    names = task.providers
    records = rt.records.provider_health(names)
    slots = sum(effective_cap(rt, n, records[n]) for n in names) or 1
    job = min((p50(records[n]) or DEFAULT_JOB_SECONDS for n in names), default=DEFAULT_JOB_SECONDS)
    rounds = ahead // slots + 1  # the slot turns until this task's
    return QueuePlace(
        position=ahead + 1,
        ahead=ahead,
        waiting_for="capacity at " + " or ".join(names),
        eta=iso(rt.now() + int(rounds * job)),
    )
