"""When a task is looked at again: every delay of the lifecycle in one place."""

from __future__ import annotations

from i2v.config import Settings

POLL_LEASE_SECONDS = 150  # longer than a sweep takes over one task, so a live sweep's turn never expires
INGEST_LEASE_SECONDS = 600  # longer than the ingest function's timeout: an expired lease is a dead ingest
FINISH_LEASE_SECONDS = 120
DELIVERY_LEASE_SECONDS = 60
RECONCILE_SECONDS = 900  # how long a submit with a lost answer waits for the provider's callback
INGEST_RECHECK_SECONDS = 120  # if the ingest message is lost, the sweeper asks the provider again after this
REFUSED_POLL_SECONDS = 60  # a status query refused (a rotated key?): ask again after this
FAILED_POLL_SECONDS = 30  # a status query that got no answer
OUTBOX_RETRY_SECONDS = 30  # an after-end step failed (EventBridge, SQS down): try again after this
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 2, 120


def next_poll(settings: Settings, eta_seconds: int | None) -> int:
    """Seconds until the next status query of a running job, from the provider's ETA where it gives one."""
    return min(max(eta_seconds or settings.poll_interval_seconds, MIN_POLL_SECONDS), MAX_POLL_SECONDS)


def after_poll_error(retry_after: float | None) -> int:
    return int(retry_after) if retry_after else FAILED_POLL_SECONDS
