"""Create: validate a request against the model's limits, route it, store it, then submit it.

A request the model or every capable provider would refuse is a 422 here, before any provider is paid.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

from i2v import budgets, layout, submit
from i2v.capacity import p50
from i2v.lifecycle import Work
from i2v.media import (
    UnsafeUrl,
    fetch_deadline,
    is_loopback,
    named_private,
    resolve_public,
)
from i2v.models import MEDIA_FIELDS, FieldError, Mode, RequestProblem, Status, Task, VideoRequest
from i2v.polls import follow
from i2v.presign import presign_get
from i2v.pricing import price_per_second
from i2v.probe import MediaInfo, ProbeError, Unfetchable, limit_violations, probe
from i2v.providers import registry
from i2v.runtime import Runtime
from i2v.store import BudgetExceeded, Idempotency, new_task_id


def request_hash(req: VideoRequest) -> str:
    return hashlib.sha256(req.model_dump_json(exclude_defaults=False).encode()).hexdigest()


def create(
    rt: Runtime,
    tenant: str,
    req: VideoRequest,
    idempotency_key: str | None = None,
    source: tuple[str, str] | None = None,
) -> tuple[Task, bool]:
    """Validate, route, store, then submit. Returns (task, created); a replayed key returns the first task.

    `idempotency_key` is the client's; `source` is the drop-folder image a task is made from (its key and
    the version its notification names: with the request, the gateway's own idempotency key), None for
    the API. The whole call answers
    within `create_deadline_seconds`: the submit gets what the probing left (see `submit.submit`).
    """
    deadline = rt.client.deadline_in(rt.settings.create_deadline_seconds)
    mode = req.resolved_mode()
    source_key = source[0] if source else None
    idem = None
    if source:
        # The request is part of the gateway's own key: the same bytes put again with other options (the
        # same ETag, where S3 gives no sequencer) are another upload, not a conflict.
        digest = request_hash(req)
        idem = Idempotency.gateway(tenant, f"{source[0]}:{source[1]}:{digest}", digest)
    elif idempotency_key:
        idem = Idempotency.client(tenant, idempotency_key, request_hash(req))
    if idem:
        # A replay is answered before the media are fetched again (their URLs may have expired since).
        replayed = rt.tasks.idempotent_task(idem)
        if replayed is not None:
            return replayed, False
    for name in MEDIA_FIELDS:
        url = getattr(req, name)
        if url and url.startswith("s3://"):
            _own_object(rt, tenant, name, url)
    if req.webhook_url:
        _check_webhook_url(rt, req.webhook_url)
    with fetch_deadline(deadline - rt.client.clock()):  # each probe has its own bound too; never past ours
        media = probe_media(rt, req)
    chosen = route(rt, req, mode, alpha=any(info.has_alpha for info in media.values()))
    now = rt.now()
    chosen, held = budgets.hold(rt, tenant, chosen, req, now)  # the worst case, under a budget
    task = Task(
        id=new_task_id(rt.clock()),
        tenant=tenant,
        status=Status.ACCEPTED,
        request=req,
        mode=mode,
        source="s3" if source_key else "api",
        source_key=source_key,
        providers=chosen,
        created_at=now,
        updated_at=now,
        deadline_at=now + rt.settings.task_deadline_seconds,
        # The sweeper's safety net from the start, but not before this submit could have finished.
        next_poll_at=now + rt.settings.submit_grace_seconds,
        reserved_usd=held.amount if held else None,
        budget_period=held.period if held else None,
    )
    # Stored with its submit lease held: no sweep can submit it while this call does.
    claim = rt.tasks.new_claim(task.id, Work.SUBMIT, rt.settings.submit_grace_seconds)
    try:  # one transaction: the task, its idempotency key, its reservation (settles concurrent creates)
        stored, created = rt.tasks.create(task, idem, holding=claim, reserve=held.update() if held else None)
    except BudgetExceeded:
        assert held is not None  # only a reservation can be refused
        raise budgets.refusal(rt, held) from None
    if created:
        stored = submit.submit(rt, stored, claim, deadline)
        if not stored.status.terminal:
            follow(rt, [stored])  # its first poll, on time
    return stored, created


def _own_object(rt: Runtime, tenant: str, field_name: str, url: str) -> None:
    try:
        key = layout.parse_s3_url(url, rt.settings.bucket_name)
    except RequestProblem as problem:
        raise RequestProblem.invalid(field_name, problem.errors[0].message) from None
    if not layout.owned_by(tenant, key):
        raise RequestProblem.invalid(field_name, "s3 URL must name one of your own uploads")


def probe_media(rt: Runtime, req: VideoRequest) -> dict[str, MediaInfo]:
    """Read each input's header through the URL guard and hold it to the model's limits."""
    if not rt.settings.probe_media:
        return {}
    found: dict[str, MediaInfo] = {}
    errors: list[FieldError] = []
    ends = time.monotonic() + rt.settings.probe_deadline_seconds  # for all the media together
    for name, kind in MEDIA_FIELDS.items():
        url = getattr(req, name)
        if not url:
            continue
        try:
            info = probe(rt.fetcher, _fetchable(rt, url), kind, deadline=ends - time.monotonic())
        except Unfetchable as exc:
            if url.startswith("s3://"):
                # The gateway's own bucket did not answer in time (throttled, or this call ran short): the
                # request is fine and may be sent again; the drop folder's message is retried by SQS.
                detail = f"{name}: the gateway could not read it from its storage in time; send it again"
                raise RequestProblem(503, "Storage did not answer in time", detail=detail) from exc
            errors.append(FieldError(field=name, message=f"cannot be used: {exc}"))
            continue
        except (UnsafeUrl, ProbeError) as exc:
            errors.append(FieldError(field=name, message=f"cannot be used: {exc}"))
            continue
        found[name] = info
        errors += [FieldError(field=name, message=message) for message in limit_violations(info)]
    clip = found.get("video_url")
    if clip and clip.duration and req.duration + 0.1 < clip.duration:
        message = f"is the total length in video_continuation: at least the clip's {clip.duration:.1f} s"
        errors.append(FieldError(field="duration", message=message))
    if errors:
        raise RequestProblem(422, "Media outside the model's limits", errors)
    return found


def _check_webhook_url(rt: Runtime, url: str) -> None:
    """Refuse now what delivery would refuse later: plain http (the local stack allows it to this machine
    only), private hosts (the local stack allows loopback only)."""
    s = rt.settings
    if not url.startswith("https://") and not s.allow_private_urls:
        raise RequestProblem.invalid("webhook_url", "must be an https URL")
    try:
        host, address = resolve_public(url, s.allow_private_urls, s.allowed_ports, s.private_hosts)
    except UnsafeUrl as exc:
        raise RequestProblem.invalid("webhook_url", f"cannot be used: {exc}") from None
    this_machine = named_private(host, s.private_hosts) or is_loopback(ipaddress.ip_address(address))
    if not url.startswith("https://") and not this_machine:
        message = "must be an https URL, or on the local stack http to 127.0.0.1 or localhost"
        raise RequestProblem.invalid("webhook_url", message)


def _fetchable(rt: Runtime, url: str) -> str:
    if not url.startswith("s3://"):
        return url
    bucket = rt.settings.bucket_name
    return presign_get(rt.s3, bucket, layout.parse_s3_url(url, bucket), 300)[0]


def route(rt: Runtime, req: VideoRequest, mode: Mode, alpha: bool = False) -> list[str]:
    """Eligible providers in order. A provider the client named that cannot serve the request is a 422."""
    asked = list(dict.fromkeys(req.providers()))  # a provider named twice is tried once
    if asked:
        for name in asked:
            if name not in registry.PROVIDERS:
                raise RequestProblem.invalid("provider", f"unknown provider {name!r}; see GET /v1/providers")
            if name not in rt.providers:
                raise RequestProblem.invalid("provider", f"{name} is not configured on this gateway")
            refusal = rt.providers[name].capabilities.refusal(req, mode, alpha)
            if refusal:
                raise RequestProblem.invalid("provider", f"{name} {refusal}")
        return asked
    order = [n for n in rt.settings.default_providers if n in rt.providers]
    eligible = [n for n in order if rt.providers[n].capabilities.refusal(req, mode, alpha) is None]
    # A host failing right now goes last rather than first; it stays as a last resort. With cheapest routing,
    # the healthy ones go by price for this request (unpriced after priced); sorts are stable, so ties keep
    # the configured order.
    health = rt.records.provider_health(eligible)
    routing = req.routing or rt.settings.routing
    if routing == "cheapest":
        audio = req.audio_url is not None
        prices = {n: price_per_second(rt.settings, n, req.resolution, audio) for n in eligible}
        eligible.sort(key=lambda n: (prices[n] is None, prices[n] or 0.0))
    elif routing == "fastest":  # by the median time of their recent jobs (kept as jobs end, no Scan)
        times = {n: p50(health[n]) for n in eligible}
        eligible.sort(key=lambda n: (times[n] is None, times[n] or 0.0))
    eligible.sort(key=lambda n: health[n].degraded(rt.now()))
    if not eligible:
        raise RequestProblem(
            422,
            "No provider can serve this request",
            detail=f"configured providers: {', '.join(order) or 'none'}",
        )
    return eligible
