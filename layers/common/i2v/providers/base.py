"""What every provider adapter is: sans-I/O mappings between our models and one host's HTTP API.

Adapters build `httpx.Request`s and parse `httpx.Response`s; `i2v.providers.client` does the sending. The
contract in our words, with the rules the gateway applies around it: docs/adapter-contract.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx

from i2v import jsontext
from i2v.models import MAX_DURATION, MIN_DURATION, Mode, VideoRequest


class ProviderState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ProviderStatus:
    state: ProviderState
    raw_status: str
    progress: int | None = None
    result_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    eta_seconds: int | None = None
    cost_usd: float | None = None  # the provider's own figure for what the job cost, where it reports one


@dataclass(frozen=True)
class Capabilities:
    """What a host can honour of the model's options; routing refuses (or passes over) a host that cannot
    honour a request, naming the option (`refusal`). An adapter never drops an option silently."""

    modes: frozenset[Mode]
    durations: frozenset[int]
    resolutions: frozenset[str] = frozenset({"720p", "1080p"})
    audio: bool = True  # accepts driving audio
    callback: bool = False  # calls a per-task callback URL when a job ends
    cancel: bool = False
    seed: bool = True  # takes a seed
    min_seed: int = 0
    negative_prompt: bool = True  # takes a negative prompt
    prompt_extend: bool = True  # has the prompt-rewriting switch (the model's default is on)
    watermark: bool = True  # has a watermark option
    alpha: bool = True  # accepts images with an alpha channel
    last_frame_with_clip: bool = True  # takes a last frame with a clip to continue (continuation to a frame)
    # The 5xx statuses this host documents as "the job was not created" when they answer a submit: only those
    # are retried and failed over. Any other 5xx may come after the host made (and will bill) the job, so the
    # submit's outcome is unknown (SubmitOutcomeUnknown): never resent, never sent to the next provider.
    # 4xx and 429 answers are refusals on every host. Each adapter declares its set with the source.
    submit_not_created: frozenset[int] = frozenset()

    def refusal(self, req: VideoRequest, mode: Mode, alpha: bool = False) -> str | None:
        """Why this provider cannot serve the request (`alpha`: an input image has one), or None."""
        if mode not in self.modes:
            return f"does not support mode {mode.value}"
        if req.duration not in self.durations:
            return f"supports durations {_span(self.durations)}, not {req.duration}"
        if req.resolution not in self.resolutions:
            return f"supports resolutions {sorted(self.resolutions)}, not {req.resolution}"
        if req.audio_url and not self.audio:
            return "does not accept driving audio (audio_url)"
        if req.seed is not None and not self.seed:
            return "takes no seed"
        if req.seed is not None and req.seed < self.min_seed:
            return f"accepts seeds from {self.min_seed}, not {req.seed}"
        if req.negative_prompt and not self.negative_prompt:
            return "takes no negative_prompt"
        # Off is the only setting a host without the switch may not honour: it rewrites, or it does not.
        if not req.prompt_extend and not self.prompt_extend:
            return "has no prompt_extend option (it cannot be turned off)"
        if req.watermark and not self.watermark:
            return "has no watermark option"
        if req.last_frame_url and req.video_url and not self.last_frame_with_clip:
            return "takes no last_frame_url with a video_url to continue"
        if alpha and not self.alpha:
            return "does not accept images with an alpha channel (transparency)"
        return None


def _span(values: frozenset[int]) -> str:
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(map(str, ordered))


ALL_MODES = frozenset(Mode)
ALL_DURATIONS = frozenset(range(MIN_DURATION, MAX_DURATION + 1))


class ProviderError(Exception):
    """A provider said no, or could not be understood. `raw` keeps what it sent."""

    def __init__(
        self, message: str, *, status_code: int | None = None, code: str | None = None, raw: str = ""
    ):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.raw = raw[:2000]


class ProviderRejected(ProviderError):
    """A 4xx: the provider certainly did not accept the job."""


class ProviderUnavailable(ProviderError):
    """A 5xx or a connection that never reached it: retried. A submit fails over on it only when it proves
    no job was made (never connected, or a 5xx in `Capabilities.submit_not_created`)."""


class DeadlineReached(ProviderUnavailable):
    """Too little of the caller's time was left to send the request, so it was not sent."""


class ProviderRateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None, raw: str = ""):
        super().__init__(message, status_code=429, code="rate_limited", raw=raw)
        self.retry_after = retry_after


class SubmitOutcomeUnknown(ProviderError):
    """The request was sent but no answer came, or an answer that does not prove the job was not made
    (a 5xx the host does not document as "not created"): the job may exist. Reconcile, never resubmit."""


class UnknownProviderStatus(ProviderError):
    """A status string the adapter does not know: an error, never 'still processing'."""


class Provider(Protocol):
    """One host's API as pure mappings. `submit` gets the mode routing resolved and already checked
    against `capabilities` (see `Capabilities.refusal`): an adapter maps a request, it never refuses one."""

    @property
    def name(self) -> str: ...
    @property
    def capabilities(self) -> Capabilities: ...

    def submit(self, req: VideoRequest, mode: Mode, callback_url: str | None) -> httpx.Request: ...
    def parse_submit(self, resp: httpx.Response) -> str: ...
    def status(self, provider_task_id: str) -> httpx.Request: ...
    def parse_status(self, resp: httpx.Response) -> ProviderStatus: ...
    def cancel(self, provider_task_id: str) -> httpx.Request | None: ...
    def callback_task_id(self, body: bytes) -> str | None: ...
    def result_headers(self, url: str) -> dict[str, str]: ...
    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None: ...


@dataclass(frozen=True)
class Auth:
    """How a host takes its API key: the header, and its value with `{key}` where the key goes."""

    header: str = "Authorization"
    value: str = "Bearer {key}"

    def headers(self, key: str) -> dict[str, str]:
        return {self.header: self.value.format(key=key)}


BEARER = Auth()


@dataclass(frozen=True)
class Declaration:
    """One host, as its module declares it (`PROVIDER = Declaration(...)`); i2v.providers.registry collects
    them. Everything the gateway knows of a host that is not a mapping lives here, once."""

    name: str  # the module's own name: the API's `provider`, the simulator's module (sim_<name>)
    adapter: Callable[..., Provider]  # an HttpProvider subclass: (base_url=, api_key=, declared=)
    capabilities: Capabilities
    default_base_url: str  # the public host; "" means a base URL must be configured
    auth: Auth = BEARER
    # The most jobs one account may have running at once, and the most submits a minute, where the host
    # documents them (None: it does not, and i2v.capacity uses its conservative default).
    max_in_flight: int | None = None
    max_submits_per_minute: int | None = None
    # USD per second of video by request shape ("720p", "1080p", "720p+audio" where audio is priced apart),
    # where the host publishes a price; the operator's table (I2V_PRICES) overrides it. Never a guess.
    price: Mapping[str, float] = field(default_factory=dict)
    # The host's result link answers only with the account's key (sent only to the host's own URLs): the
    # ingest function then reads the keys, which it otherwise never needs.
    keyed_results: bool = False

    def build(self, base_url: str, api_key: str, webhook_secret: str = "") -> Provider:
        """The adapter for this host at `base_url`, sending `api_key`; `webhook_secret` checks the signatures
        of its callbacks where the host signs them with a secret of the account's."""
        return self.adapter(base_url=base_url, api_key=api_key, declared=self, webhook_secret=webhook_secret)


