"""The `aimlapi` provider: AI/ML API's universal video endpoint with model `alibaba/wan-2-7-i2v`.

First frame (+ driving audio) only, durations 5/10/15, no callbacks, no cancel (the docs describe neither).
Source: https://docs.aimlapi.com/api-references/video-models/alibaba-cloud/wan-2.7-image-to-video
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderRejected,
    ProviderState,
    ProviderStatus,
    as_object,
    as_text,
    job_id,
    json_body,
    json_or_none,
    state_of,
)

DEFAULT_BASE_URL = "https://api.aimlapi.com"
MODEL = "alibaba/wan-2-7-i2v"
PATH = "/v2/video/generations"  # submit (POST) and poll (GET ?generation_id=) share it

# The OpenAPI enum of the shared submit/poll schema. There is no cancelled state: the API has no cancel.
STATES = {
    "queued": ProviderState.QUEUED,
    "generating": ProviderState.PROCESSING,
    "completed": ProviderState.SUCCEEDED,
    "error": ProviderState.FAILED,
}


# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: no 5xx. The error pages (docs/errors-and-messages/ in AI/ML API's
# docs repository, aimlapi/api-docs) document 400, 401, 403 and 429 only; no 5xx is described at all.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    modes=frozenset({Mode.FIRST_FRAME}),  # no last-frame or clip field is exposed
    durations=frozenset({5, 10, 15}),  # an integer enum, not a range
    audio=True,  # audio_url: driving audio
    callback=False,  # no webhook for video generations
    cancel=False,  # no cancel endpoint
)


@dataclass
class AimlapiProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Only first-frame requests get here: routing refuses other modes by CAPABILITIES. That matters,
        # because the body validator drops unknown fields rather than refusing them, so a last frame or clip
        # sent anyway would vanish and the job run as plain first-frame: a silent wrong video.
        body: dict[str, Any] = {
            "model": MODEL,
            # Required by the schema, which sets no minLength: an empty prompt goes as "", never left out.
            "prompt": req.prompt,
            "image_url": req.image_url,
            "resolution": req.resolution,  # their default is 1080p; ours may differ per request
            "duration": req.duration,  # their default is 10, ours 5
            # Two documented fields with one description: send both with our value, so whichever the
            # backend honours, its default (true) cannot override what the client asked for.
            "enable_prompt_expansion": req.prompt_extend,
            "enhance_prompt": req.prompt_extend,
            "watermark": req.watermark,
        }
        if req.audio_url:
            body["audio_url"] = req.audio_url
        if req.negative_prompt:
            body["negative_prompt"] = req.negative_prompt
        if req.seed is not None:
            body["seed"] = req.seed
        # Video generations have no callback field: callback_url is ignored (capabilities.callback is False).
        return self.request("POST", PATH, body)

    def parse_submit(self, resp: httpx.Response) -> str:
        data = _json(resp)
        return job_id(data.get("id"), "id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", PATH, params={"generation_id": provider_task_id})

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = _json(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        video = as_object(data.get("video"))
        error = as_object(data.get("error"))
        return ProviderStatus(
            state=state,
            raw_status=raw,
            # The API reports neither progress nor an ETA. A `completed` without video.url is left to the
            # service, which fails it as no_result_url.
            result_url=as_text(video.get("url")),
            error_code=as_text(error.get("name")),
            error_message=as_text(error.get("message")),
            cost_usd=_usd_spent(data),
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # no cancel endpoint is documented


def _usd_spent(data: dict[str, Any]) -> float | None:
    """`meta.usage.usd_spent` (the docs' example: `{"credits_used": 120000, "usd_spent": 0.06}`)."""
    spent = as_object(as_object(data.get("meta")).get("usage")).get("usd_spent")
    if isinstance(spent, bool) or not isinstance(spent, int | float) or spent < 0:
        return None
    return float(spent)


def _json(resp: httpx.Response) -> dict[str, Any]:
    """Like json_body, but 4xx bodies are {message, path, requestId, statusCode, timestamp}: the only
    code-like field is statusCode, so that becomes the error code."""
    if 400 <= resp.status_code < 500 and resp.status_code != 429:
        data = json_or_none(resp.content)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            raise ProviderRejected(
                data["message"],
                status_code=resp.status_code,
                code=str(data.get("statusCode") or resp.status_code),
                raw=resp.text,
            )
    return json_body(resp)


PROVIDER = Declaration(
    name="aimlapi", adapter=AimlapiProvider, capabilities=CAPABILITIES, default_base_url=DEFAULT_BASE_URL
)
