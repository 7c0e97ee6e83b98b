"""Sweep: every due task gets one turn — polled, submitted again, timed out, or its outbox finished.

Sweeps run every minute and may overlap (each may take up to its timeout). Each task's turn is claimed with
the poll lease, and a submit with the submit lease, so two sweeps never do one task's work twice.

Turns come from two places: the sweep takes up to `sweep_inline_limit` due tasks itself and queues the rest,
and the poll worker (PollFunction) takes queued turns, each followed by the message for the task's next turn
at its due time (`i2v.polls`). With no poll queue configured, the sweep takes every turn.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

from aws_lambda_powertools import Logger

from i2v import capacity, pacing
from i2v.complete import refresh
from i2v.lifecycle import Work
from i2v.models import Status, Task, TaskError
from i2v.notify import conclude, end, finish
from i2v.polls import dispatch, follow
from i2v.runtime import Runtime
from i2v.submit import submit

logger = Logger(child=True)

# Turns at once per status query the provider client lets out at once (its max_in_flight): a turn's claim
# and result are DynamoDB writes that need no query slot, so while the queries are out other turns claim and
# record theirs, and the provider's answers, not the writes, set the pace.
TURNS_PER_SLOT = 4


def sweep(rt: Runtime) -> Counter[str]:
    """One run of the sweeper over every due task. Returns how each turn ended (and how many were queued)."""
    # Free slots first (a Retry-After that ended, a lost dispatch): the tasks given one are due now.
    dispatched = capacity.dispatch(rt)
    due = rt.tasks.due()
    queued = bool(rt.settings.poll_queue_url)
    ids = list(islice(due, rt.settings.sweep_inline_limit) if queued else due)
    outcomes = take_turns(rt, ids)
    if queued and (handed := dispatch(rt, due)):
        outcomes["queued"] = handed
    if dispatched:
        outcomes["dispatched"] = dispatched
    capacity.publish(rt)
    return outcomes


def take_turns(rt: Runtime, task_ids: list[str]) -> Counter[str]:
    """A turn for each task, with at most `sweeper_concurrency` status queries out at once; then, in batches,
    the message for the next turn of each task still running, at its due time."""
    slots = max(1, rt.settings.sweeper_concurrency)
    bounded = rt.client.max_in_flight is not None and rt.client.max_in_flight <= slots
    with ThreadPoolExecutor(max_workers=slots * TURNS_PER_SLOT if bounded else slots) as pool:
        turns = list(pool.map(lambda task_id: take_turn(rt, task_id), task_ids))
    follow(rt, [turn.next for turn in turns if turn.next is not None])
    return Counter(turn.outcome for turn in turns)


@dataclass(frozen=True)
class Turn:
    outcome: str
    next: Task | None = None  # the task after a turn that leaves it running (its next turn is to queue)


def take_turn(rt: Runtime, task_id: str) -> Turn:
    """One turn on a task: claim it (due, in flight), then poll, submit or time it out; an ended task that
    still owes after-end steps gets them done instead."""
    try:
        turn = rt.tasks.claim(task_id, Work.POLL, pacing.POLL_LEASE_SECONDS, due=True)
        if turn is None or turn.task is None:
            task = rt.tasks.get(task_id)  # read only when the claim fails: most turns need no read
            if task is None:
                return Turn("skipped")
            if task.status.terminal:
                return Turn(f"outbox_{finish(rt, task)}")
            return Turn("taken")  # another turn has it, or it is not due (a duplicate message)
        try:
            outcome, after = _turn(rt, turn.task)
        except BaseException:
            rt.tasks.release(turn)
            raise
        if after is None or after.next_poll_at == turn.task.next_poll_at:
            # Nothing scheduled its next turn (which gives the lease back in the same write): give it back.
            after = rt.tasks.release(turn) or after
        return Turn(outcome, after if after is not None and not after.status.terminal else None)
    except Exception:
        logger.exception("sweeping a task failed", task_id=task_id)
        return Turn("error")


def _turn(rt: Runtime, task: Task) -> tuple[str, Task | None]:
    """The turn's work; how it ended, and the task as its last write left it (None: nothing written)."""
    if rt.now() >= task.deadline_at:
        return _time_out(rt, task)
    if task.status is not Status.ACCEPTED:
        after = refresh(rt, task)
        return after.status.value, after
    if task.queue_sk is not None:  # waiting for a slot: only a dispatch sends it (due now: its deadline)
        return "waiting", rt.tasks.update(task.id, next_poll_at=task.deadline_at)
    claim = rt.tasks.claim(task.id, Work.SUBMIT, rt.settings.submit_grace_seconds, {Status.ACCEPTED})
    if claim is None or claim.task is None:
        return "taken", None  # a submit is under way
    task = claim.task
    last = task.attempts[-1] if task.attempts else None
    if last is not None and last.outcome in ("sent", "unknown"):
        # A crash between sending and hearing back, or a lost answer no callback explained in time: the job
        # may exist at the provider. Do not pay twice.
        error = TaskError(
            code="submit_outcome_unknown", message=f"{last.provider}: submit answer lost; not resubmitted"
        )
        ended = end(rt, task.id, Status.FAILED, error=error)
        return ended.status.value, ended
    after = submit(rt, task, claim)
    return after.status.value, after


def _time_out(rt: Runtime, task: Task) -> tuple[str, Task | None]:
    error = TaskError(code="timed_out", message=f"not finished within {rt.settings.task_deadline_seconds} s")
    if task.queue_sk is not None:
        names = " or ".join(task.providers)
        message = f"waited {rt.now() - task.created_at} s for capacity at {names}; never sent to a provider"
        error = TaskError(code="timed_out", message=message)
    moved = conclude(rt, task.id, Status.TIMED_OUT, error=error)
    # Not moved: it ended meanwhile, or an ingest is storing its video (the ingest ends it).
    return (Status.TIMED_OUT.value, moved) if moved else ("finishing", None)
