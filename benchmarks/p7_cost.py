"""P7 cost of the gateway: AWS calls per finished task, priced per 1,000 videos, next to the provider's spend.

K tasks run end to end on the local stack the way the CLI drives one: `POST /v1/uploads`, the image PUT to
its presigned URL, `POST /v1/videos` (with a webhook), the `local` simulator renders and calls back, the
ingest copies the MP4 into S3, the task's event goes to EventBridge and its webhook is delivered; then the
client reads the task once and downloads the video. Two tasks run first, uncounted, so every function's
container is warm. Every AWS call (botocore), HTTP exchange (httpx) and Lambda invocation made meanwhile is
counted (`benchmarks.calls`) and divided by K.

How each figure is reached:
- Lambda: invocations and in-process durations per function (rounded up to 1 ms each), times MemorySize from
  template.yaml: GB-s. In-process durations share two cores with moto, the simulators and the renderer, so
  they are high against Lambda's; an ingest of a real (MB-sized) video takes longer than of the local one.
- API Gateway: one REST request per invocation of a function with Api events (the API and callback ones).
- DynamoDB: moto reports fixed consumed capacity, so units are estimated from the items on the wire
  (DynamoDB's item-size rules): writes 1 WRU per KB of the item written (for updates, the item after it,
  returned by ReturnValues=ALL_NEW), transactions twice that, a failed conditional write 1 WRU; reads 1 RRU
  per 4 KB (strongly consistent; half for eventually consistent, every GSI query), at least one unit per
  read. GSI writes are added: by_tenant projects ALL (every task write rewrites its copy), by_due KEYS_ONLY
  (1 WRU when its keys are set, 2 when they change: delete + put, 1 when removed).
- SQS: the gateway's own sends and visibility changes, plus what Lambda's event source does per message
  (counted from the local pumps: non-empty receives, deletes); idle long polls are a fixed monthly cost.
- S3: SDK calls (PUT class: PutObject, multipart create/part/complete; GET class: GetObject, HeadObject;
  DELETE free) and presigned requests over HTTP (the client's PUT and download, the probe's and the
  provider's GETs of the input). Storage for 30 days and data transfer out to the internet (the client's
  download, the provider's fetch of the input, API answers) are priced at an assumed output size (below),
  since the local renderer's files are tiny.
- The polling machinery (the scheduled sweeper, and the poll worker with its queue where template.yaml has
  them) is reported apart: locally the sweep runs every 2 s and tasks are polled every 2 s; deployed, the
  sweep runs once a minute and the poll worker polls each in-flight task every 15 s (the settings' default;
  once a minute without a poll worker). So it is priced as measured here, and scaled to deployment as (a) a
  fixed cost per month of sweeps that find nothing (one invocation and a Query per due shard, every minute)
  and (b) per task, one turn per poll interval while the job runs at the provider (ASSUMED generation time,
  below), each turn priced at what a turn cost here (all the machinery's calls, its queue's requests
  included, less the empty sweeps, over the turns: claims of a task's poll lease).
- CloudWatch Logs: the application's log lines at INFO (the deployed default; the local stack logs WARNING)
  are counted by a handler on powertools' service logger, plus the runtime's START/END/REPORT lines per
  invocation and one API Gateway access-log line (the template's format) per request (both estimated).

Prices are public us-east-1 list prices (on-demand, first volume tier, no free tier), as constants with the
pages they come from. They were checked on 2026-11-25 against stored copies of those pages (the newest seen
date from 2025 and 2026; DynamoDB's on-demand units as halved on 2024-11-01); confirm before quoting them.

The provider's price: none of the hosts' docs
documents a Wan 2.7 i2v price. The only figure we found is a third-party UI card in public client code
quoting "$0.087-$0.145/output sec" for EvoLink (weak evidence). So the provider price is an ASSUMPTION, its
low end by default (I2V_BENCH_PROVIDER_USD_PER_SECOND overrides it), and the price at which the gateway
costs exactly 1% of the provider's spend (the break-even) is printed beside it.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import statistics
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.calls import Call, Invocation, counting, install, watch
from benchmarks.report import Goal, line, note, progress, section
from i2v_local.aws import STACK

ROOT = Path(__file__).resolve().parents[1]
TASKS = 20  # K, counted
WARM_TASKS = 2  # run first, not counted: every function's container is loaded
VIDEO_SECONDS = 5  # what each task asks for (the request's default duration)
DEADLINE_SECONDS = 90.0  # for all K tasks to finish, webhooks delivered


def say(text: str) -> None:
    """A note, wrapped to the report's width."""
    for piece in textwrap.wrap(text, 106, subsequent_indent="  "):
        note(piece)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value else default


