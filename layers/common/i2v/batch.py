"""SQS partial batch responses (the event source's ReportBatchItemFailures): each record is handled alone; a
record whose handling raises is named back by its messageId and returns to the queue after its visibility
timeout (its dead-letter queue ends it), the others are deleted.

Written here rather than with powertools' BatchProcessor, which does the same loop: importing that utility
brings asyncio, every event data class and, with pydantic installed, its parser's models of every AWS event,
about 30 ms of each cold start of the three functions that use it (measured: `make bench`, P1). A batch
whose records all fail is answered, not raised: SQS retries the same records either way, and a raise would
log every record's traceback a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)

Record = dict[str, Any]  # an SQS event record as Lambda delivers it: messageId, receiptHandle, body, ...


def partial_batch(
    event: dict[str, Any],
    handle: Callable[[Record], object],
    *,
    told: tuple[type[Exception], ...] = (),
) -> dict[str, list[dict[str, str]]]:
    """Run `handle` on each record; the failures, as Lambda's partial batch response. An exception of a
    `told` type has been logged by the use case that raised it: it is not logged again."""
    failed = []
    for record in event.get("Records", []):
        try:
            handle(record)
        except told:
            failed.append({"itemIdentifier": record["messageId"]})
        except Exception:
            logger.exception("record failed; it returns to the queue", message_id=record["messageId"])
            failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}
