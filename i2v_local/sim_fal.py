"""Simulator for fal.ai's queue running `fal-ai/wan/v2.7/image-to-video`.

POST /fal-ai/wan/v2.7/image-to-video[?fal_webhook=] -> {request_id, response_url, status_url, cancel_url,
queue_position}; GET /fal-ai/wan/requests/<id>/status; GET /fal-ai/wan/requests/<id> (the output);
PUT /fal-ai/wan/requests/<id>/cancel; one webhook per request when it finishes, signed with Ed25519 whose
public key this simulator serves at /.well-known/jwks.json (fal serves its keys at
https://rest.fal.ai/.well-known/jwks.json; serving our own is our choice so the gateway can verify).

Sources: https://fal.ai/models/fal-ai/wan/v2.7/image-to-video/llms.txt ,
https://fal.ai/docs/documentation/model-apis/inference/queue ,
https://fal.ai/docs/inference-api/queue/cancel ,
https://fal.ai/docs/documentation/model-apis/inference/webhooks ,
https://fal.ai/docs/documentation/model-apis/errors .
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import SimTask, Simulator, _AnswerInstead

MODEL_PATH = "/fal-ai/wan/v2.7/image-to-video"
APP_PATH = "/fal-ai/wan"
JWKS_PATH = "/.well-known/jwks.json"
MAX_SEED = 2_147_483_647
USER_ID = "sim-user-0001"  # GUESS: the format of fal's user ids is not documented


class Invalid(Exception):
    """A body fal answers with 422 and a `detail` list (errors page)."""

    def __init__(self, field: str, msg: str, kind: str) -> None:
        super().__init__(msg)
        self.field, self.msg, self.kind = field, msg, kind


class FalSimulator(Simulator):
    name = "fal"
    auth_header = "Authorization"
    auth_value = "Key {key}"
    never_issued = "00000000-0000-4000-8000-000000000000"  # request ids are UUIDs (queue page example)
    # Webhooks: first attempt times out after 15 s, then 10 retries over 2 hours (webhooks page).
    # GUESS: the spacing of the retries is not documented; these double and add up to 7200 s.
    callback_timeout = 15.0
    callback_retries = (15, 30, 60, 120, 240, 480, 900, 1200, 1800, 2355)
    result_ttl_seconds = 30 * 24 * 3600  # GUESS: fal's CDN keeps files "forever" by default; a month here
    # Queue requests "are never rejected for concurrency": they wait IN_QUEUE, and the concurrency limit
    # counts only IN_PROGRESS requests (concurrency-limits page). A per-minute limit is not documented: not
    # documented: the engine default (over_capacity is not overridden).
    queues_over_capacity = True

    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key=api_key, render_scale=render_scale, workers=workers)
        self.signing_key = Ed25519PrivateKey.generate()
        self.key_id = uuid.uuid4().hex[:16]

    def rules(self) -> list[Rule]:
        return [
            Rule(MODEL_PATH, endpoint="submit", methods=["POST"]),
            Rule(f"{APP_PATH}/requests/<task_id>/status", endpoint="get_status", methods=["GET"]),
            Rule(f"{APP_PATH}/requests/<task_id>", endpoint="get_result", methods=["GET"]),
            Rule(f"{APP_PATH}/requests/<task_id>/cancel", endpoint="put_cancel", methods=["PUT"]),
            Rule(JWKS_PATH, endpoint="jwks", methods=["GET"]),
        ]

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def authorized(self, request: Request) -> bool:
        return request.path == JWKS_PATH or super().authorized(request)  # the keys are public

    # -- fal's shapes -----------------------------------------------------------------------------
    def unauthorized(self) -> Response:
        # GUESS: fal's 401 body is not documented; FastAPI-style {"detail": "..."} as its other errors.
        return self.json({"detail": "Invalid API key. Authentication is required to access this app."}, 401)

    def server_error(self) -> Response:
        # errors page: internal_server_error (500), in the detail-list shape, with X-Fal-Retryable.
        return self.detail_error(500, "", "Internal server error", "internal_server_error", retryable=True)

    def rate_limited(self) -> Response:
        # A queue submit gets 429 when ?fal_max_queue_length is exceeded (common-parameters page); the body
        # and a Retry-After are GUESSES (not documented), sent so the client's handling can be checked.
        return self.json(
            {"detail": "Too many requests in the queue for this endpoint"},
            429,
            {"Retry-After": f"{self.faults.retry_after:g}"},
        )

    def detail_error(self, status: int, field: str, msg: str, kind: str, retryable: bool = False) -> Response:
        item = {
            "loc": ["body", field] if field else ["body"],
            "msg": msg,
            "type": kind,
            "url": f"https://docs.fal.ai/errors#{kind}",
        }
        headers = {"X-Fal-Retryable": "true" if retryable else "false"}
        return self.json({"detail": [item]}, status, headers)

    def urls(self, task: SimTask) -> dict[str, str]:
        base = f"{self.base_url}{APP_PATH}/requests/{quote(task.id, safe='')}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def queue_position(self, task: SimTask) -> int:
        with self.lock:
            waiting = [t for t in self.tasks.values() if t.state == "queued"]
        waiting.sort(key=lambda t: t.created_at)
        return next((i for i, t in enumerate(waiting) if t.id == task.id), 0)

    def status_json(self, task: SimTask) -> dict[str, Any]:
        words = {
            "queued": "IN_QUEUE",
            "processing": "IN_PROGRESS",
            "succeeded": "COMPLETED",
            "failed": "COMPLETED",
            "cancelled": "COMPLETED",
        }
        body: dict[str, Any] = {
            "status": self.status_word(task, words),
            "request_id": task.id,
            "response_url": self.urls(task)["response_url"],
        }
        if task.state == "queued":
            body["queue_position"] = self.queue_position(task)
        if task.state in ("processing", "succeeded", "failed", "cancelled"):
            body["logs"] = []
        if task.state in ("succeeded", "failed"):
            body["metrics"] = {
                "inference_time": round((task.finished_at or time.time()) - task.created_at, 2)
            }
        if task.state == "failed":
            body["error"], body["error_type"] = task.error or "generation failed", error_type(task.error)
        if task.state == "cancelled":  # GUESS: no documented status for a cancelled request
            body["error"], body["error_type"] = "Request was cancelled", "request_cancelled"
        return body

    def output(self, task: SimTask) -> dict[str, Any]:
        return {
            "video": {
                "url": self.result_url(task),
                "content_type": "video/mp4",
                "file_name": f"{task.id}.mp4",
                "file_size": task.video.stat().st_size if task.video else None,
            },
            "seed": task.seed,
        }

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        # webhooks page: {request_id, gateway_request_id, status: OK|ERROR, payload[, error]}
        body: dict[str, Any] = {"request_id": task.id, "gateway_request_id": task.id}
        if task.state == "succeeded":
            body.update(status="OK", payload=self.output(task))
        else:
            kind = "request_cancelled" if task.state == "cancelled" else error_type(task.error)
            message = "Request was cancelled" if task.state == "cancelled" else (task.error or "failed")
            body.update(
                status="ERROR",
                error=message,
                payload={"detail": [{"loc": ["body"], "msg": message, "type": kind}]},
            )
        return body

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        message = "\n".join((task.id, USER_ID, timestamp, hashlib.sha256(body).hexdigest())).encode()
        return {
            "X-Fal-Webhook-Request-Id": task.id,
            "X-Fal-Webhook-User-Id": USER_ID,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": self.signing_key.sign(message).hex(),
        }

    def public_jwk(self) -> dict[str, str]:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {"kty": "OKP", "crv": "Ed25519", "kid": self.key_id, "x": x, "use": "sig", "alg": "EdDSA"}

    # -- endpoints --------------------------------------------------------------------------------
    def jwks(self, request: Request) -> Response:
        return self.json({"keys": [self.public_jwk()]})

    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        data = self.body(request)
        if data is None:
            return self.detail_error(422, "", "Input should be a valid dictionary", "dict_type")
        webhook = request.args.get("fal_webhook")
        try:
            validate(data)
            if webhook is not None:
                _check_url(webhook, "fal_webhook")
        except Invalid as exc:
            return self.detail_error(422, exc.field, exc.msg, exc.kind)
        task = self.create(
            inputs={
                "first_frame": data.get("image_url"),
                "last_frame": data.get("end_image_url"),
                "clip": data.get("video_url"),
                "audio": data.get("audio_url"),
            },
            duration=data.get("duration", 5),  # fal's defaults (llms.txt)
            resolution=data.get("resolution", "1080p"),
            callback_url=webhook,
            request=data,
            seed=data.get("seed"),
        )
        self.hang_if_asked()
        return self.json(
            {"request_id": task.id, **self.urls(task), "queue_position": self.queue_position(task)}
        )

    def find(self, task_id: str) -> SimTask:
        task = self.tasks.get(task_id)
        if task is None:
            # GUESS: the status/result answer for an unknown id is not documented; cancel's is 404 NOT_FOUND.
            raise _AnswerInstead(self.json({"detail": "Request not found"}, 404))
        return task

    def get_status(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        return self.json(self.status_json(self.find(task_id)))

    def get_result(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.find(task_id)
        if task.state == "succeeded" and not self.faults.unknown_status:
            return self.json(self.output(task))
        # GUESS: fal does not document the result call before the request succeeds. Here it answers with
        # the status object: 202 while queued or running, 422 (with the errors page's detail list besides)
        # once it ended without a video.
        body = self.status_json(task)
        if task.state in ("queued", "processing"):
            return self.json(body, 202)
        body["detail"] = [{"loc": ["body"], "msg": body.get("error"), "type": body.get("error_type")}]
        return self.json(body, 422, {"X-Fal-Retryable": "false"})

    def put_cancel(self, request: Request, task_id: str) -> Response:
        task = self.tasks.get(task_id)
        if task is None:
            return self.json({"status": "NOT_FOUND"}, 404)
        if not self.cancel_requested(task):
            return self.json({"status": "ALREADY_COMPLETED"}, 400)
        return self.json({"status": "CANCELLATION_REQUESTED"}, 202)


def validate(data: dict[str, Any]) -> None:
    """Check a body against the llms.txt schema. Which combinations fal refuses is not documented:
    image_url with video_url is ("cannot be combined"); neither image_url nor video_url is a GUESS."""
    for field, limit in (("prompt", 5000), ("negative_prompt", 500)):
        value = data.get(field)
        if value is not None and not isinstance(value, str):
            raise Invalid(field, "Input should be a valid string", "string_type")
        if isinstance(value, str) and len(value) > limit:
            raise Invalid(field, f"String should have at most {limit} characters", "string_too_long")
    for field in ("image_url", "end_image_url", "video_url", "audio_url"):
        if data.get(field) is not None:
            _check_url(data[field], field)
    if data.get("image_url") and data.get("video_url"):
        raise Invalid("video_url", "video_url cannot be combined with image_url", "value_error")
    if not data.get("image_url") and not data.get("video_url"):
        raise Invalid("image_url", "Either image_url or video_url is required", "value_error")
    if data.get("resolution", "1080p") not in ("720p", "1080p"):
        raise Invalid("resolution", "Input should be '720p' or '1080p'", "enum")
    duration = data.get("duration", 5)
    if not _is_int(duration) or not 2 <= duration <= 15:
        raise Invalid("duration", "Input should be 2, 3, ... or 15", "enum")
    seed = data.get("seed")
    if seed is not None and not _is_int(seed):
        raise Invalid("seed", "Input should be a valid integer", "int_type")
    if seed is not None and seed < 0:
        raise Invalid("seed", "Input should be greater than or equal to 0", "greater_than_equal")
    if seed is not None and seed > MAX_SEED:
        raise Invalid("seed", f"Input should be less than or equal to {MAX_SEED}", "less_than_equal")
    for field in ("enable_prompt_expansion", "enable_safety_checker"):
        if field in data and not isinstance(data[field], bool):
            raise Invalid(field, "Input should be a valid boolean", "bool_type")


def _check_url(value: Any, field: str) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(field, "Input should be a valid URL", "url_parsing")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def error_type(message: str | None) -> str:
    """The errors page's type closest to why the render failed."""
    lowered = (message or "").lower()
    if "policy" in lowered:
        return "content_policy_violation"
    if "for url" in lowered or "connect" in lowered or "download" in lowered:
        return "file_download_error"
    if "image" in lowered:
        return "image_load_error"
    return "no_media_generated"


SIMULATOR = FalSimulator
