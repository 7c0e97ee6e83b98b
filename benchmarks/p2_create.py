"""P2 warm create: `POST /v1/videos` run by the API handler in-process, against a moto server and the `local`
simulator, vs the sum of the AWS and HTTP calls it makes, each replayed alone (the floor).

The local stack runs with the schedule off and the simulator's `stall` fault on (jobs are accepted and never
rendered), so nothing but the creates runs while they are timed. The image is uploaded once through
`POST /v1/uploads` and named by its `s3://` URL, as the CLI does. After one create warms the container, each
of N creates is an API Gateway proxy event handed to the function (`stack.invoke`), timed around the handler.
The calls one create makes are recorded (`benchmarks.calls`) and replayed after each timed create with raw
clients on warm connections (boto3 with the same JSON bodies, httpx with the same requests; the task id
swapped for a fresh one of the same length, so item sizes and conditions are the same): the median of the
replayed sequence's sum is the floor. Creates and replays alternate, so both meet the same machine load.
"""

from __future__ import annotations

import json
import statistics
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from benchmarks.calls import Call, counting, install, watch
from benchmarks.report import line, note, progress, section

ROOT = Path(__file__).resolve().parents[1]
CREATES = 50
FUNCTION = "ApiFunction"


def say(text: str) -> None:
    """A note, wrapped to the report's width."""
    for piece in textwrap.wrap(text, 106, subsequent_indent="  "):
        note(piece)


def per_call(fn: Callable[[], object], seconds: float = 0.5) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def create_event(stack: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway proxy event the stack's HTTP runner would build for this request."""
    from werkzeug.test import EnvironBuilder

    from i2v_local.stack import api_event

    request = EnvironBuilder(
        method="POST",
        path="/v1/videos",
        base_url=stack.url,
        headers=[("Authorization", f"Bearer {stack.api_key}")],
        json=body,
    ).get_request()
    return api_event(request, "/v1/videos", {})


def run() -> None:
    import httpx

    from i2v_local.aws import moto_server
    from i2v_local.stack import LocalStack

    section("P2 warm create (POST /v1/videos: API handler in-process, moto server, local simulator)")
    install()
    # moto keeps its state per process: on its own server, the stack starts from a reset one (as tests do).
    with moto_server() as aws, LocalStack(aws_endpoint=aws, render_scale=0.3, sweep_every=3600) as stack:
        stack.simulators["local"].faults.stall = True  # accepted, never rendered: nothing runs beside us
        watch(stack)
        with httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
        ) as api:
            ticket = api.post("/v1/uploads", json={"filename": "sample.png", "content_type": "image/png"})
            ticket.raise_for_status()
            image = (ROOT / "assets" / "sample.png").read_bytes()
            httpx.put(
                ticket.json()["put_url"], content=image, headers={"Content-Type": "image/png"}
            ).raise_for_status()
        body = {
            "image_url": ticket.json()["url"],
            "prompt": "a slow zoom on a quiet harbour at dawn",
            "duration": 5,
            "resolution": "720p",
        }
        event = create_event(stack, body)
        stack.invoke(FUNCTION, json.loads(json.dumps(event)))  # warm: the container, its clients, connections

        # The calls of one create are the sequence replayed; then creates and replays alternate, so both
        # meet the same load on this shared machine.
        with counting() as tally:
            reference = stack.invoke(FUNCTION, json.loads(json.dumps(event)))
        if reference["statusCode"] != 202:
            raise RuntimeError(
                f"the reference create answered {reference['statusCode']}: {reference['body']}"
            )
        task_id = json.loads(reference["body"])["id"]
        calls = [c for c in tally.snapshot()[0] if c.function == FUNCTION]
        times: list[float] = []
        runs: list[list[Call]] = []
        replayed: list[list[float]] = []
        failures = 0
        with Replayer(task_id, calls) as replayer:
            replayer.once()  # warms the raw clients' connections
            for done in range(1, CREATES + 1):
                fresh = json.loads(json.dumps(event))
                with counting() as tally:
                    start = time.perf_counter()
                    result = stack.invoke(FUNCTION, fresh)
                    took = time.perf_counter() - start
                if result["statusCode"] != 202:
                    failures += 1
                    continue
                times.append(took)
                runs.append([c for c in tally.snapshot()[0] if c.function == FUNCTION])
                replayed.append(replayer.once())
                progress(done, CREATES, "creates and replays")
        shape = tuple(c.name for c in calls)
        seen = sum(1 for made in runs if tuple(c.name for c in made) == shape)

    median = statistics.median(times)
    floor = statistics.median(sum(r) for r in replayed)
    line(f"floor: its {len(calls)} AWS/HTTP calls, each replayed alone", floor * 1000, "ms")
    p90 = quantile(times, 0.9) * 1000
    # Each create against the replay right after it: the pairs share the machine's load of the moment.
    paired = statistics.median(t / sum(r) for t, r in zip(times, replayed, strict=True))
    line(f"create, median of {len(times)} (p90 {p90:.1f} ms)", median * 1000, "ms", ratio=paired)
    note("(ratio: median over the creates of each one / the replay that followed it)")
    if failures:
        note(f"{failures} of {CREATES} creates did not answer 202 (left out)")
    say(
        f"calls per create ({seen} of {len(runs)} creates made exactly these, in this order; bytes"
        f" sent/received), each replayed alone (median of {len(replayed)}):"
    )
    alone = [statistics.median(r[index] for r in replayed) for index in range(len(calls))]
    for index, call in enumerate(calls):
        size = f"{call.request_bytes}/{call.response_bytes} B"
        line(f"  {index + 1}. {_label(call)} ({size})", alone[index] * 1000, "ms")
    others = Counter(name for made in runs for name in {c.name for c in made} - set(shape))
    if others:
        note("calls some creates made besides: " + ", ".join(f"{n} ({k}x)" for n, k in others.items()))
    in_calls = statistics.median(sum(c.seconds for c in made) for made in runs)
    note(f"time inside the calls as the create made them (hook timing), median {in_calls * 1000:.1f} ms;")
    note("the rest is the handler's own work (routing, pydantic, presigning twice, HMAC, logging)")
    found = avoidable(calls)
    if found:
        spared = sum(alone[index] for index, _ in found)
        note(f"avoidable, for the lead (observations; no production code changed), {spared * 1000:.1f} ms:")
        for index, text in found:
            say(f"- call {index + 1} ({alone[index] * 1000:.1f} ms alone): {text}")

    hot_path()


