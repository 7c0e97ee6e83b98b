"""Alibaba Cloud Model Studio (DashScope), native async API for `wan2.7-i2v`: submit, then poll /api/v1/tasks.
DEFAULT_BASE_URL is Singapore; I2V_DASHSCOPE_BASE_URL picks another region (model, host and key must match).
"""

from __future__ import annotations

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
    ProviderError,
    ProviderState,
    ProviderStatus,
    as_text,
    job_id,
    json_body,
    state_of,
)

# Singapore. Beijing is https://dashscope.aliyuncs.com; workspace domains are
# https://{WorkspaceId}.cn-beijing.maas.aliyuncs.com and https://{WorkspaceId}.ap-southeast-1.maas.aliyuncs.com.
DEFAULT_BASE_URL = "https://dashscope-intl.aliyuncs.com"
MODEL = "wan2.7-i2v"
SUBMIT_PATH = "/api/v1/services/aigc/video-generation/video-synthesis"

# UNKNOWN is not "still working": DashScope says it for a task that does not exist or was created more than
# 24 h ago (task ids live 24 h), so polling on cannot help. It is a failure with its own code, kept apart
# from the unknown_status error that a word missing from this table raises.
UNKNOWN = "UNKNOWN"
TASK_GONE = "task_not_found_or_expired"

STATES = {
    "PENDING": ProviderState.QUEUED,
    "RUNNING": ProviderState.PROCESSING,
    "SUCCEEDED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
    "CANCELED": ProviderState.CANCELLED,
    UNKNOWN: ProviderState.FAILED,
}


# What an unknown submit outcome means, and when a lost one is recovered: docs/adapter-contract.md (4, 5).
# Submit answers that prove no job was made: no 5xx. The API reference
# (https://www.alibabacloud.com/help/en/model-studio/image-to-video-general-api-reference) warns
# "Do not create duplicate tasks"; the errors documented for it (as summarised in the secondary doc
# cinience/alicloud-skills, skills/ai/video/aliyun-wan-i2v/references/api_reference.md) are 400
# InvalidParameter, 401/403 and 429 only.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

# All three modes, 2-15 s, 720P/1080P, driving audio; no per-task callback and no cancel endpoint on the
# wan2.7 HTTP reference
# (https://www.alibabacloud.com/help/en/model-studio/image-to-video-general-api-reference).
CAPABILITIES = Capabilities(
    modes=ALL_MODES,
    durations=ALL_DURATIONS,
    audio=True,
    callback=False,
    cancel=False,
    alpha=False,  # images are "JPEG/JPG/PNG (no alpha)/BMP/WEBP"
    submit_not_created=SUBMIT_NOT_CREATED,
)


@dataclass
class DashscopeProvider(HttpProvider):
    model: str = MODEL  # or a dated snapshot such as wan2.7-i2v-2026-04-25

    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # callback_url is ignored: this API only polls.
        media = [
            {"type": kind, "url": url}
            for kind, url in (
                ("first_frame", req.image_url),
                ("first_clip", req.video_url),
                ("last_frame", req.last_frame_url),
                ("driving_audio", req.audio_url),
            )
            if url
        ]
        inputs: dict[str, Any] = {"media": media}
        if req.prompt:
            inputs["prompt"] = req.prompt
        if req.negative_prompt:
            inputs["negative_prompt"] = req.negative_prompt
        # DashScope defaults to 1080P, 5 s and prompt_extend=true; send ours so no host default leaks in.
        parameters: dict[str, Any] = {
            "resolution": req.resolution.upper(),
            "duration": req.duration,
            "prompt_extend": req.prompt_extend,
            "watermark": req.watermark,
        }
        if req.seed is not None:
            parameters["seed"] = req.seed
        request = self.request(
            "POST", SUBMIT_PATH, {"model": self.model, "input": inputs, "parameters": parameters}
        )
        # Required: without it DashScope answers "current user api does not support synchronous calls".
        # Only the submit needs it, so it is not in extra_headers.
        request.headers["X-DashScope-Async"] = "enable"
        return request

    def parse_submit(self, resp: httpx.Response) -> str:
        # Errors are {"request_id", "code", "message"} at the top level, which json_body already reads.
        output = _output(json_body(resp), resp)
        return job_id(output.get("task_id"), "output.task_id", resp)

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"/api/v1/tasks/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        output = _output(json_body(resp), resp)
        raw = str(output.get("task_status"))
        state = state_of(STATES, raw, resp.text)
        if raw == UNKNOWN:
            return ProviderStatus(
                state=state,
                raw_status=raw,
                error_code=TASK_GONE,
                error_message="DashScope reports UNKNOWN: no such task, or it is past its 24 h validity",
            )
        # No progress or ETA in this API; the docs suggest polling every 15 s (our default interval).
        return ProviderStatus(
            state=state,
            raw_status=raw,
            result_url=as_text(output.get("video_url")),
            error_code=as_text(output.get("code")) if state is ProviderState.FAILED else None,
            error_message=as_text(output.get("message")) if state is ProviderState.FAILED else None,
        )

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        return None  # no cancel endpoint documented for wan2.7-i2v (the docs do not mention one)


def _output(data: dict[str, Any], resp: httpx.Response) -> dict[str, Any]:
    output = data.get("output")
    if not isinstance(output, dict):
        raise ProviderError("answer has no output object", status_code=resp.status_code, raw=resp.text)
    return output


PROVIDER = Declaration(
    name="dashscope", adapter=DashscopeProvider, capabilities=CAPABILITIES, default_base_url=DEFAULT_BASE_URL
)