# -- prices: us-east-1 list prices in USD (see the module docstring) ---------------------------------------
LAMBDA_REQUEST = 0.20 / 1e6  # https://aws.amazon.com/lambda/pricing/
LAMBDA_GB_SECOND = 0.0000166667  # same page: x86, first 6 billion GB-s a month
API_REST_REQUEST = 3.50 / 1e6  # https://aws.amazon.com/api-gateway/pricing/ (REST APIs, first 333 million)
DDB_WRITE_UNIT = 0.625 / 1e6  # https://aws.amazon.com/dynamodb/pricing/on-demand/ (write request unit)
DDB_READ_UNIT = 0.125 / 1e6  # same page (read request unit)
DDB_STORAGE_GB_MONTH = 0.25  # same page (Standard table class, after the first 25 GB)
SQS_REQUEST = 0.40 / 1e6  # https://aws.amazon.com/sqs/pricing/ (standard queue; each 64 KB chunk a request)
EVENTS_EVENT = 1.00 / 1e6  # https://aws.amazon.com/eventbridge/pricing/ (custom events; per 64 KB chunk)
S3_PUT_REQUEST = 0.005 / 1000  # https://aws.amazon.com/s3/pricing/ (Standard: PUT, COPY, POST, LIST)
S3_GET_REQUEST = 0.0004 / 1000  # same page (Standard: GET, SELECT and all other requests; DELETE free)
S3_STORAGE_GB_MONTH = 0.023  # same page (Standard, first 50 TB a month)
TRANSFER_OUT_GB = 0.09  # https://aws.amazon.com/ec2/pricing/on-demand/ (data transfer out to the internet)
SECRETS_CALL = 0.05 / 10_000  # https://aws.amazon.com/secrets-manager/pricing/ (API calls)
SECRET_MONTH = 0.40  # same page (per secret per month)
LOGS_INGEST_GB = 0.50  # https://aws.amazon.com/cloudwatch/pricing/ (Logs, Standard, collect)
XRAY_TRACE = 5.00 / 1e6  # https://aws.amazon.com/xray/pricing/ (traces recorded)
# SSM Parameter Store standard parameters at standard throughput: no charge
# (https://aws.amazon.com/systems-manager/pricing/).

# -- assumptions (each overridable by its environment variable) ------------------------------------------
# ASSUMPTION, see the docstring: the low end of a third-party quote for EvoLink's Wan 2.7, not a list price.
PROVIDER_USD_PER_SECOND = _env_float("I2V_BENCH_PROVIDER_USD_PER_SECOND", 0.087)
# ASSUMPTION: a provider's 5 s 720p MP4 at about 8 Mbit/s. The local renderer's files are a few tens of KB.
OUTPUT_MB = _env_float("I2V_BENCH_OUTPUT_MB", 5.0)
# ASSUMPTION: how long a job runs at the provider; we take EvoLink's documented example
# `estimated_time: 120` (https://docs.evolink.ai/en/api-manual/video-series/wan2.7/wan2.7-image-to-video).
GENERATION_SECONDS = _env_float("I2V_BENCH_GENERATION_SECONDS", 120.0)
SWEEPS_PER_MONTH = 30 * 24 * 60  # template.yaml: the sweeper's Schedule is rate(1 minute)
POLL_INTERVAL_SECONDS = 15  # i2v.config.Settings.poll_interval_seconds, deployed (no provider ETA)
LOCAL_POLL_SECONDS = 2  # the local stack's poll interval in this run
LOCAL_SWEEP_SECONDS = 2.0  # and its sweeper's period
PLATFORM_LOG_BYTES = 450  # ESTIMATE: START, END and REPORT lines per invocation (REPORT with an X-Ray id)
MB = 1024 * 1024
GB = 1024**3


# -- DynamoDB units from the items on the wire --------------------------------------------------------


