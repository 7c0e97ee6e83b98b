"""Simulator for Replicate's predictions API with the official model `wan-video/wan-2.7-i2v`.

POST /v1/models/wan-video/wan-2.7-i2v/predictions -> 201 prediction object (status `starting`);
GET /v1/predictions/<id>; POST /v1/predictions/<id>/cancel. Webhooks POST the prediction object, signed
Standard Webhooks-style (webhook-id / webhook-timestamp / webhook-signature, HMAC-SHA256 keyed with the
base64 text after `whsec_`). `Cancel-After` ends a prediction `aborted` (not started) or `canceled` (running).
Output files are gone an hour after the prediction ends (`data_removed`).

Sources:
https://replicate.com/docs/topics/predictions/create-a-prediction ,
https://replicate.com/docs/topics/predictions/lifecycle ,
https://replicate.com/docs/topics/predictions/rate-limits ,
https://replicate.com/docs/topics/webhooks/setup-webhook ,
https://replicate.com/docs/topics/webhooks/receive-webhook ,
https://replicate.com/docs/topics/webhooks/verify-webhook , https://replicate.com/docs/webhooks ,
https://replicate.com/changelog/2025-10-16-prediction-deadlines . Input schema: third-party copy of
https://replicate.com/wan-video/wan-2.7-i2v/api/schema .
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import string
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import Refusal, SimTask, Simulator

MODEL = "wan-video/wan-2.7-i2v"
VERSION = "sim0000000000000000000000000000000000000000000000000000000000000"  # GUESS: a hash in its shape
RESOLUTIONS = ("720p", "1080p")
EVENTS = frozenset({"start", "output", "logs", "completed"})  # setup-webhook page
URI_FIELDS = ("first_frame", "last_frame", "first_clip", "audio")
KNOWN_FIELDS = frozenset(
    {*URI_FIELDS, "prompt", "negative_prompt", "resolution", "duration", "enable_prompt_expansion", "seed"}
)

# Our task states in Replicate's words (lifecycle page); a cancelled task is `aborted` when a Cancel-After
# deadline ended it before it started (changelog 2025-10-16).
STATE_NAMES = {
    "queued": "starting",
    "processing": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}

# The fixed secret this simulator signs with (the local stack hands it to the gateway). Replicate's secrets
# are `whsec_` + base64 (verify-webhook page).
SIM_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"i2v-local-replicate-sim-secret!!").decode()

_DURATION = re.compile(r"(\d+)(h|m|s)")
_UNITS = {"h": 3600, "m": 60, "s": 1}


class Invalid(Exception):
    """An input Replicate refuses with 422; `field` names it."""

    def __init__(self, field: str, description: str, kind: str = "invalid") -> None:
        super().__init__(description)
        self.field = field
        self.kind = kind


class ReplicateSimulator(Simulator):
    name = "replicate"
    # GUESS: Replicate ids are 26 lower-case letters and digits (e.g. `rrr4z55ocneqzikepnug6xezpe` in the
    # docs' samples); this one was never issued.
    never_issued = "zzzzzzzzzzzzzzzzzzzzzzzzzz"
    result_ttl_seconds = (
        3600  # inputs and outputs of API predictions are deleted after one hour (webhooks page)
    )
    webhook_secret = SIM_WEBHOOK_SECRET
    # GUESS: "reply 2xx within a few seconds, otherwise it may be retried"; the count and schedule are not
    # documented. Three retries at 1/2/4 s, each waiting 5 s for the answer.
    callback_retries = (1, 2, 4)
    callback_timeout = 5.0

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.aborted: set[str] = set()  # predictions a Cancel-After deadline ended before they started
        self.started_at: dict[str, float] = {}
        self.payment_required = False  # answer creates with 402 (no credit), for tests
        self.webhook_ids: dict[str, str] = {}  # one webhook-id per prediction, the same on every retry

    def rules(self) -> list[Rule]:
        return [
            Rule(f"/v1/models/{MODEL}/predictions", endpoint="submit", methods=["POST"]),
            Rule("/v1/predictions/<task_id>", endpoint="get", methods=["GET"]),
            Rule("/v1/predictions/<task_id>/cancel", endpoint="cancel", methods=["POST"]),
        ]

    def new_id(self) -> str:
        alphabet = string.ascii_lowercase + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(26))

    # -- Replicate's shapes -----------------------------------------------------------------------
    def problem(self, status: int, title: str, detail: str, **extra: Any) -> Response:
        """GUESS: error bodies other than the 429 are not documented in the pages read; the API answers
        problem-details objects like this one in practice."""
        body = {"title": title, "detail": detail, "status": status, **extra}
        return Response(json.dumps(body), status=status, mimetype="application/problem+json")

    def unauthorized(self) -> Response:
        return self.problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def server_error(self) -> Response:
        return self.problem(503, "Service Unavailable", "Service temporarily unavailable")  # GUESS

    def rate_limited(self) -> Response:
        # The documented 429 body (rate-limits page). GUESS: a Retry-After header matching its "~Ns".
        wait = f"{self.faults.retry_after:g}"
        return self.json(
            {"detail": f"Request was throttled. Your rate limit resets in ~{wait}s."},
            429,
            {"Retry-After": wait},
        )

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # The documented 429 body (rate-limits page), its "~Ns" saying when to try again; no Retry-After
        # header is documented, so none is sent. Only the per-minute limit is documented: a cap on predictions
        # in flight is answered the same way (GUESS).
        return self.json(
            {"detail": f"Request was throttled. Your rate limit resets in ~{retry_after:g}s."}, 429
        )

    def prediction(self, task: SimTask) -> dict[str, Any]:
        """The prediction object (receive-webhook page, fields completed from a public sample)."""
        word = self.status_word(task, STATE_NAMES)
        if task.state == "cancelled" and task.id in self.aborted and not self.faults.unknown_status:
            word = "aborted"
        ended = task.finished_at
        removed = ended is not None and time.time() > ended + self.result_ttl_seconds
        base = self.base_url
        body: dict[str, Any] = {
            "id": task.id,
            "model": MODEL,
            "version": VERSION,
            "input": {} if removed else task.request.get("input", {}),
            "logs": "",
            "output": None if removed else self.result_url(task),
            "data_removed": removed,
            "error": None,
            "status": word,
            "source": "api",
            "created_at": _stamp(task.created_at),
            "started_at": _stamp(self.started_at.get(task.id)),
            "completed_at": _stamp(ended),
            "urls": {
                "get": f"{base}/v1/predictions/{task.id}",
                "cancel": f"{base}/v1/predictions/{task.id}/cancel",
                "web": f"https://replicate.com/p/{task.id}",
            },
            "metrics": {},
        }
        if task.state == "processing":
            body["logs"] = f"Generating video... {task.progress}%\n"  # GUESS: free text, no progress field
        if task.state == "failed":
            body["error"] = task.error or "Prediction failed"
        if ended is not None and task.id in self.started_at:
            body["metrics"] = {"predict_time": round(ended - self.started_at[task.id], 3)}
        if task.state == "succeeded" and self.faults.render_seconds:
            body["metrics"]["video_output_duration_seconds"] = self.faults.render_seconds  # GUESS
        return body

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return self.prediction(task)  # the prediction object, no envelope

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        msg_id = self.webhook_ids.setdefault(task.id, f"msg_{secrets.token_hex(12)}")
        stamp = str(int(time.time()))
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": sign(self.webhook_secret, msg_id, stamp, body),
        }

    def prompts(self, task: SimTask) -> tuple[str, str]:
        given = task.request.get("input", {})
        return str(given.get("prompt") or ""), str(given.get("negative_prompt") or "")

    def render_task(self, task: SimTask) -> Any:
        self.started_at[task.id] = time.time()
        return super().render_task(task)

    # -- endpoints --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        if self.payment_required:  # GUESS: the body of a create without credit
            return self.problem(
                402,
                "Insufficient credit",
                "You have insufficient credit to run this model. Go to https://replicate.com/account/billing "
                "to purchase credit.",
            )
        data = self.body(request)
        if data is None or not isinstance(data.get("input"), dict):
            return self.invalid(Invalid("input", "input is required", "required"))
        try:
            given = validate(data)
            deadline = cancel_after(request.headers.get("Cancel-After"))
        except Invalid as exc:
            return self.invalid(exc)
        task = self.create(
            inputs={
                "first_frame": given.get("first_frame"),
                "last_frame": given.get("last_frame"),
                "clip": given.get("first_clip"),
                "audio": given.get("audio"),
            },
            duration=given.get("duration", 5),  # the schema's default
            resolution=given.get("resolution", "1080p"),  # the schema's default
            callback_url=data.get("webhook") if _wants_completed(data) else None,
            request=data,
            seed=given.get("seed"),
        )
        if deadline is not None:
            timer = threading.Timer(deadline, self._deadline, args=(task,))
            timer.daemon = True
            timer.start()
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json(self.prediction(task), 201)  # GUESS: 201 Created

    def invalid(self, exc: Invalid) -> Response:
        return self.problem(
            422,
            "Input validation failed",
            f"- {exc.field}: {exc}\n",
            invalid_fields=[{"type": exc.kind, "field": exc.field, "description": str(exc)}],
        )

    def get(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(task_id)
        if task is None:
            return self.problem(404, "Not found", "Not found.")  # GUESS: the body's words
        return self.json(self.prediction(task))

    def cancel(self, request: Request, task_id: str) -> Response:
        task = self.tasks.get(task_id)
        if task is None:
            return self.problem(404, "Not found", "Not found.")
        self.cancel_requested(task)  # an ended prediction stays as it ended; the answer is its object
        return self.json(self.prediction(task))

    def _deadline(self, task: SimTask) -> None:
        """The Cancel-After deadline: before the start it aborts the prediction, after it cancels it."""
        if task.state == "queued":
            self.aborted.add(task.id)
        self.cancel_task(task)


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """The input checked against the schema copy (third-party notes, see the sources above); returns it."""
    given: dict[str, Any] = data["input"]
    for field in given:
        if field not in KNOWN_FIELDS:  # GUESS: the schema refuses extra properties
            raise Invalid(
                field, f"Additional property {field} is not allowed", "additional_property_not_allowed"
            )
    for field in URI_FIELDS:
        if field in given:
            parts = urlsplit(given[field]) if isinstance(given[field], str) else None
            if (
                parts is None
                or parts.scheme not in ("http", "https", "data")
                or not (parts.netloc or parts.path)
            ):
                raise Invalid(field, f"{field} must be a URI", "format")
    if "first_frame" not in given and "first_clip" not in given:
        raise Invalid("first_frame", "first_frame or first_clip is required", "required")  # GUESS: the words
    if "first_frame" in given and "first_clip" in given:  # GUESS: one start, as the model takes
        raise Invalid("first_clip", "first_clip cannot be combined with first_frame")
    if "last_frame" in given and "first_frame" not in given:
        raise Invalid("last_frame", "last_frame needs first_frame")  # "needs first_frame" (schema copy)
    if "audio" in given and "first_clip" in given:  # the model takes no driving audio in continuation
        raise Invalid("audio", "audio cannot be combined with first_clip")
    for field in ("prompt", "negative_prompt"):
        if field in given and not isinstance(given[field], str):
            raise Invalid(field, f"{field} must be a string", "type")
    if given.get("resolution", "1080p") not in RESOLUTIONS:
        raise Invalid("resolution", 'resolution must be one of the following: "720p", "1080p"', "enum")
    duration = given.get("duration", 5)
    if not _is_int(duration) or not 2 <= duration <= 15:
        raise Invalid("duration", "duration must be an integer between 2 and 15", "number_one_of")
    if "seed" in given and not _is_int(given["seed"]):
        raise Invalid("seed", "seed must be an integer", "type")
    if "enable_prompt_expansion" in given and not isinstance(given["enable_prompt_expansion"], bool):
        raise Invalid("enable_prompt_expansion", "enable_prompt_expansion must be a boolean", "type")
    if data.get("webhook") is not None:
        _check_webhook(data["webhook"])
    events = data.get("webhook_events_filter")
    if events is not None and (not isinstance(events, list) or not set(events) <= EVENTS):
        raise Invalid("webhook_events_filter", "must be a list of start, output, logs, completed")
    return given


def cancel_after(value: str | None) -> float | None:
    """Seconds from a `Cancel-After` duration such as `1m` or `1h30m` (changelog 2025-10-16)."""
    if value is None:
        return None
    text = value.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise Invalid("Cancel-After", "Cancel-After must be a duration such as 30s, 5m or 1h")  # GUESS
    return float(sum(int(number) * _UNITS[unit] for number, unit in parts))


def _wants_completed(data: dict[str, Any]) -> bool:
    """Whether the prediction's end is announced: always, unless a filter leaves `completed` out. This
    simulator sends only the end (start/output/logs events are not simulated)."""
    events = data.get("webhook_events_filter")
    return data.get("webhook") is not None and (events is None or "completed" in events)


def _check_webhook(url: Any) -> None:
    """GUESS: an https URL, refused for private addresses; this local stand-in also takes http(s) URLs on
    loopback, where the gateway of the local stack listens."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.hostname:
        raise Invalid("webhook", "webhook must be a URL")
    host = parts.hostname
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (host == "localhost" or (address is not None and address.is_loopback)) and parts.scheme in (
        "http",
        "https",
    ):
        return
    if parts.scheme != "https":
        raise Invalid("webhook", "webhook must use HTTPS")
    if address is not None and (address.is_private or address.is_link_local):
        raise Invalid("webhook", "webhook must not point to a private address")


def sign(secret: str, msg_id: str, stamp: str, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, id.timestamp.body)), the key being the
    base64-decoded text after `whsec_` (verify-webhook page). Written out, not imported, so the gateway's
    check is tested against an independent signer."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _stamp(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


SIMULATOR = ReplicateSimulator
