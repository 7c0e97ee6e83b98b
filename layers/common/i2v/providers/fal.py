"""The `fal` provider: fal.ai's queue (`queue.fal.run`) running `fal-ai/wan/v2.7/image-to-video`.

Sources: the model page
https://fal.ai/models/fal-ai/wan/v2.7/image-to-video/llms.txt (fields, price); the queue
https://fal.ai/docs/documentation/model-apis/inference/queue ,
https://fal.ai/docs/inference-api/queue/cancel , https://fal.ai/docs/documentation/deployment/requests
; webhooks
https://fal.ai/docs/documentation/model-apis/inference/webhooks ; errors
https://fal.ai/docs/documentation/model-apis/errors ; limits
https://fal.ai/docs/documentation/model-apis/concurrency-limits .

Submit goes to the model path; status, result and cancel live under the app id (`fal-ai/wan`) only, at the
URLs the submit answer returns. The gateway stores only the job id (fal's `request_id`), so this adapter
builds those URLs in the same shape and `parse_submit` checks the answer's `status_url` is that shape.
"""

from __future__ import annotations

import hashlib
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
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
    as_int,
    as_object,
    as_text,
    callback_json,
    job_id,
    json_or_none,
    retry_after,
    state_of,
)

DEFAULT_BASE_URL = "https://queue.fal.run"  # https://fal.ai/docs/documentation/model-apis/inference/queue
MODEL_PATH = "/fal-ai/wan/v2.7/image-to-video"  # submit: the full endpoint id (llms.txt)
# Status/result/cancel use only owner/app, "not the endpoint path"
# (https://fal.ai/docs/inference-api/queue/cancel ; fal-client `SyncRequestHandle.from_request_id` builds https://queue.fal.run/{owner}/{alias}/requests/{id}).
APP_PATH = "/fal-ai/wan"
# Webhook keys: https://fal.ai/docs/documentation/model-apis/inference/webhooks ("Verifying webhooks").
JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"
# Our choice, not fal's: at any other base URL (the simulator, a proxy) the keys are looked up at
# <base_url>/.well-known/jwks.json, so the local simulator can serve its own JWKS.
JWKS_PATH = "/.well-known/jwks.json"
SIGNATURE_TOLERANCE = 300  # seconds either way (webhooks page)

# Queue statuses (https://fal.ai/docs/documentation/model-apis/inference/queue): only these three; a failed
# request is COMPLETED with `error`/`error_type` (parse_status turns that into FAILED).
STATES = {
    "IN_QUEUE": ProviderState.QUEUED,
    "IN_PROGRESS": ProviderState.PROCESSING,
    "COMPLETED": ProviderState.SUCCEEDED,
}
# GUESS: fal documents no status for a cancelled request ("cancellation does not create a pollable
# status"); we read a COMPLETED request whose error_type says it was cancelled as cancelled.
CANCELLED_TYPES = frozenset({"request_cancelled", "cancelled"})
# GUESS: the result URL of an unfinished request is not documented; a 400 whose detail says it is still
# queued or running is read as "not done yet", never as a failure.
NOT_DONE = re.compile(r"in progress|in queue|not (yet )?(completed|finished|ready)", re.IGNORECASE)

# No 5xx is documented as "no job was made" for a queue submit (https://fal.ai/docs/documentation/model-apis/errors);
# docs/adapter-contract.md section 4.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    # One endpoint for all three modes (llms.txt): image_url, image_url + end_image_url,
    # video_url [+ end_image_url].
    modes=ALL_MODES,
    durations=ALL_DURATIONS,  # duration enum 2-15 (llms.txt, DurationEnum)
    resolutions=frozenset({"720p", "1080p"}),  # resolution enum (llms.txt)
    audio=True,  # audio_url, WAV/MP3 2-30 s (llms.txt)
    callback=True,  # ?fal_webhook= (webhooks page)
    cancel=True,  # PUT {cancel_url} (https://fal.ai/docs/inference-api/queue/cancel)
    seed=True,
    min_seed=0,  # seed 0-2147483647 (llms.txt)
    negative_prompt=True,  # negative_prompt, max 500 chars (llms.txt)
    prompt_extend=True,  # enable_prompt_expansion (llms.txt)
    watermark=False,  # no watermark field on this endpoint (llms.txt): routing refuses watermark=true
    alpha=True,  # GUESS: fal lists JPEG/JPG/PNG/BMP/WEBP and says nothing against transparency
)


