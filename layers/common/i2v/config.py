"""Settings for every function, read once from the environment (I2V_* variables).

Deployed, secrets come from Secrets Manager through powertools parameters (cached); locally they are plain
environment variables set by the embedded stack.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ProviderOptions(BaseModel):
    """One provider's deployed settings (an entry of I2V_PROVIDER_SETTINGS); "" or absent is its default."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not a default in disguise

    base_url: str = ""  # e.g. DashScope's Beijing region; I2V_<NAME>_BASE_URL overrides it
    # The most jobs our account may have at the host at once, and the most submits a minute (i2v.capacity);
    # None: what the host documents, else a conservative default.
    max_in_flight: int | None = Field(default=None, ge=1, le=10_000)
    max_submits_per_minute: int | None = Field(default=None, ge=1, le=100_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="I2V_", extra="ignore")

    table_name: str = Field(description="DynamoDB table holding tasks, keys and idempotency records")
    bucket_name: str = Field(description="S3 bucket for inputs and outputs")
    ingest_queue_url: str = ""
    event_bus_name: str = ""
    # Base URL of this API as providers see it; callbacks go to <base>/v1/callbacks/...
    public_base_url: str = ""
    public_base_url_param: str = ""  # SSM parameter holding it when deployed (avoids a template cycle)
    callback_secret: str = ""
    callback_secret_arn: str = ""  # Secrets Manager secret holding it when deployed
    webhook_secret: str = ""  # master key the tenants' webhook signing secrets derive from
    webhook_secret_arn: str = ""
    delivery_queue_url: str = ""
    delivery_backoff_seconds: int = 30  # first retry of a failed webhook; doubles per attempt, up to 15 min
    provider_keys_arn: str = ""  # Secrets Manager secret: {"evolink": "<key>", ...} when deployed
    # The local stack serves media and simulators on loopback: true admits loopback addresses (127.0.0.0/8,
    # ::1) on any port, never other private ranges. Deployed (false), every non-public address is refused.
    allow_private_urls: bool = False
    # Names that may resolve to a private address: only the Docker host for `sam local invoke`
    # (events/env.json sets host.docker.internal); empty when deployed.
    private_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Ports a fetched or webhook URL may name when private URLs are not allowed ("80,443,8443").
    allowed_ports: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [80, 443])
    probe_deadline_seconds: float = 5.0  # all of a request's probes (an image read whole), however paced
    # The whole copy of a result into S3; shorter than the ingest function's 300 s timeout.
    ingest_deadline_seconds: float = 240.0
    probe_media: bool = True  # read each input's header and check the model's limits before submitting
    default_providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["local"])
    task_deadline_seconds: int = 3600
    poll_interval_seconds: int = 15
    # Longer than any one submit can take (retries and Retry-After included): until then the sweeper leaves
    # an accepted task to the function submitting it; after it, the task is treated as interrupted.
    submit_grace_seconds: int = 120
    submit_budget_seconds: float = 12.0  # no failover to a further provider once a submit has taken this long
    presign_seconds: int = 900
    due_shards: int = 4
    task_ttl_days: int = 30
    http_timeout_seconds: float = 10.0
    # Provider requests out at once from one container (a sweep runs more turns than this at once so that
    # their DynamoDB writes overlap the queries: i2v.sweep.TURNS_PER_SLOT).
    sweeper_concurrency: int = 8
    # USD per second of video, per provider and resolution ("720p", "1080p", and "720p+audio" where a host
    # prices driving audio apart), as JSON: {"aimlapi": {"720p": 0.10, "1080p": 0.15}}. The hosts publish no
    # numbers, so it starts empty and a cost the provider does not report stays null until the operator fills
    # it in; never a made-up price.
    prices: Annotated[dict[str, dict[str, float]], NoDecode] = Field(default_factory=dict)
    # Per-provider settings as JSON, {"dashscope": {"base_url": "https://dashscope.aliyuncs.com"}}: the
    # template's ProviderSettings parameter, and the same shape the local stack writes.
    provider_settings: Annotated[dict[str, ProviderOptions], NoDecode] = Field(default_factory=dict)
    # How a request that names no provider is routed by default: `ordered` (default_providers' order),
    # `cheapest` (by price for the request, unpriced last) or `fastest` (by the median job time of recent
    # jobs, i2v.capacity; none yet last); a request's own `routing` overrides it.
    routing: Literal["ordered", "cheapest", "fastest"] = "ordered"
    # Under a tenant's budget, may a provider with no price be used? (Its cost cannot be reserved.)
    allow_unpriced_under_budget: bool = False
    # The poll queue (PollFunction's): timed turns and the sweep's overflow. Unset: the sweep does every turn.
    poll_queue_url: str | None = None
    # Turns one sweep takes itself (8 at a time, ~1 s each: well inside its period); the rest go to the queue.
    sweep_inline_limit: int = 100

    # -- time bounds (template.yaml's function timeouts are set from these; tests/unit/test_time_bounds.py) --
    # A create call (probing the media, then submitting) answers within this, below API Gateway's 29 s.
    create_deadline_seconds: float = 25.0
    # A callback's status query, all tries included: providers wait only seconds for the callback's answer
    # (Novita 5 s, EvoLink 10 s), and a query that does not answer in time leaves the task to the sweeper.
    callback_status_budget_seconds: float = 3.0

    @field_validator("default_providers", "allowed_ports", "private_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # "evolink,novita" in the environment (a CloudFormation parameter); a list in code.
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @field_validator("prices", "provider_settings", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        # JSON in the environment (a CloudFormation parameter), where empty means none; a dict in code.
        if isinstance(value, str):
            return json.loads(value) if value.strip() else {}
        return value

    def secret(self, name: str) -> str:
        """A secret by settings name: the plain value if set, else the Secrets Manager value at <name>_arn."""
        value: str = getattr(self, name)
        if value:
            return value
        arn: str = getattr(self, f"{name}_arn", "")
        if not arn:
            raise RuntimeError(f"I2V_{name.upper()} or I2V_{name.upper()}_ARN must be set")
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(arn, max_age=300))

    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        if self.public_base_url_param:
            from aws_lambda_powertools.utilities import parameters

            return str(parameters.get_parameter(self.public_base_url_param, max_age=300)).rstrip("/")
        raise RuntimeError("I2V_PUBLIC_BASE_URL or I2V_PUBLIC_BASE_URL_PARAM must be set")

    def provider_setting(self, provider: str, what: str) -> str:
        """I2V_<PROVIDER>_<WHAT>, read from the environment so adding a provider needs no field here."""
        return os.environ.get(f"I2V_{provider.upper()}_{what.upper()}", "")
