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


def follow(rt: Runtime, task: Task | None) -> bool:
    """Send the message for `task`'s next turn, delayed until it is due. False when none was sent."""
    url = rt.settings.poll_queue_url
    if not url or task is None or task.next_poll_at is None:
        return False
    delay = max(0, task.next_poll_at - rt.now())
    if delay > MAX_DELAY_SECONDS:
        return False
    try:
        rt.sqs.send_message(QueueUrl=url, MessageBody=_body(task.id), DelaySeconds=delay)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("next poll not queued; the sweep will find the task", task_id=task.id, error=str(exc))
        return False
    return True


def dispatch(rt: Runtime, task_ids: Iterable[str]) -> int:
    """Queue a turn for each task now; returns how many were queued (a failed batch is left to the sweep)."""
    url = rt.settings.poll_queue_url
    assert url, "dispatch needs I2V_POLL_QUEUE_URL"

    def send(batch: list[str]) -> int:
        entries = [{"Id": str(n), "MessageBody": _body(task_id)} for n, task_id in enumerate(batch)]
        try:
            answer = rt.sqs.send_message_batch(QueueUrl=url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("poll batch not queued; the next sweep retries", error=str(exc), tasks=len(batch))
            return 0
        return len(answer.get("Successful", []))

    with ThreadPoolExecutor(max_workers=max(1, rt.settings.sweeper_concurrency)) as pool:
        return sum(pool.map(send, _batches(task_ids)))


def _batches(items: Iterable[str]) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(islice(it, BATCH)):
        yield batch


def _body(task_id: str) -> str:
    return PollMessage(task_id=task_id).model_dump_json()
