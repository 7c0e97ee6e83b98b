"""The task lifecycle in one screen: which status may follow which, what a provider's state means for ours,
and what has to happen once a task has ended.

Nothing else decides a move: `TaskStore.transition` asks `sources()` for the statuses a move may start from
and writes it conditionally on them, so no move goes backwards and a terminal status never changes.
"""

from __future__ import annotations

from enum import StrEnum

from i2v.models import TERMINAL, Status
from i2v.providers.base import ProviderState

_END = frozenset({Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})

# Every allowed move. `succeeded` means the MP4 is in our bucket, so only a task a provider has taken can get
# there (and only through ingest, which holds the ingest lease). Terminal states have no way out.
MOVES: dict[Status, frozenset[Status]] = {
    Status.ACCEPTED: frozenset({Status.SUBMITTED}) | _END,
    Status.SUBMITTED: frozenset({Status.PROCESSING, Status.SUCCEEDED}) | _END,
    Status.PROCESSING: frozenset({Status.SUCCEEDED}) | _END,
    **{status: frozenset() for status in TERMINAL},
}

# What a provider's answer means for our task. SUCCEEDED is not applied as such: the result goes to ingest.
PROVIDER_STATES: dict[ProviderState, Status] = {
    ProviderState.QUEUED: Status.SUBMITTED,
    ProviderState.PROCESSING: Status.PROCESSING,
    ProviderState.SUCCEEDED: Status.SUCCEEDED,
    ProviderState.FAILED: Status.FAILED,
    ProviderState.CANCELLED: Status.CANCELLED,
}


def allowed(frm: Status, to: Status) -> bool:
    return to in MOVES[frm]


def sources(to: Status) -> frozenset[Status]:
    """The statuses a task may be in for a move to `to`; empty for a status nothing moves to (accepted)."""
    return frozenset(frm for frm, targets in MOVES.items() if to in targets)


def reported(current: Status, state: ProviderState) -> Status | None:
    """The status a provider's report moves a task to, or None when it moves nothing (a repeat, or a report
    that would go backwards, such as "queued" after "processing")."""
    target = PROVIDER_STATES[state]
    return target if allowed(current, target) else None


class Work(StrEnum):
    """Work done at most once per task at a time, each claimed by its own conditional lease on the task."""

    SUBMIT = "submit"  # send the task to a provider (the create call, or a sweep that retries later)
    POLL = "poll"  # one sweep's turn at a due task
    INGEST = "ingest"  # copy the result into our bucket; while held, only the holder may end the task
    FINISH = "finish"  # the after-end steps below


class Step(StrEnum):
    """What must happen once a task has ended. The terminal write records the steps with the status (an
    outbox on the task item itself); whoever wrote it does them, else the sweeper, until none is left."""

    RECORD_COST = "record_cost"  # what the task cost (i2v.pricing), before it is announced
    CANCEL_AT_PROVIDER = "cancel_at_provider"  # stop a job that no longer has a use, so it is not billed on
    RELEASE_SLOT = (
        "release_slot"  # give the provider slot back (after the job is stopped): the next task goes
    )
    DISCARD_OUTPUT = "discard_output"  # an ingest that died after storing the MP4 leaves no stray output
    PUBLISH = "publish"  # the EventBridge event
    NOTIFY = "notify"  # the webhook, queued for the deliver function


def steps_after(status: Status) -> list[Step]:
    """The outbox a terminal write records, in the order the steps are done. A step that turns out not to
    apply (no provider job, no ingest ever started, no webhook_url) is done by doing nothing."""
    steps = [Step.RELEASE_SLOT, Step.PUBLISH, Step.NOTIFY]
    if status is not Status.SUCCEEDED:
        steps.insert(1, Step.DISCARD_OUTPUT)
    if status in (Status.CANCELLED, Status.TIMED_OUT):
        steps.insert(0, Step.CANCEL_AT_PROVIDER)
    return [Step.RECORD_COST, *steps]
