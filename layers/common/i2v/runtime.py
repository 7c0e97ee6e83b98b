"""What the use cases work with: settings, the stores, AWS clients and the provider engine.

A handler builds one Runtime per container (its cold start) and passes it to the use case it calls; tests
build their own. Clients are made on first use, so a function pays only for what it touches; the providers
and the guarded fetcher are imported on first use too, for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
import httpx
from botocore.config import Config

from i2v.config import Settings
from i2v.dynamo import Table
from i2v.providers.client import ProviderClient
from i2v.records import Records
from i2v.store import TaskStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from i2v.providers.base import Provider


class DocumentUnavailable(Exception):
    """A public document (Runtime.public_json) that could not be had."""


PUBLIC_JSON_MAX_BYTES = 64 * 1024  # a key set is a few hundred bytes
PUBLIC_JSON_MAX_AGE = 3600.0  # a host rotating its keys publishes the new one ahead; an hour is well inside


@dataclass
class Runtime:
    settings: Settings
    clock: Callable[[], float] = time.time
    client: ProviderClient = field(default_factory=ProviderClient)
    # Public JSON documents (a host's published webhook keys) by URL: (fetched at, document).
    _documents: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_environment(cls) -> Runtime:
        settings = Settings()  # type: ignore[call-arg]  # required fields come from the environment
        client = ProviderClient(
            timeout=settings.http_timeout_seconds, max_in_flight=settings.sweeper_concurrency
        )
        return cls(settings=settings, client=client)

    def now(self) -> int:
        return int(self.clock())

    @cached_property
    def tasks(self) -> TaskStore:
        s = self.settings
        return TaskStore(
            Table(s.table_name), due_shards=s.due_shards, ttl_days=s.task_ttl_days, clock=self.clock
        )

    @cached_property
    def records(self) -> Records:
        return Records(self.tasks.table, ttl_days=self.settings.task_ttl_days, clock=self.clock)

    @cached_property
    def providers(self) -> dict[str, Provider]:
        # On first use: the ingest function never needs them, nor permission to read their keys; nor does
        # the API import them to answer a status query.
        from i2v.providers import registry

        return registry.configured(self.settings)

    @cached_property
    def fetcher(self) -> httpx.Client:
        """The guarded client for every URL a user or a provider gave us (imported on first use: its
        transport imports httpcore, which the API's status queries never need)."""
        from i2v.media import guarded_client

        s = self.settings
        return guarded_client(
            s.allow_private_urls, allowed_ports=s.allowed_ports, private_hosts=s.private_hosts
        )

    def public_json(self, url: str, max_age: float = PUBLIC_JSON_MAX_AGE) -> Any:
        """A public JSON document (a host's published webhook keys), fetched through the URL guard and kept
        `max_age` seconds in this container. DocumentUnavailable when it cannot be had: a URL the guard
        refuses, a failed fetch, a body over PUBLIC_JSON_MAX_BYTES or not JSON."""
        kept = self._documents.get(url)
        if kept is not None and self.clock() - kept[0] < max_age:
            return kept[1]
        from i2v import jsontext
        from i2v.media import UnsafeUrl

        body = b""
        try:
            with self.fetcher.stream("GET", url, timeout=self.settings.http_timeout_seconds) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > PUBLIC_JSON_MAX_BYTES:
                        raise DocumentUnavailable(f"{url} is longer than {PUBLIC_JSON_MAX_BYTES} bytes")
            document = jsontext.loads(body)
        except (httpx.HTTPError, UnsafeUrl, jsontext.NotJson) as exc:
            raise DocumentUnavailable(f"{url}: {exc}") from exc
        self._documents[url] = (self.clock(), document)
        return document

    @cached_property
    def s3(self) -> S3Client:
        return boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    @cached_property
    def sqs(self) -> Any:
        return boto3.client("sqs")

    @cached_property
    def events(self) -> Any:
        return boto3.client("events")
