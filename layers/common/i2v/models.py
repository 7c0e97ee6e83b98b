"""The canonical, provider-neutral request and task models, and the model's own limits.

Every limit of Wan 2.7 that can be checked without fetching the media lives here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

MAX_PROMPT = 5000
MAX_NEGATIVE_PROMPT = 500
MIN_DURATION, MAX_DURATION = 2, 15
MAX_SEED = 2_147_483_647
MAX_URL = 2048
MAX_METADATA_KEYS = 16
MAX_METADATA_VALUE = 512
MAX_PROVIDERS, MAX_PROVIDER_NAME = 10, 32
# Longer than any valid request body can be (every field at its limit, every character JSON-escaped).
MAX_BODY_CHARS = 256 * 1024

Kind = Literal["image", "video", "audio"]
MB = 1_000_000  # the unit of every size limit and message (README: "Inputs")


@dataclass(frozen=True)
class MediaLimits:
    """What the model accepts of one kind of input medium (probed before any provider is paid)."""

    noun: str
    formats: tuple[str, ...]
    max_mb: int
    sides: tuple[int, int] | None = None
    seconds: tuple[int, int] | None = None
    max_aspect: int = 8

    @property
    def max_bytes(self) -> int:
        """`max_mb` in bytes. The hosts' docs say "MB" without saying which; 1 MB = 1,000,000 bytes is the
        stricter reading, so no host that reads it either way refuses a file the gateway accepted."""
        return self.max_mb * MB


MEDIA_LIMITS: dict[Kind, MediaLimits] = {
    "image": MediaLimits("image", ("jpeg", "png", "bmp", "webp"), 20, sides=(240, 8000)),
    "video": MediaLimits("clip", ("mp4", "mov"), 100, sides=(240, 4096), seconds=(2, 10)),
    "audio": MediaLimits("audio", ("wav", "mp3"), 15, seconds=(2, 30)),
}
# Which request field holds which kind of medium.
MEDIA_FIELDS: dict[str, Kind] = {
    "image_url": "image",
    "last_frame_url": "image",
    "video_url": "video",
    "audio_url": "audio",
}


class Status(StrEnum):
    ACCEPTED = "accepted"  # stored, not yet at a provider
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"  # the MP4 is in our bucket
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT})
IN_FLIGHT = frozenset(set(Status) - TERMINAL)


class Mode(StrEnum):
    FIRST_FRAME = "first_frame"
    FIRST_LAST_FRAME = "first_last_frame"
    VIDEO_CONTINUATION = "video_continuation"


Resolution = Literal["720p", "1080p"]
SHORT_SIDE: dict[str, int] = {"720p": 720, "1080p": 1080}


class FieldError(BaseModel):
    field: str
    message: str


class RequestProblem(Exception):
    """A client error with the fields it concerns; becomes an RFC 9457 problem body."""

    def __init__(self, status: int, title: str, errors: list[FieldError] | None = None, detail: str = ""):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.errors = errors or []
        self.detail = detail or "; ".join(f"{e.field}: {e.message}" for e in self.errors) or title

    @classmethod
    def invalid(cls, field: str, message: str) -> RequestProblem:
        return cls(422, "Request validation failed", [FieldError(field=field, message=message)])


def parseable_url(url: str) -> str:
    """Refuse what pattern checks let through but URL parsers (ours, httpx's, a resolver's) cannot read:
    control characters, `http://[x`, a port out of range, a host that is not a valid IDNA name."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
        raise ValueError("must not contain control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily, and raises for a port out of range
        host = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as exc:  # IDNA errors are ValueErrors too
        raise ValueError(f"is not a URL that can be parsed: {exc}") from None
    if not parts.hostname or not host:
        raise ValueError("has no host")
    return url


def _pattern_check(pattern: str, words: str, code: str = "url_scheme") -> AfterValidator:
    """A pattern as a check whose error reads as words, not as the regex (pydantic's own `pattern` error
    quotes it); the schema still publishes the pattern, for clients and generated tests."""
    compiled = re.compile(pattern)

    def check(url: str) -> str:
        if not compiled.match(url):
            raise PydanticCustomError(code, words)
        return url

    return AfterValidator(check)


MEDIA_URL_PATTERN = r"^(https?|s3)://\S+$"
WEBHOOK_URL_PATTERN = r"^https?://\S+$"
FILENAME_PATTERN = r"^[^/\\\x00-\x1f\x7f]+$"

MediaUrl = Annotated[
    str,
    _pattern_check(MEDIA_URL_PATTERN, "must be an http(s) URL, or an s3:// URL from POST /v1/uploads"),
    AfterValidator(parseable_url),
    Field(
        max_length=MAX_URL,
        json_schema_extra={"pattern": MEDIA_URL_PATTERN},
        description="http(s) URL the provider can fetch, or s3://<our bucket>/<key> from POST /v1/uploads",
    ),
]


ProviderName = Annotated[str, Field(min_length=1, max_length=MAX_PROVIDER_NAME)]


def _media(given: list[str], absent: list[str], mode: Mode) -> dict[str, Any]:
    media = {**{f: {"type": "string"} for f in given}, **{f: {"type": "null"} for f in absent}}
    return {"required": given, "properties": {**media, "mode": {"enum": [mode.value, None]}}}


# The model's valid media combinations and the mode each implies, as JSON Schema, so the published
# document refuses what `resolved_mode` refuses (a unit test holds the two to the same answers).
MEDIA_COMBINATIONS: dict[str, Any] = {
    "anyOf": [
        # first frame, first+last (each with or without audio); a clip, with or without a last frame
        _media(["image_url"], ["last_frame_url", "video_url"], Mode.FIRST_FRAME),
        _media(["image_url", "last_frame_url"], ["video_url"], Mode.FIRST_LAST_FRAME),
        _media(["video_url"], ["image_url", "audio_url"], Mode.VIDEO_CONTINUATION),
    ]
}


class VideoRequest(BaseModel):
    """What a client asks for. Field names follow the model, not any one host."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra=MEDIA_COMBINATIONS)

    prompt: str = Field(default="", max_length=MAX_PROMPT, description="What should happen in the video")
    negative_prompt: str | None = Field(default=None, max_length=MAX_NEGATIVE_PROMPT)
    image_url: MediaUrl | None = Field(default=None, description="First frame (JPEG/PNG/BMP/WEBP)")
    last_frame_url: MediaUrl | None = Field(default=None, description="Last frame")
    video_url: MediaUrl | None = Field(default=None, description="Clip to continue (MP4/MOV, 2-10 s)")
    audio_url: MediaUrl | None = Field(default=None, description="Driving audio (WAV/MP3, 2-30 s)")
    mode: Mode | None = Field(default=None, description="Derived from the media when omitted")
    resolution: Resolution = Field(default="1080p", description="Short side 720 or 1080 pixels")
    duration: int = Field(
        default=5,
        ge=MIN_DURATION,
        le=MAX_DURATION,
        description="Seconds; in video_continuation the total length, at least the clip's length",
    )
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    provider: (
        ProviderName | Annotated[list[ProviderName], Field(min_length=1, max_length=MAX_PROVIDERS)] | None
    ) = Field(default=None, description=f"Provider name or ordered list of at most {MAX_PROVIDERS}")
    routing: Literal["ordered", "cheapest", "fastest"] | None = Field(
        default=None,
        description="Without `provider`: the gateway's order (ordered), the lowest price per second for"
        " this request first (cheapest; providers without a price after them), or the shortest median time"
        " from submit to done over recent jobs first (fastest; providers with none yet after them); a"
        " provider with no free slot is passed over for one that has one; default: the gateway's",
    )
    webhook_url: (
        Annotated[
            str,
            _pattern_check(WEBHOOK_URL_PATTERN, "must be an https URL"),
            AfterValidator(parseable_url),
            Field(
                max_length=MAX_URL,
                json_schema_extra={"pattern": WEBHOOK_URL_PATTERN},
                description="https URL that gets a signed POST (Standard Webhooks) when the task finishes",
            ),
        ]
        | None
    ) = None
    metadata: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        # What _small_metadata checks, published (the validator words its own error).
        json_schema_extra={
            "propertyNames": {"minLength": 1, "maxLength": 64},
            "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
        },
    )

    @field_validator("resolution", mode="before")
    @classmethod
    def _lower_resolution(cls, value: Any) -> Any:
        # Hosts spell it 720P; accept either spelling.
        return value.lower() if isinstance(value, str) else value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key or len(key) > 64 or len(item) > MAX_METADATA_VALUE:
                raise ValueError(f"keys must be 1-64 and values at most {MAX_METADATA_VALUE} characters")
        return value

    def resolved_mode(self) -> Mode:
        """The mode the media imply, checked against the model's six valid combinations.

        Raises RequestProblem naming the offending field.
        """
        first, last, clip, audio = self.image_url, self.last_frame_url, self.video_url, self.audio_url
        if clip:
            if first:
                raise RequestProblem.invalid("video_url", "cannot be combined with image_url")
            if audio:
                raise RequestProblem.invalid("audio_url", "driving audio cannot be combined with video_url")
            derived = Mode.VIDEO_CONTINUATION
        elif first:
            derived = Mode.FIRST_LAST_FRAME if last else Mode.FIRST_FRAME
        else:
            raise RequestProblem.invalid("image_url", "one of image_url or video_url is required")
        if self.mode is not None and self.mode != derived:
            raise RequestProblem.invalid("mode", _mode_mismatch(self.mode, derived))
        return derived

    def providers(self) -> list[str]:
        if self.provider is None:
            return []
        return [self.provider] if isinstance(self.provider, str) else list(self.provider)


def _mode_mismatch(asked: Mode, derived: Mode) -> str:
    needs = {
        Mode.FIRST_FRAME: "image_url without last_frame_url or video_url",
        Mode.FIRST_LAST_FRAME: "image_url and last_frame_url",
        Mode.VIDEO_CONTINUATION: "video_url (optionally last_frame_url)",
    }
    return f"{asked.value} needs {needs[asked]}, but the media given mean {derived.value}"


class Attempt(BaseModel):
    provider: str
    at: str
    # "full": not sent, the provider had no free slot for us (i2v.capacity); routing went on to the next one
    outcome: Literal["sent", "accepted", "rejected", "unknown", "full"]
    detail: str = ""
    provider_task_id: str | None = None


HealthStatus = Literal["ok", "degraded", "down"]


class ProviderHealth(BaseModel):
    """Recent submit outcomes of one provider (any tenant's), kept to route around a failing host.

    For operators: the exact times and the host's raw error text say what other tenants' tasks did, so
    tenants are shown `status()` only.
    """

    consecutive_failures: int = 0
    last_success_at: int | None = None
    last_failure_at: int | None = None
    last_error: str | None = None
    # Capacity (i2v.capacity): jobs holding a slot now, the cap lowered by the host's 429s (None: the
    # configured one), no new job before `blocked_until` (Retry-After, or a backoff after 5xx), faults
    # (5xx, timeouts) in a row (the circuit), 429s seen, and the latest jobs' seconds from submit to done.
    in_flight: int = 0
    eff_cap: int | None = None
    blocked_until: int | None = None
    consecutive_faults: int = 0
    credit: int = 0
    refused: int = 0
    recent_seconds: list[float] = Field(default_factory=list)

    DEGRADED_AFTER: ClassVar[int] = 3  # failed submits in a row, the last within WINDOW
    DOWN_AFTER: ClassVar[int] = 10
    WINDOW: ClassVar[int] = 300

    def failing(self, now: int, threshold: int) -> bool:
        recent = self.last_failure_at is not None and now - self.last_failure_at < self.WINDOW
        return recent and self.consecutive_failures >= threshold

    def degraded(self, now: int) -> bool:
        return self.failing(now, self.DEGRADED_AFTER) or self.circuit_open(now)

    CIRCUIT_AFTER: ClassVar[int] = 5  # faults in a row that open the circuit (i2v.capacity)

    def circuit_open(self, now: int) -> bool:
        """Five faults in a row: no job goes there until the cooldown ends, then one job tries it."""
        return self.consecutive_faults >= self.CIRCUIT_AFTER and (self.blocked_until or 0) > now

    def status(self, now: int) -> HealthStatus:
        if self.failing(now, self.DOWN_AFTER) or self.circuit_open(now):
            return "down"
        return "degraded" if self.degraded(now) else "ok"


class Output(BaseModel):
    key: str
    size: int
    sha256: str
    duration: float | None = None  # seconds, read from the stored MP4
    content_type: str


class TaskError(BaseModel):
    code: str
    message: str
    raw: str | None = None


CostSource = Literal["reported", "estimate", "list_price", "no_price", "unmeasured", "not_billed"]


class TaskCost(BaseModel):
    """What a task cost, recorded when it ends (USD)."""

    billed_seconds: float = Field(
        description="Duration of the delivered MP4, read from the stored file; 0 if none"
    )
    provider_cost: float | None = Field(None, description="What the provider charged: reported, or estimated")
    cost_source: CostSource = Field(
        description="reported: the provider's own figure; estimate: billed_seconds x the operator's price; "
        "list_price: billed_seconds x the price the host publishes (the operator set none); "
        "no_price: delivered, but no reported figure and no price known; unmeasured: delivered, but its"
        " duration could not be read; not_billed: nothing delivered and nothing reported"
    )
    client_charge: float | None = Field(
        None, description="What the client is charged: 0 unless the task succeeded; else the provider cost"
    )
    currency: Literal["USD"] = "USD"


class Task(BaseModel):
    """A task as stored. Timestamps are epoch seconds (int) so they sort and compare in DynamoDB."""

    id: str
    tenant: str
    status: Status
    request: VideoRequest
    mode: Mode
    source: Literal["api", "s3"] = "api"
    source_key: str | None = None
    provider: str | None = None
    provider_task_id: str | None = None
    providers: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    progress: int = 0
    queue_state: str | None = None
    result_url: str | None = None
    output: Output | None = None
    error: TaskError | None = None
    reported_cost_usd: float | None = None  # the provider's own spend for the job, where it reports one
    reserved_usd: float | None = None  # taken off the tenant's budget at create (i2v.budgets)
    budget_period: str | None = None  # the month (yyyy-mm) it was taken from
    cost: TaskCost | None = None  # recorded when the task ends
    created_at: int
    updated_at: int
    deadline_at: int
    next_poll_at: int | None = None
    finished_at: int | None = None
    ingest_started: bool = False  # an ingest claimed the task once: a stray output may need discarding
    # Capacity (i2v.capacity): the provider whose slot the task holds; while it waits, its place in the fair
    # queue (the `by_queue` index's sort key; `queue_place` keeps it, so a task that waits again keeps its
    # place); when a provider took the job.
    slot: str | None = None
    queue_sk: str | None = None
    queue_place: str | None = None
    submitted_at: int | None = None
    outbox: list[str] = Field(default_factory=list)  # steps still owed after the end (i2v.lifecycle.Step)
    version: int = 0


class DeliveryAttempt(BaseModel):
    """One POST of a task's webhook, as stored (epoch seconds, like every stored time)."""

    at: int
    result: str  # "HTTP 200", "HTTP 500", "no answer: ConnectTimeout", "refused: <guard reason>"


class WebhookDelivery(BaseModel):
    """What happened to a task's webhook so far, as stored."""

    delivered: bool = False
    attempts: list[DeliveryAttempt] = Field(default_factory=list)


class DeliveryAttemptView(BaseModel):
    at: str = Field(description="When the POST was made (ISO 8601, UTC)")
    result: str = Field(description="HTTP <status>, or why no answer came")


class WebhookDeliveryView(BaseModel):
    """What the API shows of a task's webhook: times in ISO 8601, like every time it shows."""

    delivered: bool = False
    attempts: list[DeliveryAttemptView] = Field(default_factory=list)


class TaskLinks(BaseModel):
    self: str
    cancel: str | None = Field(
        default=None,
        exclude_if=lambda link: link is None,  # absent, not null, once the task has ended
        description="Only while the task can still be cancelled",
    )


class UsageFigures(BaseModel):
    tasks: int = Field(description="Tasks that ended")
    billed_seconds: float = Field(description="Seconds of video delivered")
    provider_cost: float = Field(description="What the providers charged, where known (USD)")
    client_charge: float = Field(description="What you are charged (USD): nothing for unsuccessful tasks")
    unpriced_tasks: int = Field(description="Delivered tasks with no reported cost and no configured price")


class UsageGroup(UsageFigures):
    key: str = Field(description="The provider, the day (YYYY-MM-DD) or the status, per group_by")


class UsageReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    start: str = Field(alias="from", description="First day, UTC")
    end: str = Field(alias="to", description="Last day, UTC, included")
    group_by: Literal["provider", "day", "status"]
    currency: Literal["USD"] = "USD"
    groups: list[UsageGroup]
    total: UsageFigures


class QueuePlace(BaseModel):
    """Where a task waiting for a provider slot stands (i2v.capacity)."""

    position: int = Field(description="1 for the next task to go")
    ahead: int = Field(description="Tasks (any tenant's) that go before it")
    waiting_for: str = Field(description='What it waits for, e.g. "capacity at oxen"')
    eta: str = Field(description="When it should be sent, estimated from the free slots and recent job times")


class TaskView(BaseModel):
    """What the API returns for a task."""

    id: str
    status: Status
    mode: Mode
    progress: int
    source: Literal["api", "s3"]
    source_key: str | None = Field(default=None, description="The uploaded object, for S3-triggered tasks")
    queue_state: str | None = Field(
        default=None, description="The provider's own word for where the job is; null once the task ended"
    )
    provider: str | None = None
    request: VideoRequest
    output_url: str | None = None
    expires_at: str | None = None
    output: Output | None = None
    error: TaskError | None = None
    cost: TaskCost | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    queue: QueuePlace | None = Field(
        default=None, description="While it waits for a provider slot (shown on GET of the task)"
    )
    queue_wait_seconds: int | None = Field(
        default=None, description="From accepted to taken by a provider (or until now, while it waits)"
    )
    webhook: WebhookDeliveryView | None = Field(
        default=None, description="Shown on GET of a task with a webhook_url"
    )
    created_at: str
    updated_at: str
    links: TaskLinks


class TaskPage(BaseModel):
    items: list[TaskView]
    next_cursor: str | None = None


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The file's own name, spaces and accents welcome (layout.key_safe_name makes a key of it); no path.
    filename: Annotated[
        str,
        _pattern_check(
            FILENAME_PATTERN, "must be a file's name, not a path: no /, \\ or control characters", "filename"
        ),
        Field(
            min_length=1,
            max_length=200,
            json_schema_extra={"pattern": FILENAME_PATTERN},
            description="The file's name as it is on your disk, e.g. 'Café au lait (1).png'",
        ),
    ]
    content_type: Literal[
        "image/jpeg",
        "image/png",
        "image/bmp",
        "image/webp",
        "video/mp4",
        "video/quicktime",
        "audio/wav",
        "audio/x-wav",
        "audio/mpeg",
    ]


class UploadTicket(BaseModel):
    url: str = Field(description="Use this as image_url / last_frame_url / video_url / audio_url")
    put_url: str = Field(description="Presigned PUT; send the file with the same Content-Type")
    expires_at: str