@dataclass
class HttpProvider:
    """Shared plumbing for adapters: base URL, the host's auth header, JSON bodies, error classification."""

    base_url: str
    api_key: str
    declared: Declaration
    webhook_secret: str = ""  # the account's secret for the host's callback signatures, where it has one

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def capabilities(self) -> Capabilities:
        return self.declared.capabilities

    def callback_task_id(self, body: bytes) -> str | None:
        """The provider's job id named in a callback body (a hint, confirmed by a status query), if any."""
        return None

    def result_headers(self, url: str) -> dict[str, str]:
        """Headers the download of a result link needs: the account's key for a host with `keyed_results`,
        and only for a link on the host's own base URL (the key never goes anywhere else)."""
        own = httpx.URL(self.base_url)
        link = httpx.URL(url)
        if not self.declared.keyed_results or (link.scheme, link.host, link.port) != (
            own.scheme,
            own.host,
            own.port,
        ):
            return {}
        return self.declared.auth.headers(self.api_key)

    def callback_refusal(
        self, headers: Mapping[str, str], body: bytes, now: float, fetch_json: Callable[[str], Any]
    ) -> str | None:
        """Why a callback's signature does not hold, or None when it does (then the per-task token, checked
        before, and the status query, asked after, decide as for every host). `headers` are lower-cased;
        `now` is epoch seconds; `fetch_json(url)` GETs a public JSON document (a host's published keys)
        through the URL guard, cached. A host that does not sign its callbacks keeps this default."""
        return None

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Request:
        headers = {**self.declared.auth.headers(self.api_key), "Accept": "application/json"}
        url = self.base_url.rstrip("/") + path
        if body is None:
            return httpx.Request(method, url, headers=headers, params=params)
        return httpx.Request(method, url, headers=headers, params=params, json=body)


def json_body(resp: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, raising the right ProviderError for error statuses and non-JSON bodies."""
    if resp.status_code == 429:
        raise ProviderRateLimited("rate limited", retry_after=retry_after(resp), raw=resp.text)
    if resp.status_code >= 500:
        raise ProviderUnavailable(f"HTTP {resp.status_code}", status_code=resp.status_code, raw=resp.text)
    data = json_or_none(resp.content)
    if resp.status_code >= 400:
        raise ProviderRejected(
            _error_message(data) or f"HTTP {resp.status_code}",
            status_code=resp.status_code,
            code=_error_code(data),
            raw=resp.text,
        )
    if not isinstance(data, dict):
        raise ProviderError("response is not a JSON object", status_code=resp.status_code, raw=resp.text)
    return data


def state_of(states: Mapping[str, ProviderState], raw: str, answer: str) -> ProviderState:
    """What a provider's status word means. A word not in its table is an error keeping the whole answer,
    never "still processing"."""
    state = states.get(raw)
    if state is None:
        raise UnknownProviderStatus(f"unknown status {raw!r}", code="unknown_status", raw=answer)
    return state


def job_id(value: Any, where: str, resp: httpx.Response) -> str:
    """The provider's job id from a submit answer; a missing one is an error keeping the answer."""
    if not isinstance(value, str) or not value:
        raise ProviderError(f"submit answer has no {where}", status_code=resp.status_code, raw=resp.text)
    return value


def as_object(value: Any) -> dict[str, Any]:
    """A JSON object field, or {} where the provider sent null or something else."""
    return value if isinstance(value, dict) else {}


def as_int(value: Any) -> int | None:
    """A whole number from a field documented as one; tolerates floats and numeric strings."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str | None:
    """A text field; null, "" and non-scalars count as absent."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        return None
    return str(value)


def json_or_none(body: bytes) -> Any:
    """A body's JSON, or None when it is none (empty, or not JSON in any of the ways i2v.jsontext knows)."""
    try:
        return jsontext.loads(body or b"null")
    except jsontext.NotJson:
        return None


def callback_json(body: bytes) -> dict[str, Any]:
    """A callback body as a JSON object, or {} when it is not one (callers treat every field as a hint)."""
    data = json_or_none(body)
    return data if isinstance(data, dict) else {}


def _error_message(data: Any) -> str | None:
    # Hosts nest errors differently: {"error": {"message"}}, {"error": "..."}, {"message": "..."}.
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        found = error.get("message") or error.get("detail") or error.get("title")
        return str(found) if found else None
    if isinstance(error, str):
        return error
    for key in ("message", "msg", "reason"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return None


def _error_code(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        found = error.get("code") or error.get("type")
        return str(found) if found else None
    code = data.get("code")
    return str(code) if code else None


def retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; callers fall back to their own backoff
