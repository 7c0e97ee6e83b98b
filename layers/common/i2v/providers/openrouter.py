"""The `openrouter` provider: OpenRouter's video API (`POST /api/v1/videos`, model `alibaba/wan-2.7`), with a
per-task `callback_url` that OpenRouter calls when a job ends (signed only when the workspace has a secret).

Sources: https://openrouter.ai/docs/features/video-generation ,
https://openrouter.ai/docs/api/api-reference/videos ,
https://openrouter.ai/docs/api/api-reference/video-generation/create-videos ,
https://openrouter.ai/docs/cookbook/video-generation/video-generation-webhooks , and the OpenAPI document of
the official docs repository (github.com/OpenRouterTeam/docs, openapi/openapi.yaml: `VideoGenerationRequest`,
`VideoGenerationResponse`, `FrameImage`).

The finished video: `unsigned_urls[0]` points at `GET /api/v1/videos/{id}/content?index=0`, which answers only
with the account's `Authorization: Bearer <key>` (cookbook; a third party's live test saw 401 without it:
https://github.com/CopilotKit/aimock/issues/261). The live API reference also mentions a signed storage URL
`urls[0]` that the OpenAPI document does not have; where an answer carries one, it is the result URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from i2v.models import Mode, VideoRequest
from i2v.providers.base import (
    ALL_DURATIONS,
    Capabilities,
    Declaration,
    HttpProvider,
    ProviderError,
    ProviderState,
    ProviderStatus,
    as_object,
    as_text,
    callback_json,
    job_id,
    json_body,
    state_of,
)

DEFAULT_BASE_URL = "https://openrouter.ai"  # https://openrouter.ai/docs/api/api-reference/videos
VIDEOS = "/api/v1/videos"  # submit POST, status GET /{id}, bytes GET /{id}/content?index=0 (same page)
# The one slug serves text-, image- and reference-to-video; `frame_images` selects image-to-video
# (https://openrouter.ai/docs/features/video-generation).
MODEL = "alibaba/wan-2.7"
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

# The status vocabulary of `VideoGenerationResponse` (openapi.yaml; https://openrouter.ai/docs/api/api-reference/videos).
STATES = {
    "pending": ProviderState.QUEUED,
    "in_progress": ProviderState.PROCESSING,
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
    "cancelled": ProviderState.CANCELLED,
    # "Job exceeded maximum time to live" (the webhook cookbook's video.generation.expired): the job ended
    # without a video, so it failed; error_code "expired" tells it apart.
    "expired": ProviderState.FAILED,
}

# A signature older or newer than this is stale: the guide's sample rejects timestamps older than 300 s and
# the cookbook's `|age| > 300` (https://openrouter.ai/docs/cookbook/video-generation/video-generation-webhooks).
SIGNATURE_TOLERANCE = 300
SIGNATURE_HEADER = "x-openrouter-signature"  # `t=<unix seconds>,v1=<hex>` (same cookbook)

# No 5xx is documented as "no job was made" (https://openrouter.ai/docs/api/reference/errors-and-debugging
# lists 500/502/503 with no word on the job): every 5xx to a submit is an unknown outcome.
SUBMIT_NOT_CREATED: frozenset[int] = frozenset()

CAPABILITIES = Capabilities(
    submit_not_created=SUBMIT_NOT_CREATED,
    # `frame_images` items with frame_type first_frame / last_frame (FrameImage in openapi.yaml). A clip to
    # continue has no field: a `video_url` input reference is reference-to-video, not continuation.
    modes=frozenset({Mode.FIRST_FRAME, Mode.FIRST_LAST_FRAME}),
    # GUESS: the model's own 2-15 s. Wan 2.7's `supported_durations` is only in GET /api/v1/videos/models,
    # not in the static docs.
    durations=ALL_DURATIONS,
    # `resolution` enum (480p ... 4K) holds both; Wan 2.7's `supported_resolutions`: GUESS 720p and 1080p.
    resolutions=frozenset({"720p", "1080p"}),
    # Audio `input_references` are "only honored by providers that support them" and select
    # reference-to-video, which `frame_images` overrides: no driving-audio field for image-to-video.
    audio=False,
    callback=True,  # `callback_url` (HTTPS), overriding the workspace default (create-videos reference)
    cancel=False,  # no cancel endpoint is documented, although `cancelled` is a status
    seed=True,  # `seed` (integer; "determinism not guaranteed for every provider")
    min_seed=0,  # GUESS: no lower bound is documented beyond "integer"
    # Only through `provider.options` passthrough, whose allowed keys for Wan 2.7 are not documented
    # (`allowed_passthrough_parameters` in GET /api/v1/videos/models): refused rather than guessed at.
    negative_prompt=False,
    prompt_extend=False,  # the same: no documented switch, so `prompt_extend: false` is refused
    watermark=False,  # no watermark field
)


@dataclass
class OpenRouterProvider(HttpProvider):
    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request:
        # Routing refused what OpenRouter cannot take (continuation, driving audio, negative prompt,
        # prompt_extend false, watermark: see CAPABILITIES), so nothing here is dropped.
        frames = [_frame(req.image_url or "", "first_frame")]
        if mode is Mode.FIRST_LAST_FRAME and req.last_frame_url:
            frames.append(_frame(req.last_frame_url, "last_frame"))
        body: dict[str, Any] = {
            "model": MODEL,
            "frame_images": frames,
            "duration": req.duration,  # explicit: the per-model default is not documented
            "resolution": req.resolution,  # explicit, and no aspect_ratio: the image sets the shape
        }
        # GUESS: "prompt is optional for models that can generate from image input alone"; whether Wan 2.7
        # is one is not documented, so an empty prompt is left out rather than sent empty.
        if req.prompt:
            body["prompt"] = req.prompt
        if req.seed is not None:
            body["seed"] = req.seed
        if callback_url:
            body["callback_url"] = callback_url
        # `generate_audio` is not sent: its default is the endpoint's own capability flag (create-videos
        # reference), i.e. the model's soundtrack where it makes one, as on every other host.
        return self.request("POST", VIDEOS, body)

    def parse_submit(self, resp: httpx.Response) -> str:
        # 202 {"id", "polling_url", "status": "pending"}; polling_url is relative in the OpenAPI example
        # ("/api/v1/videos/job-abc123") and absolute in the guide: both must name the URL we poll.
        data = json_body(resp)
        job = job_id(data.get("id"), "id", resp)
        if not JOB_ID.fullmatch(job):
            raise ProviderError(f"job id {job!r} is not one we can follow", raw=resp.text)
        polling = data.get("polling_url")
        if polling is not None and not self._is_status_url(polling, job):
            raise ProviderError(f"polling_url {polling!r} is not {VIDEOS}/{job} on this host", raw=resp.text)
        return job

    def _is_status_url(self, polling: Any, job: str) -> bool:
        # The path must be the one `status` builds; a relative URL is the OpenAPI example's form, and an
        # absolute one must name this base URL's host or OpenRouter's own (a proxy in front keeps the path).
        if not isinstance(polling, str):
            return False
        theirs = urlsplit(polling)
        hosts = {"", urlsplit(self.base_url).netloc, urlsplit(DEFAULT_BASE_URL).netloc}
        return theirs.netloc in hosts and theirs.path == f"{VIDEOS}/{quote(job, safe='')}"

    def status(self, provider_task_id: str) -> httpx.Request:
        return self.request("GET", f"{VIDEOS}/{quote(provider_task_id, safe='')}")

    def parse_status(self, resp: httpx.Response) -> ProviderStatus:
        data = json_body(resp)
        raw = str(data.get("status"))
        state = state_of(STATES, raw, resp.text)
        error = as_text(data.get("error"))  # a string on failed / cancelled / expired
        usage = as_object(data.get("usage"))
        cost = usage.get("cost")  # USD, may be null; set once completed
        return ProviderStatus(
            state=state,
            raw_status=raw,
            result_url=self._result_url(data) if state is ProviderState.SUCCEEDED else None,
            error_code=raw if raw in ("failed", "expired") else None,
            error_message=error,
            cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        )

    def _result_url(self, data: Mapping[str, Any]) -> str | None:
        # A signed storage URL (`urls`, live API reference only) needs no key; otherwise the content endpoint
        # (`unsigned_urls`), which needs this account's Bearer header to download.
        for field in ("urls", "unsigned_urls"):
            found = data.get(field)
            first = found[0] if isinstance(found, list) and found else None
            if isinstance(first, str) and first:
                return urljoin(self.base_url.rstrip("/") + "/", first)
        return None

    def cancel(self, provider_task_id: str) -> httpx.Request | None:
        # No cancel endpoint is documented (https://openrouter.ai/docs/api/api-reference/videos). Cancelling a
        # task here only makes the gateway stop following the job: OpenRouter keeps running it and may still
        # bill it (its usage.cost), and its callback, if one comes, finds the task ended.
        return None

    def callback_task_id(self, body: bytes) -> str | None:
        # {"type": "video.generation.completed", "created_at", "data": {"id", "status", ...}} (webhook
        # cookbook)
        task_id = as_object(callback_json(body).get("data")).get("id")
        return task_id if isinstance(task_id, str) else None

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        """OpenRouter signs only when a signing secret is set in the workspace settings (webhook cookbook):
        with no secret configured here, unsigned deliveries are what it sends and are accepted (the per-task
        token and the status query still decide). With one, `X-OpenRouter-Signature: t=<s>,v1=<hex>` must
        hold: hex(HMAC-SHA256(secret as-is, f"{t}," + raw body)), within 300 s of now."""
        if not self.webhook_secret:
            return None
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            return "missing X-OpenRouter-Signature"
        stamp, signatures = "", []
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t":
                stamp = value
            elif key == "v1":
                signatures.append(value.lower())
        if not stamp.isdigit() or not signatures:
            return "malformed X-OpenRouter-Signature"
        if abs(now - int(stamp)) > SIGNATURE_TOLERANCE:
            return "stale X-OpenRouter-Signature timestamp"
        expected = hmac.new(
            self.webhook_secret.encode(), stamp.encode() + b"," + body, hashlib.sha256
        ).hexdigest()
        if not any(hmac.compare_digest(expected, given) for given in signatures):
            return "X-OpenRouter-Signature does not match"
        return None


def _frame(url: str, frame_type: str) -> dict[str, Any]:
    # FrameImage (openapi.yaml): {"type": "image_url", "image_url": {"url"}, "frame_type"}
    return {"type": "image_url", "image_url": {"url": url}, "frame_type": frame_type}


PROVIDER = Declaration(
    name="openrouter",
    adapter=OpenRouterProvider,
    capabilities=CAPABILITIES,
    default_base_url=DEFAULT_BASE_URL,
    # Authorization: Bearer <OPENROUTER_API_KEY> (https://openrouter.ai/docs/api/api-reference/videos)
    # No video concurrency or rate limit is documented (https://openrouter.ai/docs/api/reference/limits).
    max_in_flight=None,
    # The content endpoint (unsigned_urls) answers only with the key (video-generation cookbook).
    keyed_results=True,
    # Not a published price table: the choose-model cookbook's sample output
    # (https://openrouter.ai/docs/cookbook/video-generation/choose-video-model) lists alibaba/wan-2.7 with a
    # lowest advertised price of 0.1, read as USD per output second at the cheapest tier (720p). Wan 2.7's
    # own SKUs (`pricing_skus`) are only in GET /api/v1/videos/models; 1080p is not recorded, so not set.
    # The charge itself is `usage.cost` on the finished job (cost_usd).
    price={"720p": 0.10},
)
