"""The `freepik` provider: Freepik API's Wan 2.7 image-to-video (`POST /v1/ai/image-to-video/wan-2-7`), with
webhooks on every status change, signed Standard-Webhooks style with the account's secret.

Sources: https://docs.freepik.com/api-reference/image-to-video/wan-2-7/overview ,
https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate ,
https://docs.freepik.com/webhooks ; the task-by-id path from
https://docs.magnific.com/api-reference/image-to-video/wan-2-7/task-by-id (the same API under Freepik's new
name, Magnific: keep the base URL configurable, `I2V_FREEPIK_BASE_URL`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ALL_DURATIONS,
    ALL_MODES,
    Auth,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    as_object,
    as_text,
    callback_json,
    job_id,
    json_body,
    json_or_none,
    state_of,
)

DEFAULT_BASE_URL = (
    "https://api.freepik.com"  # https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate
)
PATH = "/v1/ai/image-to-video/wan-2-7"
# "720P" | "1080P", upper-case P: https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate
RESOLUTIONS = {"720p": "720P", "1080p": "1080P"}

# The status words. CREATED is the documented one (generate page); IN_PROGRESS, COMPLETED and FAILED come from
# third-party client code (weak evidence). No cancelled word is documented, and no
# cancel endpoint: a job Freepik ends on its side surfaces as FAILED.
STATES = {
    "CREATED": ProviderState.QUEUED,
    "IN_PROGRESS": ProviderState.PROCESSING,
    "COMPLETED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
}

# Webhook signatures (https://docs.freepik.com/webhooks): `webhook-id`, `webhook-timestamp`,
# `webhook-signature`; base64 HMAC-SHA256 of `id.timestamp.body` keyed with the dashboard's secret as its
# bytes (no `whsec_` prefix, no base64 decoding); the header is a space-separated list of `v1,<sig>` pairs.
# GUESS: the docs give no timestamp tolerance; ±300 s is the Standard Webhooks default that the scheme copies.
SIGNATURE_TOLERANCE = 300
TIMESTAMP = re.compile(r"[0-9]{1,12}")

# GUESS: Freepik documents no 5xx for this endpoint, so none proves that no job was made
# (docs/adapter-contract.md, section 4).
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    # start_image_url; start_image_url + end_image_url; video_url (± end_image_url) (generate page)
    modes=ALL_MODES,
    durations=ALL_DURATIONS,  # duration: int 2-15 (generate page)
    resolutions=frozenset(RESOLUTIONS),
    audio=True,  # audio_url: WAV/MP3, 2-30 s, ≤15 MB (overview)
    callback=True,  # webhook_url, called "whenever the task changes status" (generate page)
    cancel=False,  # no cancel endpoint is documented
    seed=True,  # seed: int (generate page); 0-2147483647 per a third-party schema
    min_seed=0,
    negative_prompt=True,  # negative_prompt (generate page); max 500 per a third-party schema
    prompt_extend=True,  # additional_settings.prompt_extend (generate page)
    # No watermark field is documented: routing refuses a request asking for one rather than dropping it.
    watermark=False,
    # GUESS: the overview lists JPEG/PNG/BMP/WEBP and says nothing of alpha channels; taken as accepted.
    alpha=True,
)

# Our labels for the HTTP statuses of Freepik's error answers. GUESS: the WAN 2.7 pages document no error
# body; Freepik's API answers `{"message": ...}`, with `invalid_params: [{field, reason}]` on a 400.
ERROR_CODES = {
    400: "invalid_params",
    401: "unauthorized",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
}


@dataclass
class FreepikProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Everything sent explicitly: the docs give no defaults for resolution, duration or prompt_extend
        # (the example sends 1080P, 5, true). Routing refused a watermark (CAPABILITIES), so none is sent.
        body: dict[str, Any] = {
            "resolution": RESOLUTIONS[req.resolution],
            "duration": req.duration,
            "additional_settings": {"prompt_extend": req.prompt_extend},
        }
        if req.prompt:
            body["prompt"] = req.prompt
        if req.negative_prompt:
            body["negative_prompt"] = req.negative_prompt
        if mode is Mode.VIDEO_CONTINUATION:
            body["video_url"] = req.video_url
        else:
            body["start_image_url"] = req.image_url
        if req.last_frame_url:  # the last frame, or the continuation's target end frame
            body["end_image_url"] = req.last_frame_url
        if req.audio_url:
            body["audio_url"] = req.audio_url
        if req.seed is not None:
            body["seed"] = req.seed
        if callback_url and self.capabilities.callback:
            body["webhook_url"] = callback_url
        return self.request("POST", PATH, body)

    def parse_submit(self, resp: httpx.Response) -> str:
        # {"data": {"generated": [], "task_id": "046b6c7f-…", "status": "CREATED"}} (generate page)
        data = as_object(_freepik_body(resp).get("data"))
        return job_id(data.get("task_id"), "data.task_id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        # GET /v1/ai/image-to-video/wan-2-7/{task-id} (task-by-id page)
        return self.request("GET", f"{PATH}/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = as_object(_freepik_body(resp).get("data"))
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        generated = data.get("generated")
        first = generated[0] if isinstance(generated, list) and generated else None
        # GUESS: the failure reason's field is not documented (third-party code says it varies by endpoint);
        # the usual names are read. No error code is documented (the gateway then says provider_failed).
        reason = None
        if state is ProviderState.FAILED:
            reason = as_text(data.get("error")) or as_text(data.get("message")) or as_text(data.get("reason"))
        return ProviderStatus(
            state=state,
            raw_status=raw,
            result_url=first if state is ProviderState.SUCCEEDED and isinstance(first, str) else None,
            error_message=reason,
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # no cancel endpoint is documented: cancelling only stops the gateway's side

    def callback_task_id(self, body: bytes) -> str | None:
        # The webhook body is the GET answer without its `data` wrapper (generate page); a wrapped one is
        # read too.
        data = callback_json(body)
        task_id = data.get("task_id") or as_object(data.get("data")).get("task_id")
        return task_id if isinstance(task_id, str) else None

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        """Checks the Standard-Webhooks-style signature (https://docs.freepik.com/webhooks) with the account's
        secret. GUESS: without a configured secret nothing can be checked, and the per-task token and the
        status re-fetch still decide, as for a host that does not sign."""
        if not self.webhook_secret:
            return None
        msg_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (msg_id and stamp and signatures):
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        if not TIMESTAMP.fullmatch(stamp):
            return "webhook-timestamp is not whole seconds"
        if abs(now - int(stamp)) > SIGNATURE_TOLERANCE:
            return f"webhook-timestamp is more than {SIGNATURE_TOLERANCE} s from now"
        from datetime import UTC, datetime

        from standardwebhooks.webhooks import Webhook

        # Bytes, so the secret is used as it is (a str would be base64-decoded after `whsec_`).
        signer = Webhook(self.webhook_secret.encode())
        expected = signer.sign(msg_id, datetime.fromtimestamp(int(stamp), tz=UTC), body).encode()
        if any(hmac.compare_digest(expected, given.encode()) for given in signatures.split()):
            return None
        return "no webhook-signature matches"


def _freepik_body(resp: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; an error answer as a ProviderError with Freepik's message (and, on a 400,
    each `invalid_params` field with its reason)."""
    try:
        return json_body(resp)
    except ProviderRejected as exc:
        data = json_or_none(resp.content)
        data = data if isinstance(data, dict) else {}
        message = as_text(data.get("message")) or str(exc)
        params = data.get("invalid_params")
        if isinstance(params, list):
            named = [as_object(p) for p in params]
            details = [f"{p.get('field')}: {p.get('reason')}" for p in named if p.get("field")]
            if details:
                message = f"{message} ({'; '.join(details)})"
        raise ProviderRejected(
            message, status_code=exc.status_code, code=ERROR_CODES.get(exc.status_code or 0), raw=resp.text
        ) from None


PROVIDER = Declaration(
    name="freepik",
    adapter=FreepikProvider,
    capabilities=CAPABILITIES,
    default_base_url=DEFAULT_BASE_URL,
    # x-freepik-api-key: <key> (https://docs.freepik.com/api-reference/image-to-video/wan-2-7/generate)
    auth=Auth(header="x-freepik-api-key", value="{key}"),
    # Not documented for WAN 2.7 (other Freepik video endpoints, e.g. Kling Elements, say "up to 3 concurrent
    # requests per user", https://docs.freepik.com/api-reference/image-to-video/kling-elements-pro/post-kling-elements-pro;
    # not carried over).
    max_in_flight=None,
    price={},  # no price is documented: never a guess
)