@dataclass
class FalProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Explicit where fal has defaults (resolution 1080p, duration 5, expansion on: llms.txt).
        body: dict[str, Any] = {
            "resolution": req.resolution,  # lower-case p, as ours
            "duration": req.duration,
            "enable_prompt_expansion": req.prompt_extend,
        }
        if req.prompt:
            body["prompt"] = req.prompt
        if req.negative_prompt:
            body["negative_prompt"] = req.negative_prompt
        if mode is Mode.VIDEO_CONTINUATION:
            body["video_url"] = req.video_url  # "cannot be combined with image_url" (llms.txt)
        else:
            body["image_url"] = req.image_url
        if req.last_frame_url:
            body["end_image_url"] = req.last_frame_url  # first+last, or the end of a continuation
        if req.audio_url:
            body["audio_url"] = req.audio_url
        if req.seed is not None:
            body["seed"] = req.seed
        # enable_safety_checker is left at fal's default (on): it is no option of ours.
        params = (
            {"fal_webhook": callback_url} if callback_url else None
        )  # webhooks page; fal-client urlencodes
        return self.request("POST", MODEL_PATH, body, params=params)

    def parse_submit(self, resp: httpx.Response) -> str:
        data = _answer(resp)
        job = job_id(data.get("request_id"), "request_id", resp)
        expected = self._job_url(job, "/status")
        given = data.get("status_url")
        if given is not None and given != expected:
            # The job exists, but its URLs are not where we would look: keep the answer, say so.
            raise ProviderError(
                f"submit answer's status_url {given!r} is not {expected!r}",
                status_code=resp.status_code,
                code="unexpected_status_url",
                raw=resp.text,
            )
        return job

    def _job_url(self, job: str, tail: str = "") -> str:
        return f"{self.base_url.rstrip('/')}{APP_PATH}/requests/{quote(job, safe='')}{tail}"

    def status(self, provider_task_id: str) -> httpx.Request:
        # The result URL ({response_url}), not {status_url}: a status answer names no video, and the gateway
        # asks one request per poll. GUESS: for an unfinished or failed request it answers with the queue
        # status object (IN_QUEUE + queue_position, IN_PROGRESS, COMPLETED + error), which parse_status reads.
        return self.request("GET", f"{APP_PATH}/requests/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        if resp.status_code == 429 or resp.status_code >= 500:
            _answer(resp)  # raises the right error
        data = json_or_none(resp.content)
        data = data if isinstance(data, dict) else {}
        video = as_object(data.get("video"))
        if resp.is_success and as_text(video.get("url")):
            # The model output (llms.txt): {"video": {"url", ...}, "seed", "actual_prompt"?}
            return ProviderStatus(ProviderState.SUCCEEDED, "COMPLETED", progress=100, result_url=video["url"])
        if isinstance(data.get("status"), str) and (resp.is_success or resp.status_code in (400, 422)):
            return _queue_status(data, resp.text)
        detail = data.get("detail")
        if resp.status_code == 400 and isinstance(detail, str) and NOT_DONE.search(detail):
            return ProviderStatus(ProviderState.PROCESSING, "IN_PROGRESS")
        if resp.status_code in (400, 422) and isinstance(detail, list):
            # A finished request's model error, as fal's errors page shapes it.
            message, code = _detail(detail)
            return ProviderStatus(
                ProviderState.FAILED, "COMPLETED", error_code=code, error_message=message or resp.text[:200]
            )
        _answer(resp)  # 401, 404 ... raise
        raise ProviderError("status answer is neither a result nor a status", raw=resp.text)

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        # 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED, 404 NOT_FOUND (cancel reference).
        return self.request("PUT", f"{APP_PATH}/requests/{quote(provider_task_id, safe='')}/cancel")

    def callback_task_id(self, body: bytes) -> str | None:
        found = callback_json(body).get("request_id")  # webhooks page: request_id is the queue's id
        return found if isinstance(found, str) else None

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        """fal's webhook signature (webhooks page): Ed25519 over
        `request_id \\n user_id \\n timestamp \\n hex(sha256(body))`, hex signature, any JWKS key, ±300 s."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        names = ("request-id", "user-id", "timestamp", "signature")
        values = [headers.get(f"x-fal-webhook-{name}", "") for name in names]
        missing = [f"x-fal-webhook-{n}" for n, v in zip(names, values, strict=True) if not v]
        if missing:
            return f"missing {', '.join(missing)}"
        request_id, user_id, timestamp, signature = values
        try:
            sent_at = int(timestamp)
        except ValueError:
            return "timestamp is not a whole number"
        if abs(now - sent_at) > SIGNATURE_TOLERANCE:
            return f"timestamp is more than {SIGNATURE_TOLERANCE} s away"
        named = callback_json(body).get("request_id")
        if named is not None and named != request_id:
            return "body names another request_id than the signed header"
        try:
            raw_signature = bytes.fromhex(signature)
        except ValueError:
            return "signature is not hex"
        message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()
        # A JWKS that cannot be fetched raises (i2v.runtime.DocumentUnavailable): the callback is answered 503
        # and fal sends it again, rather than refused for what we could not check.
        keys = fetch_json(self.jwks_url)
        for x in _ed25519_keys(keys):
            try:
                Ed25519PublicKey.from_public_bytes(x).verify(raw_signature, message)
                return None
            except (InvalidSignature, ValueError):
                continue
        return "signature matches no key of the JWKS"

    @property
    def jwks_url(self) -> str:
        base = self.base_url.rstrip("/")
        return JWKS_URL if base == DEFAULT_BASE_URL else base + JWKS_PATH


def _ed25519_keys(document: Any) -> list[bytes]:
    import base64

    keys = as_object(document).get("keys")
    found = []
    for key in keys if isinstance(keys, list) else []:
        key = as_object(key)
        x = key.get("x")
        if not isinstance(x, str) or key.get("kty", "OKP") != "OKP" or key.get("crv", "Ed25519") != "Ed25519":
            continue
        try:
            found.append(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
        except ValueError:
            continue
    return found


def _queue_status(data: dict[str, Any], answer: str) -> ProviderStatus:
    raw = str(data.get("status"))
    state = state_of(STATES, raw, answer)
    error, error_type = as_text(data.get("error")), as_text(data.get("error_type"))
    if state is ProviderState.QUEUED:
        position = as_int(data.get("queue_position"))  # 0-based, only while IN_QUEUE (fal-client `Queued`)
        shown = raw if position is None else f"{raw} (position {position})"
        return ProviderStatus(state, shown)
    if state is ProviderState.SUCCEEDED:
        if error is None and error_type is None:
            # COMPLETED without an error but no output in this answer (a status object, not the result): the
            # video is not in hand yet, so it is not "succeeded without a URL". GUESS: the next poll of the
            # result URL gives the output.
            return ProviderStatus(ProviderState.PROCESSING, raw, progress=99)
        state = ProviderState.CANCELLED if error_type in CANCELLED_TYPES else ProviderState.FAILED
    return ProviderStatus(state, raw, error_code=error_type, error_message=error)


def _detail(detail: list[Any]) -> tuple[str | None, str | None]:
    """The first item of fal's `{"detail": [{"loc", "msg", "type", ...}]}` as (message, code)."""
    first = as_object(detail[0]) if detail else {}
    loc = first.get("loc")
    where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
    msg = as_text(first.get("msg"))
    message = f"{where}: {msg}" if where and msg else msg
    return message, as_text(first.get("type"))


def _answer(resp: httpx.Response) -> dict[str, Any]:
    """A fal answer's JSON object, or the ProviderError its status and error body mean. Error bodies:
    `{"detail": [{"loc", "msg", "type", ...}]}` (errors page) or `{"detail": "..."}`."""
    data = json_or_none(resp.content)
    message: str | None = None
    code: str | None = None
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, list):
            message, code = _detail(detail)
        elif isinstance(detail, str):
            message = detail
        if isinstance(data.get("status"), str) and code is None and resp.status_code >= 400:
            code = data["status"]  # cancel's NOT_FOUND / ALREADY_COMPLETED
        code = code or as_text(data.get("error_type")) or resp.headers.get("x-fal-error-type")
    if resp.status_code == 429:
        raise ProviderRateLimited(message or "rate limited", retry_after=retry_after(resp), raw=resp.text)
    if resp.status_code >= 500:
        raise ProviderUnavailable(
            message or f"HTTP {resp.status_code}", status_code=resp.status_code, code=code, raw=resp.text
        )
    if resp.status_code >= 400:
        raise ProviderRejected(
            message or f"HTTP {resp.status_code}", status_code=resp.status_code, code=code, raw=resp.text
        )
    if not isinstance(data, dict):
        raise ProviderError("response is not a JSON object", status_code=resp.status_code, raw=resp.text)
    return data


PROVIDER = Declaration(
    name="fal",
    adapter=FalProvider,
    capabilities=CAPABILITIES,
    default_base_url=DEFAULT_BASE_URL,
    auth=Auth(
        header="Authorization", value="Key {key}"
    ),  # https://fal.ai/docs/documentation/model-apis/inference/queue
    # New accounts may run 2 requests at once (IN_PROGRESS only); queued ones wait, never refused
    # (https://fal.ai/docs/documentation/model-apis/concurrency-limits).
    max_in_flight=2,
    # USD per output second, audio not priced apart
    # (https://fal.ai/models/fal-ai/wan/v2.7/image-to-video/llms.txt, fal's own model page).
    price={"720p": 0.10, "1080p": 0.15},
)
