"""Timed turns through the poll queue: how due tasks reach a poll worker, on time and at any scale.

- After each turn on a task, one message delayed until the task is next due brings a poll worker back then
  (`follow`), so a poll-only provider is asked every poll interval, not every sweep period.
- A sweep hands the due tasks it has no time for to the queue at once (`dispatch`), and Lambda scales the poll
  workers with the queue, so one sweep never has to poll every task in flight itself.
- Nothing here is relied on alone: a lost or late message only means the minute sweep finds the task in the
  due index. A duplicate is harmless, because a turn starts with a conditional claim of the task's poll lease
  on a due task, and only the turn that won it sends the next message.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from i2v.messages import PollMessage
from i2v.models import Task
from i2v.runtime import Runtime

logger = Logger(child=True)

MAX_DELAY_SECONDS = 900  # SQS's longest message delay; a task due later is found by the sweep
BATCH = 10  # SendMessageBatch's most entries


def follow(rt: Runtime, tasks: Iterable[Task]) -> int:
    """Queue each task's next turn, delayed until it is due (tasks out of the due index, or due further away
    than SQS can delay, are left to the sweep). Returns how many were queued."""
    if not rt.settings.poll_queue_url:
        return 0
    now = rt.now()
    return _send(
        rt,
        (
            (task.id, max(0, task.next_poll_at - now))
            for task in tasks
            if task.next_poll_at is not None and task.next_poll_at - now <= MAX_DELAY_SECONDS
        ),
    )


def dispatch(rt: Runtime, task_ids: Iterable[str]) -> int:
    """Queue a turn for each task now; returns how many were queued (a failed batch is left to the sweep)."""
    assert rt.settings.poll_queue_url, "dispatch needs I2V_POLL_QUEUE_URL"
    return _send(rt, ((task_id, 0) for task_id in task_ids))


def _send(rt: Runtime, turns: Iterable[tuple[str, int]]) -> int:
    """SendMessageBatch, ten (task id, delay) a message each, a few batches at a time."""

    def send(batch: list[tuple[str, int]]) -> int:
        entries = [
            {
                "Id": str(n),
                "MessageBody": PollMessage(task_id=task_id).model_dump_json(),
                "DelaySeconds": delay,
            }
            for n, (task_id, delay) in enumerate(batch)
        ]
        try:
            answer = rt.sqs.send_message_batch(QueueUrl=rt.settings.poll_queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.warning(
                "turns not queued; the sweep finds the tasks when due", error=str(exc), tasks=len(batch)
            )
            return 0
        for failed in answer.get("Failed", []):
            logger.warning("a turn not queued; the sweep finds it when due", error=failed.get("Message"))
        return len(answer.get("Successful", []))

    batches = list(_batches(turns))
    if len(batches) == 1:
        return send(batches[0])  # the common case (a create, a worker's batch): no threads
    with ThreadPoolExecutor(max_workers=max(1, rt.settings.sweeper_concurrency)) as pool:
        return sum(pool.map(send, batches))


def _batches(items: Iterable[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    it = iter(items)
    while batch := list(islice(it, BATCH)):
        yield batch
