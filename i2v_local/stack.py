"""The embedded local stack: moto, the simulators, and the Lambda handlers wired as template.yaml wires them.

An HTTP runner turns requests into API Gateway proxy events for the functions whose Api events match
(the way `sam local start-api` does, without Docker); pumps feed SQS queues and the schedule to theirs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from i2v.dynamo import Table
from i2v.providers.registry import PROVIDERS
from i2v.records import Records
from i2v.runtime import Runtime
from i2v_local.aws import LocalResources, moto_server, point_boto3_at, provision, reset
from i2v_local.iam import invoking
from i2v_local.simulator import Simulator, simulator_for

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("i2v_local")
ROOT = Path(__file__).resolve().parents[1]
Handler = Callable[[dict[str, Any], Any], Any]

# Containers of a function the template leaves unreserved: enough that the HTTP runner's bursts rarely wait.
UNRESERVED_CONTAINERS = 16
# Batches an SQS event source runs at once when neither its ScalingConfig nor its function's reserved
# concurrency bounds it. Deployed, Lambda starts such a source at five concurrent batches and adds pollers
# while messages remain (up to 1,000); locally it stays at five, the burst AWS begins with: more threads on a
# small machine would only queue for the GIL and for moto.
UNBOUNDED_SOURCE_BATCHES = 5


def simulators() -> dict[str, type[Simulator]]:
    """Every provider in i2v.providers.registry with its simulator (i2v_local/sim_<name>.py), local first."""
    return {name: simulator_for(name) for name in sorted(PROVIDERS, key=lambda name: (name != "local", name))}


@dataclass
class FakeContext:
    """The parts of a Lambda context object that powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def load_handler(code_uri: str, handler: str) -> Handler:
    """Import functions/<name>/handler.py by path, as Lambda does in a new container (a cold start): each call
    gives a new module, with its own resolver, runtime and clients."""
    module_name, func_name = handler.rsplit(".", 1)
    path = ROOT / code_uri / f"{module_name}.py"
    spec = importlib.util.spec_from_file_location(f"i2v_fn_{Path(code_uri).name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn: Handler = getattr(module, func_name)
    return fn


def api_event(
    request: Request, resource: str, path_params: Mapping[str, str], stage: str = "live"
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event, shaped like `sam local generate-event apigateway aws-proxy`."""
    headers = dict(request.headers.items())
    query = {k: v for k, v in request.args.items()}
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": {k: request.headers.getlist(k) for k in headers},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in query} or None,
        "pathParameters": dict(path_params) or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": request.method,
            "path": f"/{stage}{request.path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "domainName": request.host,
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": request.get_data(as_text=True) or None,
        "isBase64Encoded": False,
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


class _PerThread:
    """A class-level attribute whose value is per thread (a data descriptor, so it wins over assignment to the
    same name on a base class)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self._local.value

    def __set__(self, obj: object, value: Any) -> None:
        self._local.value = value


def keep_invocations_apart() -> None:
    """Give each thread its own powertools invocation state.

    powertools' `resolve()` assigns the event and context to class attributes of `BaseRouter`, shared by every
    resolver in the process. Deployed, a process runs one invocation at a time, so that is safe; the local
    stack runs many at once on threads, so here the resolver class reads them from per-thread slots, set
    before powertools' own `resolve` runs. Each container still has its own resolver (its route context).
    """
    from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver

    if isinstance(ApiGatewayResolver.__dict__.get("current_event"), _PerThread):
        return
    resolve = ApiGatewayResolver.resolve
    event_slot, context_slot = _PerThread(), _PerThread()

    def resolve_on_this_thread(self: ApiGatewayResolver, event: Any, context: Any) -> dict[str, Any]:
        event_slot.__set__(self, self._to_proxy_event(event))
        context_slot.__set__(self, context)
        return resolve(self, event, context)

    ApiGatewayResolver.current_event = event_slot  # type: ignore[assignment]
    ApiGatewayResolver.lambda_context = context_slot  # type: ignore[assignment]
    ApiGatewayResolver.resolve = resolve_on_this_thread  # type: ignore[method-assign]


class SourceGate:
    """Lets a function's event sources (queue pumps, the schedule) invoke it side by side, and lets `close`
    wait for them: once `close` returns, none of their invocations is running, and none starts until `open`.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._closed = False
        self._inside = 0  # source invocations running now

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.wait_for(lambda: self._inside == 0)

    def open(self) -> None:
        with self._changed:
            self._closed = False
            self._changed.notify_all()

    def wait_open(self, timeout: float) -> bool:
        """Whether the gate is open, waiting up to `timeout` seconds for it to open."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._closed, timeout)

    @contextmanager
    def passage(self) -> Iterator[bool]:
        """Yields whether a source invocation may run now; while one that may is inside, `close` waits."""
        with self._changed:
            admitted = not self._closed
            if admitted:
                self._inside += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._changed:
                    self._inside -= 1
                    self._changed.notify_all()


class Function:
    """One function as Lambda runs it: containers, each running one event at a time. An event goes to an idle
    container, or to a new one (a cold start) when all are busy, up to `concurrency` (its reserved
    concurrency, when the template sets one); `load` makes a container (tests stand their own in)."""

    def __init__(
        self,
        logical: str,
        code_uri: str,
        handler: str,
        concurrency: int = UNRESERVED_CONTAINERS,
        load: Callable[[str, str], Handler] = load_handler,
    ) -> None:
        self.logical, self.code_uri, self.handler = logical, code_uri, handler
        self.concurrency = concurrency
        self.load = load
        self._idle: list[Handler] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self.cold_starts = 0
        self.running = 0  # invocations running now, from any caller
        self.peak_running = 0  # the most that ever ran at once
        # Entered by every event-source invocation: `LocalStack.pause` closes it and waits for them to end.
        self.source_gate = SourceGate()

    def invoke(self, event: dict[str, Any]) -> Any:
        # invoking: the AWS calls made meanwhile, cold start included, are this function's (i2v_local.iam).
        with self._slots, invoking(self.logical):
            with self._lock:
                container = self._idle.pop() if self._idle else None
                self.running += 1
                self.peak_running = max(self.peak_running, self.running)
            try:
                if container is None:
                    container = self.load(self.code_uri, self.handler)
                    with self._lock:
                        self.cold_starts += 1
                return container(event, FakeContext(function_name=self.logical))
            finally:
                with self._lock:
                    self.running -= 1
                    if container is not None:
                        self._idle.append(container)


@dataclass(frozen=True)
class QueueSource:
    """An SQS event in the template: the function its queue feeds, the batch size, and how many batches
    run at once."""

    function: str
    queue: str  # the queue's logical id
    url: str
    arn: str
    batch_size: int
    batches_at_once: int


def reserved_concurrency(resources: LocalResources, function: Mapping[str, Any]) -> int | None:
    """A function's ReservedConcurrentExecutions as the template resolves it (None: it is unreserved)."""
    reserved = resources.resolve(function.get("ReservedConcurrentExecutions"))
    return None if reserved is None else int(reserved)


def batches_at_once(resources: LocalResources, function: Mapping[str, Any], event: Mapping[str, Any]) -> int:
    """How many batches an SQS event source runs at once, as Lambda's poller would: up to the event's
    ScalingConfig.MaximumConcurrency, never more than the function's reserved concurrency (the function's
    other sources and callers share that too); with neither, UNBOUNDED_SOURCE_BATCHES."""
    scaling = resources.resolve(event.get("ScalingConfig")) or {}
    bounds = [int(scaling["MaximumConcurrency"])] if "MaximumConcurrency" in scaling else []
    reserved = reserved_concurrency(resources, function)
    if reserved is not None:
        bounds.append(reserved)
    return min(bounds) if bounds else UNBOUNDED_SOURCE_BATCHES


class LocalStack:
    """Start with `with LocalStack() as stack:`; `stack.url` is the API, `stack.api_key` a working key."""

    def __init__(
        self,
        port: int = 0,
        api_key: str | None = None,
        tenant: str = "demo",
        render_scale: float = 1.0,
        sweep_every: float = 2.0,
        poll_interval: int = 2,
        http_timeout: float | None = None,
        aws_endpoint: str | None = None,
        aws_port: int = 0,
        simulator_ports: dict[str, int] | None = None,
    ) -> None:
        self.port = port
        self.aws_endpoint = aws_endpoint  # reuse a running moto server (tests); else start one
        self.aws_port = aws_port
        self.simulator_ports = simulator_ports or {}
        self.api_key = api_key or os.environ.get("I2V_API_KEY") or f"i2v_local_{secrets.token_urlsafe(18)}"
        self.tenant = tenant
        self.render_scale = render_scale
        self.sweep_every = sweep_every
        self.poll_interval = poll_interval
        self.http_timeout = http_timeout
        self.endpoint = ""
        self.resources: LocalResources | None = None
        self.simulators: dict[str, Simulator] = {}
        self.functions: dict[str, Function] = {}
        self._stop = threading.Event()
        self._exit = ExitStack()
        self._server: BaseWSGIServer | None = None
        self._routes = Map()
        self._threads: list[threading.Thread] = []
        self.queue_sources: list[QueueSource] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def paused(self) -> set[str]:
        """Logical ids of the functions whose event sources are paused (`pause`)."""
        return {logical for logical, function in self.functions.items() if function.source_gate.closed}

    @property
    def bucket(self) -> str:
        assert self.resources is not None
        return self.resources.refs["Bucket"]

    def start(self) -> LocalStack:
        # Handlers with no metrics to flush warn on every invocation; locally that is only noise.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._exit.callback(_restore_environment, dict(os.environ))
        if self.aws_endpoint:
            self.endpoint = self.aws_endpoint
            reset(self.endpoint)
        else:
            self.endpoint = self._exit.enter_context(moto_server(self.aws_port))
            reset(self.endpoint)  # moto's state is per process: an earlier stack's would still be there
        point_boto3_at(self.endpoint)
        self._server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True)
        for name, make in simulators().items():
            sim = make(render_scale=self.render_scale)
            self.simulators[name] = sim.start(self.simulator_ports.get(name, 0))
            self._exit.callback(sim.stop)
        self.resources = provision(self.endpoint, self.url)
        env = self.resources.function_environment(self.url)
        # Each provider at its simulator, in the shape of the template's ProviderSettings: what this process's
        # own I2V_PROVIDER_SETTINGS (or an I2V_<NAME>_BASE_URL) sets wins, as it does deployed.
        env["I2V_PROVIDER_SETTINGS"] = json.dumps(self._provider_settings())
        for name, sim in self.simulators.items():
            for what, value in (("API_KEY", sim.api_key), ("WEBHOOK_SECRET", sim.webhook_secret)):
                variable = f"I2V_{name.upper()}_{what}"
                env.setdefault(variable, os.environ.get(variable, value))
        env.update(
            I2V_POLL_INTERVAL_SECONDS=str(self.poll_interval),
            POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
        )
        if self.http_timeout is not None:
            env["I2V_HTTP_TIMEOUT_SECONDS"] = str(self.http_timeout)
        os.environ.update(env)
        clear_parameter_caches()
        keep_invocations_apart()
        self._wire()
        self.records.put_api_key(self.api_key, self.tenant)
        server = self._server
        self._threads.append(
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        self._exit.close()
        clear_parameter_caches()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- wiring from template.yaml ----------------------------------------------------------------
    def _provider_settings(self) -> dict[str, dict[str, str]]:
        given = json.loads(os.environ.get("I2V_PROVIDER_SETTINGS") or "{}")
        return {
            name: {"base_url": sim.base_url, **{k: v for k, v in given.get(name, {}).items() if v != ""}}
            for name, sim in self.simulators.items()
        }

    def _wire(self) -> None:
        assert self.resources is not None
        rules = []
        for logical, props in self.resources.of_type("AWS::Serverless::Function"):
            reserved = reserved_concurrency(self.resources, props)
            if reserved == 0:
                # Deployed, such a function is throttled, never run; locally it would hang its callers.
                raise ValueError(f"{logical} reserves a concurrency of 0: the local stack cannot run it")
            self.functions[logical] = Function(
                logical, props["CodeUri"], props["Handler"], concurrency=reserved or UNRESERVED_CONTAINERS
            )
            for event in props.get("Events", {}).values():
                kind, conf = event["Type"], event.get("Properties", {})
                if kind == "Api":
                    path = re.sub(r"\{(\w+)\}", r"<\1>", conf["Path"])
                    method = conf["Method"].upper()  # ANY: werkzeug prefers a rule naming the method
                    methods = None if method == "ANY" else [method]
                    rules.append(Rule(path, methods=methods, endpoint=(logical, conf["Path"])))
                elif kind == "SQS":
                    queue = conf["Queue"]["Fn::GetAtt"][0]
                    source = QueueSource(
                        function=logical,
                        queue=queue,
                        url=self.resources.refs[queue],
                        arn=self.resources.resolve(conf["Queue"]),
                        batch_size=int(conf.get("BatchSize", 10)),
                        batches_at_once=batches_at_once(self.resources, props, conf),
                    )
                    self.queue_sources.append(source)
                    # One client per source, made here: boto3's default session is not safe to make clients
                    # from on many threads at once; a pooled connection per pump.
                    sqs = boto3.client("sqs", config=Config(max_pool_connections=source.batches_at_once))
                    receiving = threading.Lock()
                    # A pump per batch at once: each receives its own messages, as Lambda's pollers do.
                    self._threads.extend(
                        threading.Thread(
                            target=self._pump,
                            args=(source, sqs, receiving),
                            name=f"pump-{queue}-{n}",
                            daemon=True,
                        )
                        for n in range(source.batches_at_once)
                    )
                elif kind == "Schedule":
                    self._threads.append(threading.Thread(target=self._tick, args=(logical,), daemon=True))
        self._routes = Map(rules)

    def invoke(self, logical: str, event: dict[str, Any]) -> Any:
        return self.functions[logical].invoke(event)

    def pause(self, logical: str) -> None:
        """Stop a function's event sources (every pump of its queues, its schedule); returns once none of
        their invocations is still running. `resume` starts them again."""
        self.functions[logical].source_gate.close()

    def resume(self, logical: str | None = None) -> None:
        """Start a function's event sources again (every function's, when None)."""
        for function in self.functions.values() if logical is None else [self.functions[logical]]:
            function.source_gate.open()

    def _from_source(self, logical: str, event: dict[str, Any]) -> Any | None:
        """Invoke on behalf of an event source, unless paused (then None and nothing ran)."""
        function = self.functions[logical]
        with function.source_gate.passage() as admitted:
            return function.invoke(event) if admitted else None

    @property
    def records(self) -> Records:
        """The table's API keys and other records, as the functions see them."""
        assert self.resources is not None
        return Records(Table(self.resources.refs["Table"]))

    def runtime(self) -> Runtime:
        """A runtime like a function's (a new container's), for tests and tools working beside the stack."""
        return Runtime.from_environment()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            (logical, resource), params = self._routes.bind_to_environ(environ).match()
        except Exception:
            body = json.dumps(
                {"title": "Not found", "status": 404, "detail": f"no route {request.method} {request.path}"}
            )
            return Response(body, status=404, mimetype="application/problem+json")(environ, start_response)
        result = self.invoke(logical, api_event(request, resource, params))
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        response = Response(result.get("body") or "", status=result["statusCode"], headers=headers)
        return response(environ, start_response)

    def _pump(self, source: QueueSource, sqs: SQSClient, receiving: threading.Lock) -> None:
        """One of a source's concurrent pollers: receive a batch, invoke, delete what the function handled.

        The source's pumps take turns to receive (`receiving`) and run their batches side by side. moto's
        receive is not atomic: two at once on one queue can both take a message (measured on moto 5.2.6: one
        message in 900 with five receivers), which SQS all but never does.
        """
        logical, url = source.function, source.url
        gate = self.functions[logical].source_gate
        while not self._stop.is_set():
            if not gate.wait_open(timeout=0.2):
                continue
            try:
                with receiving:
                    if self._stop.is_set() or gate.closed:  # changed while this pump waited for its turn
                        continue
                    got = sqs.receive_message(
                        QueueUrl=url,
                        MaxNumberOfMessages=source.batch_size,
                        WaitTimeSeconds=1,
                        MessageSystemAttributeNames=["All"],  # as Lambda's event source passes them
                    )
                messages = got.get("Messages", [])
                if not messages:
                    continue
                result = self._from_source(logical, sqs_event(messages, source.arn))
                if result is None:  # paused meanwhile: the messages wait for the source to resume
                    for m in messages:
                        sqs.change_message_visibility(
                            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                        )
                    continue
                failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
                for m in messages:
                    if m["MessageId"] in failed:
                        # Deployed, the message reappears after the visibility timeout; locally, soon.
                        sqs.change_message_visibility(
                            QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=2
                        )
                    else:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            except Exception:
                if not self._stop.is_set():
                    log.exception("pump %s failed", logical)
                    time.sleep(1)

    def _tick(self, logical: str) -> None:
        """The schedule: one invocation per tick, as EventBridge makes one per rule firing."""
        while not self._stop.wait(self.sweep_every):
            if self.functions[logical].source_gate.closed:
                continue
            try:
                self._from_source(logical, schedule_event())
            except Exception:
                log.exception("scheduled %s failed", logical)


def _restore_environment(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def schedule_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/i2v-local-sweeper"],
        "detail": {},
    }


def clear_parameter_caches() -> None:
    """Powertools caches secrets per process (as per container when deployed); a new stack has new ones."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # type: ignore[no-untyped-call]
