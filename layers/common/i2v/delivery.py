"""Outbound webhooks: a finished task is POSTed to the request's webhook_url, signed per Standard Webhooks.

Each tenant verifies with its own secret (GET /v1/webhooks/secret), derived from one master secret so no
per-tenant state is needed. Failed deliveries are retried by the queue with growing delays; every attempt
is logged on the task's delivery record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from i2v.media import fetch_deadline, unreachable
from i2v.models import TaskView

RESPONSE_READ_CAP = 64 * 1024  # of a receiver's answer; the rest is never read

EVENT_TYPES = {
    "succeeded": "video.succeeded",
    "failed": "video.failed",
    "cancelled": "video.cancelled",
    "timed_out": "video.timed_out",
}


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx; the queue retries later."""


def tenant_secret(master: str, tenant: str) -> str:
    """The tenant's signing secret in Standard Webhooks form (whsec_ + base64 of 32 bytes)."""
    key = hmac.new(master.encode(), f"webhook:{tenant}".encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(key).decode()


def signed_event(view: TaskView, secret: str, now: datetime | None = None) -> tuple[dict[str, str], str]:
    """(headers, body) of the webhook for a finished task. The message id is stable per task and status,
    so a receiver can drop the duplicates that at-least-once delivery brings."""
    sent_at = now or datetime.now(UTC)
    body = json.dumps(
        {
            "type": EVENT_TYPES[view.status.value],
            "timestamp": sent_at.isoformat(timespec="seconds"),
            "data": view.model_dump(mode="json"),
        },
        separators=(",", ":"),
    )
    msg_id = f"msg_{view.id}_{view.status.value}"
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, sent_at, body),
        "content-type": "application/json",
        "user-agent": "i2v-gateway-webhooks/1",
    }
    return headers, body


def post(client: httpx.Client, url: str, headers: dict[str, str], body: str, *, timeout: float = 10.0) -> int:
    """POST the event; the status code, or DeliveryFailed naming what went wrong.

    The whole exchange ends within `timeout` seconds, and at most RESPONSE_READ_CAP bytes of the answer are
    read (only its status matters): a receiver answering slowly or with a huge body costs no more than that.
    """
    try:
        # No redirects: a receiver that moved must be configured anew, not followed with a signed body.
        with (
            fetch_deadline(timeout),
            client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout, follow_redirects=False
            ) as resp,
        ):
            _skim(resp)
    except httpx.HTTPError as exc:
        # One text for refused, unreachable and timed out, as for every fetch (see media.unreachable); the
        # operator's log line (i2v.notify.deliver) names the error itself, from __cause__.
        raise DeliveryFailed(f"no answer: {unreachable(url)}") from exc
    if not 200 <= resp.status_code < 300:
        raise DeliveryFailed(f"HTTP {resp.status_code}")
    return resp.status_code


def _skim(resp: httpx.Response) -> None:
    """Read a little of the body, so a short answer leaves the connection reusable; closing the response
    with more unread drops the connection instead of draining it."""
    read = 0
    for piece in resp.iter_raw():  # raw: a compressed answer is never inflated
        read += len(piece)
        if read >= RESPONSE_READ_CAP:
            return