def _label(call: Call) -> str:
    if call.service == "dynamodb":
        return f"{call.operation} {call.key_kind}".rstrip()
    if call.kind == "aws":
        return call.name
    if "/v1/tasks" in call.url:
        return "POST provider submit"
    if "x-amz-" in call.url.lower():
        return f"{call.operation} S3 presigned URL (probe)"
    return f"HTTP {call.operation} {call.service}"


def avoidable(calls: list[Call]) -> list[tuple[int, str]]:
    """Calls in this create that a reader of the code could drop: (index, why). Observations only."""
    found: list[tuple[int, str]] = []
    kinds = [c.label for c in calls]
    if "dynamodb.UpdateItem HEALTH#" in kinds:
        found.append(
            (
                kinds.index("dynamodb.UpdateItem HEALTH#"),
                "records.record_provider_outcome writes HEALTH#<provider> after every successful submit: "
                "one item shared by every tenant's creates (a hot key near 1,000 writes/s); writing it only "
                "when the health it read in route() shows failures to reset would drop it (routing reads "
                "only the failure fields; last_success_at in GET /v1/providers would then lag)",
            )
        )
    if "dynamodb.BatchGetItem" in kinds:
        found.append(
            (
                kinds.index("dynamodb.BatchGetItem"),
                "route() reads provider health to sort eligible providers; with one eligible provider "
                "there is nothing to sort",
            )
        )
    if "dynamodb.PutItem TASK#" in kinds and "dynamodb.UpdateItem TASK#" in kinds:
        put = kinds.index("dynamodb.PutItem TASK#")
        if put + 1 < len(kinds) and kinds[put + 1] == "dynamodb.UpdateItem TASK#":
            found.append(
                (
                    put + 1,
                    "submit() records attempt 'sent' right after create() put the task holding its submit "
                    "lease: the first attempt could be written in the PutItem (still before the send); each "
                    "task write also rewrites the item's by_tenant GSI copy (projection ALL)",
                )
            )
    return found


class Replayer:
    """A create's calls replayed alone with raw clients: boto3 with the same JSON bodies, httpx with the same
    requests, the task id swapped for a fresh one of the same length each time (same sizes and conditions)."""

    def __init__(self, task_id: str, calls: list[Call]) -> None:
        import boto3
        import httpx

        make: Any = boto3.client  # service names come from the recorded calls
        self.task_id, self.calls = task_id, calls
        self.clients = {c.service: make(c.service) for c in calls if c.kind == "aws"}
        self.http = httpx.Client(timeout=30)

    def __enter__(self) -> Replayer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def once(self) -> list[float]:
        """Seconds each call took, in order."""
        from botocore import xform_name
        from botocore.exceptions import ClientError

        from i2v.store import new_task_id

        fresh = new_task_id()
        seconds: list[float] = []
        for call in self.calls:
            sent = call.sent.replace(self.task_id.encode(), fresh.encode())
            if call.kind == "aws":
                method = getattr(self.clients[call.service], xform_name(call.operation))
                params = json.loads(sent) if sent else {}
                start = time.perf_counter()
                with suppress(ClientError):  # a failed condition is still one round trip
                    method(**params)
            else:
                skip = {"host", "content-length", "connection"}
                headers = {k: v for k, v in call.headers.items() if k.lower() not in skip}
                url = call.url.replace(self.task_id, fresh)
                start = time.perf_counter()
                self.http.request(call.operation, url, headers=headers, content=sent).read()
            seconds.append(time.perf_counter() - start)
        return seconds


def hot_path() -> None:
    """The pure-CPU share of a create: validating the body and deriving its mode, vs parsing it."""
    from i2v.models import VideoRequest

    section("P2 hot path (request validation, per call)")
    body = json.dumps(
        {"image_url": "https://m.example/a.png", "prompt": "a" * 400, "duration": 5, "resolution": "720P"}
    )
    floor = per_call(lambda: json.loads(body))
    check = per_call(lambda: VideoRequest.model_validate_json(body).resolved_mode())
    line("floor: json.loads(body)", floor * 1e6, "us")
    line("VideoRequest.model_validate_json + resolved_mode", check * 1e6, "us", ratio=check / floor)
