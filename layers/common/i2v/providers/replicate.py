"""The `replicate` provider: Replicate's predictions API for the official model `wan-video/wan-2.7-i2v`,
with a signed webhook when the prediction completes (and polling as the fallback).

Sources: https://replicate.com/wan-video/wan-2.7-i2v ,
https://replicate.com/docs/topics/predictions/create-a-prediction ,
https://replicate.com/docs/topics/predictions/lifecycle ,
https://replicate.com/docs/topics/predictions/rate-limits ,
https://replicate.com/docs/topics/webhooks/setup-webhook ,
https://replicate.com/docs/topics/webhooks/receive-webhook ,
https://replicate.com/docs/topics/webhooks/verify-webhook , https://replicate.com/docs/webhooks ,
https://replicate.com/changelog/2025-10-16-prediction-deadlines .

The model's input names (`first_frame`, `last_frame`, `first_clip`, `audio`, `resolution`, `duration`,
`enable_prompt_expansion`, `seed`, `negative_prompt`) come from third-party notes that say they copied the
schema page https://replicate.com/wan-video/wan-2.7-i2v/api/schema , which was not read itself.

Output files of API-made predictions are deleted after one hour (https://replicate.com/docs/webhooks):
the gateway ingests a result as soon as the prediction succeeds, so the hour is enough, but a task left
unread for longer finds `output` gone (`data_removed`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ALL_DURATIONS,
    ALL_MODES,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    as_text,
    callback_json,
    job_id,
    json_body,
    json_or_none,
    state_of,
)

DEFAULT_BASE_URL = "https://api.replicate.com"  # create-a-prediction page
MODEL = "wan-video/wan-2.7-i2v"  # https://replicate.com/wan-video/wan-2.7-i2v
# Official models take predictions at their own path (no version): create-a-prediction page.
CREATE_PATH = f"/v1/models/{MODEL}/predictions"

# `Cancel-After: <duration>` sets a deadline on the prediction
# (https://replicate.com/changelog/2025-10-16-prediction-deadlines): one that passes before the prediction
# starts ends it `aborted` (not charged for public models), one that passes while it runs ends it `canceled`.
# GUESS: 20 minutes. A 15 s 1080p clip takes minutes, not tens of minutes, so a prediction not done by then is
# stuck (most likely queued behind a cold start) and the task is better failed over or failed than paid for
# later; it stays under the platform's own 30-minute timeout (lifecycle page), which would otherwise end it
# anyway, and well under the gateway's task deadline (I2V task_deadline_seconds, 3600 s), so the host ends
# the job before the gateway gives up on the task and the money stops with the wait.
CANCEL_AFTER = "20m"

# Webhook events (https://replicate.com/docs/topics/webhooks/setup-webhook): start, output, logs, completed.
# Only the end matters to the gateway (it asks the status API itself); `completed` covers succeeded, failed
# and canceled. Without a filter the host would also call on every new output.
WEBHOOK_EVENTS = ["completed"]

# Status vocabulary: https://replicate.com/docs/topics/predictions/lifecycle and the changelog above.
STATES = {
    "starting": ProviderState.QUEUED,  # booting or queued: no work on the video yet
    "processing": ProviderState.PROCESSING,
    "succeeded": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "canceled": ProviderState.CANCELLED,  # by the user, or a Cancel-After deadline hit while running
    # A Cancel-After deadline hit before the prediction started. The docs call it neither a failure nor a
    # user cancel; it ends nothing but the wait, so it is cancelled (with its own error code, below).
    "aborted": ProviderState.CANCELLED,
}
ABORTED_MESSAGE = f"the Cancel-After deadline ({CANCEL_AFTER}) passed before the prediction started"

# GUESS: error codes per HTTP status. The pages read document only the 429 body
# ({"detail": "Request was throttled. ..."}, rate-limits page); other error bodies are NOT documented there.
# The API answers problem-details objects ({"title", "detail", "status", "invalid_fields"?}) in practice, so
# the message is read from `detail` (then `title`) and these codes name the status.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    422: "invalid_input",
}

# Standard Webhooks-style signatures (https://replicate.com/docs/topics/webhooks/verify-webhook): the page
# asks for a timestamp tolerance without giving a number. GUESS: 5 minutes, the usual choice (and the
# `standardwebhooks` library's own).
SIGNATURE_TOLERANCE_SECONDS = 300

# What an unknown submit outcome means: docs/adapter-contract.md (4). No 5xx is documented as "no
# prediction was made", so every 5xx to a create is an unknown outcome.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    modes=ALL_MODES,  # first_frame; first_frame + last_frame; first_clip (continuation)
    durations=ALL_DURATIONS,  # `duration` 2-15
    resolutions=frozenset({"720p", "1080p"}),  # `resolution`
    audio=True,  # `audio` (wav/mp3, 3-30 s)
    callback=True,  # `webhook` + `webhook_events_filter`
    cancel=True,  # POST /v1/predictions/{id}/cancel
    # The schema copy says `last_frame` "needs first_frame": no last frame after a clip.
    last_frame_with_clip=False,
    seed=True,  # `seed`
    # GUESS: the schema copy gives `seed` as an integer with no lower bound; the model takes 0.
    min_seed=0,
    negative_prompt=True,  # `negative_prompt`
    prompt_extend=True,  # `enable_prompt_expansion`
    # The input schema has no watermark field: routing refuses a watermark request rather than the adapter
    # dropping it (https://replicate.com/wan-video/wan-2.7-i2v, third-party schema copy).
    watermark=False,
    # GUESS: image formats jpg/png/bmp/webp are listed with no word on transparency; PNG/WebP carry alpha.
    alpha=True,
)


@dataclass
class ReplicateProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Said explicitly (the host's defaults are 1080p, 5 s and expansion on, which are ours, but defaults
        # are not a contract). Routing has refused a watermark, which Replicate has no field for.
        given: dict[str, Any] = {
            "resolution": req.resolution,
            "duration": req.duration,
            "enable_prompt_expansion": req.prompt_extend,
        }
        if req.prompt:
            given["prompt"] = req.prompt
        if req.negative_prompt:
            given["negative_prompt"] = req.negative_prompt
        if mode is Mode.VIDEO_CONTINUATION:
            given["first_clip"] = req.video_url
        else:
            given["first_frame"] = req.image_url
        if req.last_frame_url:  # with a first frame only: routing refused it after a clip (CAPABILITIES)
            given["last_frame"] = req.last_frame_url
        if req.audio_url:
            given["audio"] = req.audio_url
        if req.seed is not None:
            given["seed"] = req.seed
        body: dict[str, Any] = {"input": given}
        if callback_url:
            body["webhook"] = callback_url
            body["webhook_events_filter"] = WEBHOOK_EVENTS
        built = self.request("POST", CREATE_PATH, body)
        built.headers["Cancel-After"] = CANCEL_AFTER
        return built

    def parse_submit(self, resp: httpx.Response) -> str:
        data = _checked(resp)
        return job_id(data.get("id"), "id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/v1/predictions/{quote(provider_task_id, safe='')}")  # urls.get

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = _checked(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        error = as_text(data.get("error"))
        code: str | None = None
        if raw == "aborted":
            code, error = "aborted", error or ABORTED_MESSAGE
        elif raw == "failed":
            code = "prediction_failed"
        return ProviderStatus(
            state=state,
            raw_status=raw,
            # Replicate reports no progress or ETA for this model, and no cost in the prediction object.
            result_url=_output_url(data.get("output")) if state is ProviderState.SUCCEEDED else None,
            error_code=code,
            error_message=error,
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return self.request("POST", f"/v1/predictions/{quote(provider_task_id, safe='')}/cancel")

    def callback_task_id(self, body: bytes) -> str | None:
        # The webhook body is the prediction object itself, no envelope (receive-webhook page).
        found = callback_json(body).get("id")
        return found if isinstance(found, str) and found else None

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        """Replicate's Standard Webhooks signature (verify-webhook page): `webhook-signature` holds
        space-separated `v1,<base64>` entries of HMAC-SHA256 over `id.timestamp.body`, keyed with the
        base64-decoded text after `whsec_` of the account's secret (`GET /v1/webhooks/default/secret`)."""
        if not self.webhook_secret:
            # GUESS: with no secret configured the signature cannot be checked; the per-task token and the
            # status query (which decide for every host) still hold, so the callback is not refused.
            return None
        import binascii
        from datetime import UTC, datetime

        from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

        msg_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        if not stamp.isdigit():
            return "webhook-timestamp is not Unix seconds"
        if abs(now - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return f"webhook-timestamp is more than {SIGNATURE_TOLERANCE_SECONDS} s from now"
        try:
            signer = Webhook(self.webhook_secret)
        except (binascii.Error, ValueError, EmptyWebhookSecretError):
            return "the configured webhook secret is not a whsec_ secret"
        # The library's own verify() checks the timestamp against the wall clock; `now` is the gateway's.
        expected = signer.sign(msg_id, datetime.fromtimestamp(int(stamp), tz=UTC), body).encode()
        if any(hmac.compare_digest(expected, entry.encode()) for entry in signatures.split(" ") if entry):
            return None
        return "no webhook-signature entry matches"


def _checked(resp: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; a 4xx (not 429) becomes a rejection reading Replicate's problem body."""
    if 400 <= resp.status_code < 500 and resp.status_code != 429:
        data = json_or_none(resp.content)
        data = data if isinstance(data, dict) else {}
        message = as_text(data.get("detail")) or as_text(data.get("title")) or f"HTTP {resp.status_code}"
        fields = data.get("invalid_fields")
        if isinstance(fields, list):
            named = [
                f"{item.get('field')}: {item.get('description')}" for item in fields if isinstance(item, dict)
            ]
            if named and message.strip() not in named:
                message = f"{message.strip()} ({'; '.join(named)})"
        raise ProviderRejected(
            message.strip(),
            status_code=resp.status_code,
            code=ERROR_CODES.get(resp.status_code),
            raw=resp.text,
        )
    return json_body(resp)  # 429 (with Retry-After), 5xx, non-JSON


def _output_url(output: Any) -> str | None:
    """The video: `output` is a single URI string for this model (schema copy). A list is taken too, as one
    public client shows for other video models (GUESS)."""
    if isinstance(output, list):
        output = output[0] if output else None
    return output if isinstance(output, str) and output else None


PROVIDER = Declaration(
    name="replicate",
    adapter=ReplicateProvider,
    capabilities=CAPABILITIES,
    default_base_url=DEFAULT_BASE_URL,
    # `Authorization: Bearer $REPLICATE_API_TOKEN` (create-a-prediction page): the default Auth().
    # 600 creates per minute (https://replicate.com/docs/topics/predictions/rate-limits) is a rate, not a
    # number of jobs at once; no concurrency limit is documented.
    max_in_flight=None,
    max_submits_per_minute=600,
    # USD per second of video. NOT the host's own page: third-party notes only (the
    # official pricing at https://replicate.com/wan-video/wan-2.7-i2v was not read). Audio is not priced apart
    # in those notes.
    price={"720p": 0.10, "1080p": 0.15},
)
