"""Simulator for the Freepik API's Wan 2.7 image-to-video.

POST /v1/ai/image-to-video/wan-2-7 -> {"data": {"generated": [], "task_id": <uuid>, "status": "CREATED"}};
GET /v1/ai/image-to-video/wan-2-7/<task-id> -> the same `data` object, `generated` holding the video URL
when COMPLETED; the key in `x-freepik-api-key`; the webhook (`webhook_url`) fires on every status change
with the GET answer without its `data` wrapper, signed Standard-Webhooks style with the account's secret
as raw bytes.

Sources: https://docs.freepik.com/api-reference/image-to-video/wan-2-7/overview ,
https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate , https://docs.freepik.com/webhooks ,
https://docs.magnific.com/api-reference/image-to-video/wan-2-7/task-by-id . Everything marked GUESS is left
open by those pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from i2v_local.simulator import SimTask, Simulator

PATH = "/v1/ai/image-to-video/wan-2-7"
RESOLUTIONS = ("720P", "1080P")  # upper-case P (generate page)
MAX_PROMPT = 5000  # generate page
MAX_NEGATIVE_PROMPT = 500  # a third-party schema
MAX_SEED = 2_147_483_647  # a third-party schema
URL_FIELDS = ("start_image_url", "end_image_url", "video_url", "audio_url", "webhook_url")

# Our task states in Freepik's words: CREATED is documented, the others come from third-party client code.
# GUESS: no cancelled word (nor cancel endpoint) is documented; a job ended on Freepik's side reads FAILED.
STATE_NAMES = {
    "queued": "CREATED",
    "processing": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "FAILED",
}


class Invalid(Exception):
    """A body Freepik refuses with a 400; `field` names the parameter."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class FreepikSimulator(Simulator):
    name = "freepik"
    auth_header = "x-freepik-api-key"  # generate page
    auth_value = "{key}"
    never_issued = "00000000-0000-4000-8000-000000000000"  # a uuid, as the documented task_id is
    # The account's webhook secret (https://www.freepik.com/developers/dashboard/api-key), fixed for the sim.
    webhook_secret = "freepik-sim-webhook-secret"  # noqa: S105 (a fixed test secret)
    # GUESS: retry policy and timeout are not documented; a few quick retries, all well inside the ±300 s a
    # Standard-Webhooks receiver allows for the timestamp signed at the first attempt.
    callback_retries = (1, 5, 25)
    callback_timeout = 10.0
    result_ttl_seconds = 24 * 3600  # GUESS: the URL lifetime is not documented
    # Refusals past the account's caps (over_capacity): not documented: the engine default. (Some other
    # Freepik video endpoints state "up to 3 concurrent requests per user", but show no refusal.)

    def rules(self) -> list[Rule]:
        return [
            Rule(PATH, endpoint="submit", methods=["POST"]),
            Rule(f"{PATH}/<task_id>", endpoint="get", methods=["GET"]),
        ]

    def new_id(self) -> str:
        return str(uuid.uuid4())  # "046b6c7f-0b8a-43b9-b35d-6489e6daee91" in the docs

    # -- Freepik's shapes (GUESS: the WAN 2.7 pages document no error body; these are Freepik API's usual) --
    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        return self.json({"message": message}, status, headers)

    def invalid(self, field: str, reason: str) -> Response:
        body = {"message": "Invalid parameters", "invalid_params": [{"field": field, "reason": reason}]}
        return self.json(body, 400)

    def unauthorized(self) -> Response:
        return self.error(401, "Invalid API key")

    def server_error(self) -> Response:
        return self.error(500, "Internal Server Error")

    def rate_limited(self) -> Response:
        # GUESS: a 429 and its Retry-After are not documented for this endpoint.
        return self.error(429, "Rate limit exceeded", {"Retry-After": f"{self.faults.retry_after:g}"})

    def task_data(self, task: SimTask) -> dict[str, Any]:
        url = self.result_url(task)
        data: dict[str, Any] = {
            "generated": [url] if url else [],
            "task_id": task.id,
            "status": self.status_word(task, STATE_NAMES),
        }
        if task.state in ("failed", "cancelled"):
            data["error"] = task.error or "The task was cancelled"  # GUESS: the field's name is undocumented
        return data

    def callback_body(self, task: SimTask) -> dict[str, Any]:
        return self.task_data(task)  # the GET answer without the `data` wrapper (generate page)

    def callback_headers(self, task: SimTask, body: bytes) -> dict[str, str]:
        """https://docs.freepik.com/webhooks: base64 HMAC-SHA256 over `id.timestamp.body`, keyed with the
        secret's bytes as they are. GUESS: one id and timestamp per status change, kept on its retries."""
        msg_id = f"msg_{uuid.uuid4().hex}"
        stamp = str(int(time.time()))
        signed = f"{msg_id}.{stamp}.".encode() + body
        digest = hmac.new(self.webhook_secret.encode(), signed, hashlib.sha256).digest()
        signature = base64.b64encode(digest).decode()
        return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": f"v1,{signature}"}

    def _hold(self, task: SimTask) -> None:
        # The render worker has just moved the task to IN_PROGRESS: Freepik calls the webhook "whenever the
        # task changes status", not only at the end. GUESS: no call for CREATED, which is no change.
        self._notify(task)
        super()._hold(task)

    # -- endpoints --------------------------------------------------------------------------------
    def submit(self, request: Request) -> Response:
        fault = self.submit_fault()
        if fault is not None:
            return fault
        data = self.body(request)
        if data is None:
            return self.invalid("body", "must be a JSON object")
        try:
            validate(data)
        except Invalid as exc:
            return self.invalid(exc.field, exc.reason)
        settings = data.get("additional_settings") or {}
        task = self.create(
            inputs={
                "first_frame": data.get("start_image_url"),
                "last_frame": data.get("end_image_url"),
                "clip": data.get("video_url"),
                "audio": data.get("audio_url"),
            },
            duration=data.get("duration", 5),  # GUESS: the example's 5
            resolution=data.get("resolution", "1080P"),  # GUESS: the example's 1080P
            callback_url=data.get("webhook_url"),
            request={**data, "additional_settings": {"prompt_extend": settings.get("prompt_extend", True)}},
            seed=data.get("seed"),
        )
        self.hang_if_asked()  # the job exists; with the fault on, its answer never arrives
        return self.json({"data": self.task_data(task)})

    def get(self, request: Request, task_id: str) -> Response:
        fault = self.poll_fault()
        if fault is not None:
            return fault
        task = self.tasks.get(task_id)
        if task is None:
            return self.error(404, "Not found")  # GUESS: the unknown-task answer is not documented
        return self.json({"data": self.task_data(task)})