def value_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value in wire form ({"S": ...}, {"M": {...}}, ...)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in inner)
    if kind == "NS":
        return sum(len(str(n)) // 2 + 2 for n in inner)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@dataclass(frozen=True)
class Index:
    name: str
    keys: tuple[str, ...]
    projects_all: bool


def table_indexes() -> list[Index]:
    """The task table's GSIs as template.yaml defines them."""
    from i2v_local.aws import load_template

    table = load_template()["Resources"]["Table"]["Properties"]
    return [
        Index(
            gsi["IndexName"],
            tuple(k["AttributeName"] for k in gsi["KeySchema"]),
            gsi["Projection"]["ProjectionType"] == "ALL",
        )
        for gsi in table.get("GlobalSecondaryIndexes", [])
    ]


def updated_names(request: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Top-level attribute names an UpdateItem sets (SET, ADD) and removes (REMOVE, DELETE)."""
    names = request.get("ExpressionAttributeNames", {})
    expression = " " + str(request.get("UpdateExpression", "")) + " "
    sets: set[str] = set()
    removes: set[str] = set()
    clauses: list[tuple[str, str]] = []
    keyword, start = "", 0
    upper = expression.upper()
    marks = sorted(
        (upper.find(f" {k} "), k) for k in ("SET", "REMOVE", "ADD", "DELETE") if upper.find(f" {k} ") >= 0
    )
    for position, word in marks:
        if keyword:
            clauses.append((keyword, expression[start:position]))
        keyword, start = word, position + len(word) + 2
    if keyword:
        clauses.append((keyword, expression[start:]))
    for word, body in clauses:
        for part in body.split(","):
            token = part.strip().split("=")[0].split()[0] if part.strip() else ""
            token = token.split(".")[0].split("[")[0]
            name = names.get(token, token)
            if name:
                (sets if word in ("SET", "ADD") else removes).add(name)
    return sets, removes


def write_units(
    item: dict[str, Any] | None,
    indexes: list[Index],
    sets: set[str] | None = None,
    removes: set[str] | None = None,
    transactional: bool = False,
) -> Units:
    """Units of one successful write leaving `item` (a put when `sets` is None, else an update)."""
    size = item_size(item) if item else 0
    whole = max(1, math.ceil(size / 1024))
    units = Units(write=float(whole * (2 if transactional else 1)))
    for index in indexes:
        entry = whole if index.projects_all else 1  # a KEYS_ONLY entry is far below 1 KB
        present = item is not None and all(k in item for k in index.keys)
        if sets is None:  # a put: the entry is written if its keys are there
            wrote = entry if present else 0
        elif present and set(index.keys) & sets:
            wrote = 1 + entry  # its keys changed: the old entry deleted, the new one put
        elif present and index.projects_all:
            wrote = entry  # any change rewrites an ALL copy
        elif not present and removes and set(index.keys) & removes:
            wrote = 1  # its keys removed: the entry deleted
        else:
            wrote = 0
        units.gsi_write += wrote
        units.by_index[index.name] += wrote
    return units


@dataclass
class Units:
    read: float = 0.0
    write: float = 0.0
    gsi_write: float = 0.0
    by_index: Counter[str] = field(default_factory=Counter)  # GSI write units per index

    def add(self, other: Units) -> None:
        self.read += other.read
        self.write += other.write
        self.gsi_write += other.gsi_write
        self.by_index.update(other.by_index)

    @property
    def cost(self) -> float:
        return self.read * DDB_READ_UNIT + (self.write + self.gsi_write) * DDB_WRITE_UNIT


def dynamodb_units(call: Call, indexes: list[Index]) -> Units:
    """Estimated request units of one DynamoDB call (see the module docstring for the rules)."""
    try:
        request = json.loads(call.sent) if call.sent else {}
        answer = json.loads(call.answer) if call.answer else {}
    except ValueError:
        return Units(read=1.0)
    op, ok = call.operation, call.status is not None and call.status < 300
    consistent = 1.0 if request.get("ConsistentRead") else 0.5
    if op == "GetItem":
        size = item_size(answer.get("Item", {})) if ok else 0
        return Units(read=max(1, math.ceil(size / 4096)) * consistent)
    if op in ("Query", "Scan"):
        size = sum(item_size(i) for i in answer.get("Items", [])) if ok else 0
        strong = consistent if "IndexName" not in request else 0.5
        return Units(read=max(1, math.ceil(size / 4096)) * strong)
    if op == "BatchGetItem":
        units = 0.0
        for table, asked in request.get("RequestItems", {}).items():
            found = answer.get("Responses", {}).get(table, [])
            factor = 1.0 if asked.get("ConsistentRead") else 0.5
            units += sum(max(1, math.ceil(item_size(i) / 4096)) * factor for i in found)
            units += max(0, len(asked.get("Keys", [])) - len(found)) * factor
        return Units(read=units)
    if op == "TransactGetItems":
        return Units(read=2.0 * len(request.get("TransactItems", [])))
    if not ok:
        return Units(write=1.0)  # a failed conditional write still consumes a unit
    if op == "PutItem":
        return write_units(request.get("Item", {}), indexes)
    if op == "UpdateItem":
        sets, removes = updated_names(request)
        after = answer.get("Attributes")
        return write_units(after, indexes, sets, removes) if after else Units(write=1.0)
    if op == "DeleteItem":
        return Units(write=1.0)
    if op == "TransactWriteItems":
        transaction = Units()
        for entry in request.get("TransactItems", []):
            if "Put" in entry:
                transaction.add(write_units(entry["Put"].get("Item", {}), indexes, transactional=True))
            else:
                transaction.add(Units(write=2.0))
        return transaction
    if op == "BatchWriteItem":
        batch = Units()
        for requests in request.get("RequestItems", {}).values():
            for r in requests:
                put = r.get("PutRequest")
                batch.add(write_units(put["Item"], indexes) if put else Units(write=1.0))
        return batch
    return Units()


# -- the run ------------------------------------------------------------------------------------------


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback HTTP server answering 204 to every POST: (its URL, the bodies received)."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    received: list[bytes] = []

    @Request.application
    def app(request: Request) -> Response:
        received.append(request.get_data())
        return Response(status=204)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()


@contextmanager
def log_bytes(service: str) -> Iterator[list[int]]:
    """Bytes the functions' powertools logger would write at INFO while the block runs ([total]); what it
    prints to the terminal stays at its own level."""
    logger = logging.getLogger(service)
    total = [0]
    if not logger.handlers:
        yield total
        return
    formatter = logger.handlers[0].formatter

    class Counted(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            total[0] += len(self.format(record).encode()) + 1

    counter = Counted(logging.INFO)
    counter.setFormatter(formatter)
    saved = logger.level
    handlers = [(h, h.level) for h in logger.handlers]
    for handler, level in handlers:
        handler.setLevel(max(level, saved))
    logger.setLevel(logging.INFO)
    logger.addHandler(counter)
    try:
        yield total
    finally:
        logger.removeHandler(counter)
        logger.setLevel(saved)
        for handler, level in handlers:
            handler.setLevel(level)


def drive(stack: Any, api: Any, hook_url: str, received: list[bytes], count: int, what: str) -> list[str]:
    """Run `count` tasks as a client would, to the end: returns their ids."""
    import httpx

    image = (ROOT / "assets" / "sample.png").read_bytes()
    ids: list[str] = []
    for _ in range(count):
        ticket = api.post("/v1/uploads", json={"filename": "sample.png", "content_type": "image/png"})
        ticket.raise_for_status()
        httpx.put(ticket.json()["put_url"], content=image, headers={"Content-Type": "image/png"})
        created = api.post(
            "/v1/videos",
            json={
                "image_url": ticket.json()["url"],
                "prompt": "a slow zoom on a quiet harbour at dawn",
                "duration": VIDEO_SECONDS,
                "resolution": "720p",
                "webhook_url": hook_url,
            },
        )
        created.raise_for_status()
        ids.append(created.json()["id"])
    tasks = stack.runtime().tasks
    deadline = time.monotonic() + DEADLINE_SECONDS
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for task_id in list(pending):
            task = tasks.get(task_id)
            delivered = any(task_id.encode() in body for body in received)
            if task is not None and task.status.terminal and not task.outbox and delivered:
                pending.discard(task_id)
        progress(len(ids) - len(pending), len(ids), what)
        time.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} of {count} tasks did not finish within {DEADLINE_SECONDS:.0f} s")
    for task_id in ids:  # the client reads its task once and downloads the video
        view = api.get(f"/v1/videos/{task_id}").json()
        if view.get("output_url"):
            httpx.get(view["output_url"]).raise_for_status()
    return ids


def run() -> None:
    import httpx

    from i2v_local.aws import load_template, moto_server
    from i2v_local.stack import LocalStack

    section(f"P7 cost of the gateway ({TASKS} tasks end to end on the local stack; us-east-1 list prices)")
    install()
    # moto keeps its state per process: on its own server, the stack starts from a reset one (as tests do).
    with (
        webhook_receiver() as (hook_url, received),
        moto_server() as aws,
        LocalStack(
            aws_endpoint=aws,
            render_scale=0.3,
            poll_interval=LOCAL_POLL_SECONDS,
            sweep_every=LOCAL_SWEEP_SECONDS,
        ) as stack,
        httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60
        ) as api,
    ):
        watch(stack)
        drive(stack, api, hook_url, received, WARM_TASKS, "warm-up tasks")
        with counting() as tally, log_bytes(os.environ.get("POWERTOOLS_SERVICE_NAME", "")) as logged:
            started = time.monotonic()
            ids = drive(stack, api, hook_url, received, TASKS, "tasks")
            window = time.monotonic() - started
        statuses = Counter(stack.runtime().tasks.require(t).status.value for t in ids)
        moto_host = _host(stack.endpoint)
        api_host = _host(stack.url)
    calls, invocations = tally.snapshot()
    wiring = Wiring.from_template(load_template())
    counted = tally_up(calls, invocations, wiring, moto_host, api_host, logged[0])
    report(counted, wiring, window, statuses)


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


# -- pricing what was counted -------------------------------------------------------------------------


@dataclass
class Ledger:
    """What one share of the work used in the run: the gateway's own per-task work, or the polling machinery
    (the scheduled sweeper, the poll worker and the queue that brings it back)."""

    invocations: Counter[str] = field(default_factory=Counter)
    billed_seconds: dict[str, float] = field(default_factory=dict)  # per function, each rounded up to 1 ms
    units: Units = field(default_factory=Units)
    by_label: dict[str, Units] = field(default_factory=dict)  # DynamoDB units per call label
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function, call label): AWS calls made
    sqs: int = 0  # billed SQS requests (64 KB chunks), the event sources' included
    secrets: int = 0

    def gb_seconds(self, memory: dict[str, int]) -> float:
        return sum(s * memory[f] / 1024 for f, s in self.billed_seconds.items())

    def costs(self, memory: dict[str, int], api: set[str], k: int) -> list[tuple[str, float]]:
        """(label, USD over the run) for what is priced per request or per second."""
        invoked = sum(self.invocations.values())
        api_requests = sum(n for f, n in self.invocations.items() if f in api)
        return [
            (f"Lambda requests ({invoked / k:.1f}/task)", invoked * LAMBDA_REQUEST),
            (
                f"Lambda duration ({self.gb_seconds(memory) / k:.3f} GB-s/task)",
                self.gb_seconds(memory) * LAMBDA_GB_SECOND,
            ),
            (f"API Gateway REST requests ({api_requests / k:.1f}/task)", api_requests * API_REST_REQUEST),
            (f"DynamoDB writes ({self.units.write / k:.1f} WRU/task)", self.units.write * DDB_WRITE_UNIT),
            (
                f"DynamoDB GSI writes ({self.units.gsi_write / k:.1f} WRU/task)",
                self.units.gsi_write * DDB_WRITE_UNIT,
            ),
            (f"DynamoDB reads ({self.units.read / k:.1f} RRU/task)", self.units.read * DDB_READ_UNIT),
            (f"SQS requests ({self.sqs / k:.1f}/task)", self.sqs * SQS_REQUEST),
            (f"Secrets Manager calls ({self.secrets / k:.2f}/task)", self.secrets * SECRETS_CALL),
        ]

    def total(self, memory: dict[str, int], api: set[str]) -> float:
        return sum(cost for _, cost in self.costs(memory, api, 1))


@dataclass(frozen=True)
class Wiring:
    """What template.yaml says about the functions, for pricing them."""

    memory: dict[str, int]  # MemorySize per function
    api: set[str]  # functions behind API Gateway
    feeds: dict[str, str]  # queue logical id -> the function its messages go to
    polling: set[str]  # the sweeper and the poll worker, where they exist
    secrets: int
    access_log_bytes: int

    @classmethod
    def from_template(cls, template: dict[str, Any]) -> Wiring:
        default = int(template["Globals"]["Function"].get("MemorySize", 128))
        memory: dict[str, int] = {}
        api: set[str] = set()
        feeds: dict[str, str] = {}
        for logical, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource["Properties"]
            memory[logical] = int(props.get("MemorySize", default))
            for event in props.get("Events", {}).values():
                if event["Type"] == "Api":
                    api.add(logical)
                elif event["Type"] == "SQS":
                    feeds[event["Properties"]["Queue"]["Fn::GetAtt"][0]] = logical
        kinds = [r["Type"] for r in template["Resources"].values()]
        return cls(
            memory=memory,
            api=api,
            feeds=feeds,
            polling={"SweeperFunction", "PollFunction"} & set(memory),
            secrets=kinds.count("AWS::SecretsManager::Secret"),
            access_log_bytes=access_log_bytes(template),
        )

    def queue_function(self, call: Call) -> str | None:
        """The function fed by the queue an SQS call names (None if it names none of the template's)."""
        try:
            url = str(json.loads(call.sent).get("QueueUrl", "")) if call.sent else ""
        except ValueError:
            return None
        name = url.rstrip("/").rsplit("/", 1)[-1]
        return self.feeds.get(name.removeprefix(f"{STACK}-"))


def access_log_bytes(template: dict[str, Any]) -> int:
    """One API Gateway access-log line in the template's format, with typical values."""
    fmt = str(template["Resources"]["Api"]["Properties"]["AccessLogSetting"]["Format"])
    typical = {
        "requestId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "identity.sourceIp": "203.0.113.10",
        "requestTime": "25/Nov/2026:17:13:01 +0000",
        "httpMethod": "POST",
        "resourcePath": "/v1/videos/{task_id}",
        "status": "202",
        "responseLength": "930",
        "responseLatency": "95",
        "integrationLatency": "90",
        "error.message": "-",
    }
    return len(re.sub(r"\$context\.([\w.]+)", lambda m: typical.get(m.group(1), "-"), fmt)) + 1


# What an SQS event source does with a message after receiving it (the local pumps as Lambda's pollers do).
EVENT_SOURCE_AFTER = ("DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility")
PUT_CLASS = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "ListObjectsV2",
    "ListObjects",
    "PUT",
    "POST",
}
FREE_CLASS = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload", "DELETE"}


@dataclass
class Storage:
    """S3 requests and the bytes stored and sent out, over the run."""

    put: int = 0
    get: int = 0
    output_bytes: int = 0  # the MP4s ingested
    input_bytes: int = 0  # the images uploaded
    downloads: int = 0  # the client's GETs of its videos
    transfer_out: int = 0  # bytes from AWS to the internet, as measured

    def request(self, operation: str) -> None:
        if operation in PUT_CLASS:
            self.put += 1
        elif operation not in FREE_CLASS:
            self.get += 1


@dataclass
class Counted:
    gateway: Ledger
    polling: Ledger
    storage: Storage
    events: int  # EventBridge events (64 KB chunks)
    log_bytes: int  # the gateway's log lines, platform and access lines included
    cold: Counter[str]  # cold starts per function
    turns: int  # task turns the polling machinery took (each begins with a claim of the poll lease)
    sweeps: list[Invocation]  # the scheduled sweeper's runs
    empty_sweep_seconds: float  # a run that finds nothing due
    due_shards: float  # Query calls per sweeper run
    presigned: Counter[str]  # S3 requests over presigned URLs, by who made them


def claims_poll_lease(call: Call) -> bool:
    """A task turn starts with a conditional claim of the task's poll lease (won or not, it is a turn)."""
    from i2v.lifecycle import Work

    if call.label != "dynamodb.UpdateItem TASK#" or not call.sent:
        return False
    sets, _ = updated_names(json.loads(call.sent))
    return f"lease_{Work.POLL.value}" in sets


def tally_up(
    calls: list[Call],
    invocations: list[Invocation],
    wiring: Wiring,
    moto_host: str,
    api_host: str,
    app_log_bytes: int,
) -> Counted:
    """Sort what was counted into the gateway's share and the polling machinery's."""
    gateway, polling, storage = Ledger(), Ledger(), Storage()
    presigned: Counter[str] = Counter()
    indexes = table_indexes()
    events = 0

    def ledger(function: str | None) -> Ledger:
        return polling if function in wiring.polling else gateway

    for inv in invocations:
        share = ledger(inv.function)
        share.invocations[inv.function] += 1
        billed = math.ceil(inv.seconds * 1000) / 1000
        share.billed_seconds[inv.function] = share.billed_seconds.get(inv.function, 0.0) + billed
    for call in calls:
        if call.kind == "aws" and call.service == "sqs":
            # Priced with the function its queue feeds: the poll queue is the polling machinery's.
            share = ledger(wiring.queue_function(call))
            if call.function is None:  # the event source's own requests (Lambda's pollers, deployed)
                received = call.operation == "ReceiveMessage" and b'"Messages"' in call.answer
                share.sqs += received or call.operation in EVENT_SOURCE_AFTER
            else:
                share.sqs += max(1, math.ceil(call.request_bytes / 65536))
                ledger(call.function).calls[(call.function, call.label)] += 1
        elif call.kind == "aws" and call.function is not None:
            share = ledger(call.function)
            share.calls[(call.function, call.label)] += 1
            if call.service == "dynamodb":
                used = dynamodb_units(call, indexes)
                share.units.add(used)
                share.by_label.setdefault(call.label, Units()).add(used)
            elif call.service == "secretsmanager":
                share.secrets += 1
            elif call.service == "s3":
                storage.request(call.operation)
                if call.operation in ("UploadPart", "PutObject"):
                    storage.output_bytes += call.request_bytes
            elif call.service == "events" and call.operation == "PutEvents":
                entries = json.loads(call.sent).get("Entries", []) if call.sent else []
                events += sum(max(1, math.ceil(len(json.dumps(e)) / 65536)) for e in entries)
        elif call.kind == "http" and call.service == moto_host:  # presigned S3 requests
            storage.request(call.operation)
            who = call.function or (
                "client" if call.operation == "PUT" or "/outputs/" in call.url else "provider"
            )
            presigned[f"{call.operation} by {who}"] += 1
            if call.operation == "PUT":
                storage.input_bytes += call.request_bytes
            if (
                call.function is None and call.operation == "GET"
            ):  # the client's download, the provider's fetch
                storage.transfer_out += call.response_bytes
                storage.downloads += "/outputs/" in call.url
        elif call.kind == "http" and call.function is None and call.service == api_host:
            storage.transfer_out += call.response_bytes  # API answers (and callback answers)
        elif call.kind == "http" and call.function is not None and call.function not in wiring.polling:
            storage.transfer_out += call.request_bytes  # submits, webhook POSTs

    sweeps = [inv for inv in invocations if inv.function == "SweeperFunction"]
    polling_calls = [c for c in calls if c.function in wiring.polling]
    sweeper_calls = [c for c in polling_calls if c.function == "SweeperFunction"]

    def only_queries(run: Invocation) -> bool:
        inside = [c for c in sweeper_calls if run.started <= c.started <= run.started + run.seconds]
        return all(c.name == "dynamodb.Query" for c in inside)

    empty = [run.seconds for run in sweeps if only_queries(run)]
    empty_seconds = statistics.median(empty) if empty else min((r.seconds for r in sweeps), default=0.0)
    queries = sum(1 for c in sweeper_calls if c.name == "dynamodb.Query")
    gateway_invocations = sum(gateway.invocations.values())
    gateway_api = sum(n for f, n in gateway.invocations.items() if f in wiring.api)
    return Counted(
        gateway=gateway,
        polling=polling,
        storage=storage,
        events=events,
        log_bytes=app_log_bytes
        + gateway_invocations * PLATFORM_LOG_BYTES
        + gateway_api * wiring.access_log_bytes,
        cold=Counter(inv.function for inv in invocations if inv.cold),
        turns=sum(1 for c in polling_calls if claims_poll_lease(c)),
        sweeps=sweeps,
        empty_sweep_seconds=empty_seconds,
        due_shards=queries / max(1, len(sweeps)),
        presigned=presigned,
    )


def report(counted: Counted, wiring: Wiring, window: float, statuses: Counter[str]) -> None:
    k = TASKS
    cents = 1000 / k * 100  # USD over the run -> US cents per 1,000 videos
    gateway, polling, storage = counted.gateway, counted.polling, counted.storage

    section("P7 per task, counted (the polling machinery apart, below)")
    done = ", ".join(f"{n} {s}" for s, n in statuses.items())
    colds = ", ".join(f"{f} {n}" for f, n in counted.cold.items()) or "none"
    note(f"{k} tasks ({done}) in {window:.1f} s; cold starts while counting: {colds}")
    for function, count in sorted(gateway.invocations.items()):
        each = gateway.billed_seconds[function] / count * 1000
        line(f"{function}: {count / k:.2f} invocations/task, each", each, "ms")
        made = sorted((label, n) for (f, label), n in gateway.calls.items() if f == function)
        for start in range(0, len(made), 3):
            note("    " + ", ".join(f"{label} {n / k:.2f}" for label, n in made[start : start + 3]))
    presigned = counted.presigned
    say(
        "S3 over presigned URLs per task: "
        + ", ".join(f"{w} {n / k:.2f}" for w, n in sorted(presigned.items()))
    )

    # Sizes: the local renderer's MP4s are tiny, so storage and the client's download use the assumed size.
    measured_output = storage.output_bytes / k
    assumed_output = OUTPUT_MB * MB
    transfer = storage.transfer_out + storage.downloads * (assumed_output - measured_output)
    stored_gb_month = (assumed_output * k + storage.input_bytes * 7 / 30) / GB  # inputs expire after 7 days
    invoked = sum(gateway.invocations.values())
    rows = [
        *gateway.costs(wiring.memory, wiring.api, k),
        (f"EventBridge events ({counted.events / k:.1f}/task)", counted.events * EVENTS_EVENT),
        (f"S3 PUT-class requests ({storage.put / k:.1f}/task)", storage.put * S3_PUT_REQUEST),
        (f"S3 GET-class requests ({storage.get / k:.1f}/task)", storage.get * S3_GET_REQUEST),
        (f"S3 storage, 30 days ({OUTPUT_MB:g} MB output)", stored_gb_month * S3_STORAGE_GB_MONTH),
        (f"transfer out ({transfer / k / MB:.2f} MB/task)", transfer / GB * TRANSFER_OUT_GB),
        (
            f"CloudWatch Logs ({counted.log_bytes / k / 1024:.1f} KB/task, est.)",
            counted.log_bytes / GB * LOGS_INGEST_GB,
        ),
        (f"X-Ray traces (<= {invoked / k:.1f}/task, upper bound)", invoked * XRAY_TRACE),
    ]

    # The polling machinery: measured here; deployed, a fixed monthly part and a part per turn.
    memory_gb = wiring.memory.get("SweeperFunction", 512) / 1024
    run_cost = (
        LAMBDA_REQUEST
        + counted.empty_sweep_seconds * memory_gb * LAMBDA_GB_SECOND
        + counted.due_shards * 0.5 * DDB_READ_UNIT
    )
    measured = polling.total(wiring.memory, wiring.api)
    per_turn = max(0.0, measured - run_cost * len(counted.sweeps)) / max(1, counted.turns)
    interval = float(POLL_INTERVAL_SECONDS) if "PollFunction" in wiring.polling else 60.0
    turns_deployed = math.ceil(GENERATION_SECONDS / interval)
    polling_deployed = turns_deployed * per_turn * k
    fixed_month = SWEEPS_PER_MONTH * run_cost

    gateway_total = sum(cost for _, cost in rows) + polling_deployed
    provider_total = PROVIDER_USD_PER_SECOND * VIDEO_SECONDS * k

    section(f"P7 gateway cost per 1,000 videos (US cents; output {OUTPUT_MB:g} MB ASSUMED)")
    for label, cost in rows:
        line(label, cost * cents, "cents")
    line(f"polling, deployed ({turns_deployed} turns/task, est.)", polling_deployed * cents, "cents")
    line("total, gateway", gateway_total * cents, "cents")
    line(
        f"provider: {VIDEO_SECONDS} s x ${PROVIDER_USD_PER_SECOND:g}/s (ASSUMED)",
        provider_total * cents,
        "cents",
    )
    line("gateway / provider spend", gateway_total / provider_total * 100, "%", goal=Goal(at_most=1.0))
    breakeven = gateway_total / (0.01 * VIDEO_SECONDS * k)
    say(
        f"break-even: the gateway is exactly 1% of the provider's spend at ${breakeven:.5f} per second of"
        f" video (${breakeven * VIDEO_SECONDS:.4f} a {VIDEO_SECONDS} s video). The provider price is an"
        f" ASSUMPTION, ${PROVIDER_USD_PER_SECOND:g}/s (I2V_BENCH_PROVIDER_USD_PER_SECOND): no host documents"
        " one; it is the low end of a third-party quote for EvoLink (not a list price)"
    )

    names = " + ".join(sorted(wiring.polling))
    section(
        f"P7 polling machinery ({names}): here a sweep every {LOCAL_SWEEP_SECONDS:g} s,"
        f" polls every {LOCAL_POLL_SECONDS} s"
    )
    invoked_here = ", ".join(f"{f} {n}" for f, n in sorted(polling.invocations.items()))
    say(f"here: {counted.turns} task turns ({counted.turns / k:.1f}/task); invocations: {invoked_here}")
    line("measured here, per 1,000 videos", measured * cents, "cents")
    for (function, label), count in sorted(polling.calls.items()):
        line(f"  {function}: {label}", count / k, "/task")
    line("deployed: a sweeper run that finds nothing", run_cost * 1e6, "u$")
    line(f"deployed: fixed, {SWEEPS_PER_MONTH:,} runs a month", fixed_month * 100, "cents")
    line("deployed: one task turn (as measured here)", per_turn * 1e6, "u$")
    say(
        f"deployed turns per task: one per {interval:.0f} s for {GENERATION_SECONDS:.0f} s at the provider"
        f" (ASSUMED; a provider's ETA stretches the interval) = {turns_deployed}: the 'polling, deployed' row"
    )
    say(
        f"the fixed part adds {fixed_month / 10 * 100:.2f} c per 1,000 videos at 10,000 videos a month;"
        f" an empty run here took {counted.empty_sweep_seconds * 1000:.0f} ms and"
        f" {counted.due_shards:.0f} Query (one per due shard)"
    )

    section("P7 where it goes, and what looks avoidable (for the lead; no production code changed)")
    total = gateway_total
    big = sorted(rows, key=lambda row: -row[1])[:3]
    say(
        "largest rows: "
        + "; ".join(f"{label.split(' (')[0]} {cost / total * 100:.0f}%" for label, cost in big)
        + " of the gateway's cost; the client's download of each video from our bucket is the transfer row"
    )
    task_writes = sum(n for (_, label), n in gateway.calls.items() if label == "dynamodb.UpdateItem TASK#")
    task_units = gateway.by_label.get("dynamodb.UpdateItem TASK#", Units())
    if task_writes:
        per_write = (task_units.write + task_units.gsi_write) / task_writes
        say(
            f"a task update costs {per_write:.1f} WRU here, GSI copies included; by_tenant (projection ALL)"
            f" takes {gateway.units.by_index['by_tenant'] / k:.1f} WRU/task"
            f" ({gateway.units.by_index['by_tenant'] * DDB_WRITE_UNIT * cents:.2f} c per 1,000 videos) and"
            f" by_due {gateway.units.by_index['by_due'] / k:.1f}"
        )
    ingest_writes = sum(
        n
        for (f, label), n in gateway.calls.items()
        if f == "IngestFunction" and label == "dynamodb.UpdateItem TASK#"
    )
    if ingest_writes and task_writes:
        say(
            f"IngestFunction writes the task {ingest_writes / k:.1f} times (ingest lease, succeeded, finish"
            " lease, one record per outbox step): the terminal write could take the finish lease itself (its"
            " writer does the outbox at once), one write fewer"
            f" ({per_write * DDB_WRITE_UNIT * 1000 * 100:.2f} c per 1,000 videos); the per-step records are"
            " the outbox's retry guarantee"
        )
    multipart = gateway.calls[("IngestFunction", "s3.CreateMultipartUpload")]
    if multipart and measured_output < 8 * MB:
        say(
            f"outputs under one part (8 MiB) still take 3 PUT-class requests (multipart create, part,"
            f" complete); one PutObject would do: {2 * S3_PUT_REQUEST * 1000 * 100:.2f} c per 1,000 videos"
        )
    if "PollFunction" in wiring.polling and per_turn:
        slower = math.ceil(GENERATION_SECONDS / 60)
        say(
            f"polling every {POLL_INTERVAL_SECONDS} s costs {polling_deployed * cents:.2f} c per 1,000 videos"
            f" ({turns_deployed} turns) even for providers that call back; at one poll a minute for those"
            f" ({slower} turns) it would be {slower * per_turn * 1000 * 100:.2f} c"
        )
    health = gateway.calls[("ApiFunction", "dynamodb.UpdateItem HEALTH#")]
    if health:
        health_units = gateway.by_label["dynamodb.UpdateItem HEALTH#"].write
        say(
            f"{health / k:.1f} UpdateItem HEALTH#<provider> per task: cheap"
            f" ({health_units * DDB_WRITE_UNIT * cents:.2f} c), but one item written by every create of every"
            " tenant (see P2)"
        )

    section("P7 notes")
    queues = len(wiring.feeds)
    idle = queues * 5 * 3 * 60 * 24 * 30 * SQS_REQUEST
    say(
        f"fixed monthly, not per video: {wiring.secrets} secrets ${wiring.secrets * SECRET_MONTH:.2f}; the"
        f" sweeper's runs (above); Lambda's pollers on {queues} queues while idle, ~5 long polls of 20 s"
        f" each (~${idle:.2f}); a secret read every 5 min per warm container"
        f" (~{12 * 730 * SECRETS_CALL * 100:.1f} c a month each)"
    )
    say(
        f"measured output {measured_output / 1024:.0f} KB/task (the local renderer): storage and the download"
        " are priced at the assumed size; outputs have no lifecycle rule, so each further month adds"
        f" {assumed_output / GB * S3_STORAGE_GB_MONTH * 1000 * 100:.1f} c per 1,000 videos"
    )
    say(
        "Lambda times are in-process on 2 shared cores; an ingest of a real MP4 (MBs) takes longer (P4)."
        " The warm-up tasks load a container per function; containers started meanwhile under concurrency"
        " are counted with their load. INIT is billed since 2025-08-01."
    )