def validate(data: dict[str, Any]) -> None:
    """The generate page's fields and the overview's rules; the first broken one is reported."""
    prompt = data.get("prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT:
        raise Invalid("prompt", f"must be a string of at most {MAX_PROMPT} characters")
    negative = data.get("negative_prompt", "")
    if not isinstance(negative, str) or len(negative) > MAX_NEGATIVE_PROMPT:
        raise Invalid("negative_prompt", f"must be a string of at most {MAX_NEGATIVE_PROMPT} characters")
    for field in URL_FIELDS:
        if field in data and not _is_url(data[field]):
            raise Invalid(field, "must be an http(s) URI")
    if "resolution" in data and data["resolution"] not in RESOLUTIONS:
        raise Invalid("resolution", "must be one of 720P, 1080P")
    duration = data.get("duration", 5)
    if not _is_int(duration) or not 2 <= duration <= 15:
        raise Invalid("duration", "must be an integer between 2 and 15")
    seed = data.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise Invalid("seed", f"must be an integer between 0 and {MAX_SEED}")
    settings = data.get("additional_settings", {})
    if not isinstance(settings, dict):
        raise Invalid("additional_settings", "must be an object")
    if "prompt_extend" in settings and not isinstance(settings["prompt_extend"], bool):
        raise Invalid("additional_settings.prompt_extend", "must be a boolean")
    # The modes (generate page): first frame = start_image_url; first+last = start + end_image_url;
    # continuation = video_url (± end_image_url). GUESS: any other combination is refused, and driving audio
    # goes with the image modes only (as the model takes it).
    start, clip = bool(data.get("start_image_url")), bool(data.get("video_url"))
    if start and clip:
        raise Invalid("video_url", "cannot be combined with start_image_url")
    if not start and not clip:
        raise Invalid("start_image_url", "start_image_url or video_url is required")
    if clip and data.get("audio_url"):
        raise Invalid("audio_url", "cannot be combined with video_url")


def _is_url(value: Any) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is not None and parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


SIMULATOR = FreepikSimulator
