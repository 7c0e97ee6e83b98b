"""IAM on the local stack: which AWS calls each function makes, and whether its role would allow them.

moto allows every call, so the template's policies are proven here instead. `Recorder.install()` hooks
botocore below every client (and powertools' parameter cache, and presigning) and notes each call made while
`invoking(<logical id>)` is active (`stack.Function.invoke` sets it around a handler call), with the IAM
actions and resource ARNs that call needs. `Policy.from_role` reads a function's role as SAM translates the
template (`translated_roles`) and answers whether an action on a resource is allowed, and which grants were
never used.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import fnmatch
import functools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from i2v_local.aws import ACCOUNT, REGION, LocalResources

current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("i2v_function", default=None)


@contextmanager
def invoking(logical: str) -> Iterator[None]:
    """AWS calls made in this block (and in pools it starts) are the function `logical`'s."""
    token = current_function.set(logical)
    try:
        yield
    finally:
        current_function.reset(token)


Need = tuple[str, str]  # (IAM action, resource ARN)


@dataclass(frozen=True)
class Call:
    function: str
    service: str
    operation: str
    needs: tuple[Need, ...]

    def __str__(self) -> str:
        return f"{self.function}: {self.service}.{self.operation} needs {list(self.needs)}"


# S3 operations whose IAM action is not s3:<Operation>.
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
}
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _table_arn(name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _queue_arn(url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{urlsplit(url).path.rstrip('/').rsplit('/', 1)[-1]}"


def needs_of(service: str, operation: str, params: dict[str, Any]) -> tuple[Need, ...]:
    """The IAM actions and resources one API call needs."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return tuple(
                (_TRANSACT_ACTIONS[kind], _table_arn(body["TableName"]))
                for item in params["TransactItems"]
                for kind, body in item.items()
            )
        if operation == "TransactGetItems":
            return tuple(
                ("dynamodb:GetItem", _table_arn(i["Get"]["TableName"])) for i in params["TransactItems"]
            )
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return tuple((f"dynamodb:{operation}", _table_arn(name)) for name in params["RequestItems"])
        return ((f"dynamodb:{operation}", _table_arn(params["TableName"], params.get("IndexName"))),)
    if service == "s3":
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        bucket = params.get("Bucket", "")
        arn = f"arn:aws:s3:::{bucket}/{params['Key']}" if "Key" in params else f"arn:aws:s3:::{bucket}"
        return ((action, arn),)
    if service == "sqs":
        action = "sqs:" + operation.removesuffix("Batch")
        return ((action, _queue_arn(params["QueueUrl"])),)
    if service == "events":
        buses = {entry.get("EventBusName", "default") for entry in params.get("Entries", [])}
        return tuple(
            (
                f"events:{operation}",
                b if b.startswith("arn:") else f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}",
            )
            for b in sorted(buses)
        )
    if service == "secretsmanager":
        return ((f"secretsmanager:{operation}", str(params["SecretId"])),)
    if service == "ssm":
        names = params.get("Names") or [params.get("Name") or params.get("Path", "")]
        return tuple(
            (f"ssm:{operation}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{n.lstrip('/')}") for n in names
        )
    return ((f"{service}:{operation}", "*"),)


@dataclass
class Recorder:
    """Every AWS call made while a function is being invoked, by function."""

    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, service: str, operation: str, params: dict[str, Any]) -> None:
        function = current_function.get()
        if function is None:
            return  # the stack's own plumbing (pumps, provisioning) or a test's set-up, not a function
        call = Call(function, service, operation, needs_of(service, operation, params))
        with self._lock:
            self.calls.append(call)

    def by_function(self) -> dict[str, list[Call]]:
        with self._lock:
            calls = list(self.calls)
        grouped: dict[str, list[Call]] = {}
        for call in calls:
            grouped.setdefault(call.function, []).append(call)
        return grouped

    def install(self) -> Recorder:
        """Hook this process's botocore (every client, made before or after) and powertools' parameters."""
        global _active
        _active = self
        if not _installed.is_set():
            _installed.set()
            _hook()
        return self

    def stop(self) -> None:
        """Record nothing more (the hooks stay, doing nothing)."""
        global _active
        if _active is self:
            _active = None


_active: Recorder | None = None
_installed = threading.Event()


def _note(service: str, operation: str, params: dict[str, Any]) -> None:
    if _active is not None:
        _active.note(service, operation, params)


def _hook() -> None:
    import botocore.client
    import botocore.signers
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.ssm import SSMProvider

    # Typed as Any: these are private or generic members, patched in place.
    client_class: Any = botocore.client.BaseClient
    signer_class: Any = botocore.signers.RequestSigner
    pool_class: Any = concurrent.futures.ThreadPoolExecutor

    make_api_call = client_class._make_api_call

    @functools.wraps(make_api_call)
    def recorded_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        _note(self.meta.service_model.service_name, operation_name, api_params)
        return make_api_call(self, operation_name, api_params)

    client_class._make_api_call = recorded_call

    # A presigned URL works only if the signer's role may do what it names: count it as that call.
    presign = signer_class.generate_presigned_url

    @functools.wraps(presign)
    def recorded_presign(
        self: Any, request_dict: dict[str, Any], operation_name: str, *a: Any, **k: Any
    ) -> Any:
        if str(self._service_id).lower() == "s3":
            path = unquote(urlsplit(request_dict["url"]).path).lstrip("/")
            bucket, _, key = path.partition("/")
            _note("s3", operation_name, {"Bucket": bucket, "Key": key})
        return presign(self, request_dict, operation_name, *a, **k)

    signer_class.generate_presigned_url = recorded_presign

    # powertools caches secrets and parameters per process, and the local stack runs every function in one:
    # a cached read is still a read the function's own cold containers make when deployed.
    def cached_reads(provider: type[Any], service: str, operation: str, param: str) -> None:
        get = provider.get

        @functools.wraps(get)
        def recorded_get(self: Any, name: str, *a: Any, **k: Any) -> Any:
            if self.has_not_expired_in_cache(self._build_cache_key(name=name, transform=k.get("transform"))):
                _note(service, operation, {param: name})
            return get(self, name, *a, **k)

        provider.get = recorded_get

    cached_reads(SecretsProvider, "secretsmanager", "GetSecretValue", "SecretId")
    cached_reads(SSMProvider, "ssm", "GetParameter", "Name")

    # A function's own worker threads (the sweeper's pool) act for it: run them in the submitter's context.
    submit = pool_class.submit

    @functools.wraps(submit)
    def submit_in_context(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

    pool_class.submit = submit_in_context


# -- policies as SAM translates them ------------------------------------------------------------------

# The AWS managed policies SAM attaches (their documents as AWS publishes them): logs, X-Ray, and the SQS
# event source's poller, which Lambda itself uses (so a function's own code never relies on it).
MANAGED: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Grant:
    policy: str
    sid: str
    action: str
    resource: str

    def allows(self, action: str, resource: str) -> bool:
        return fnmatch.fnmatchcase(action.lower(), self.action.lower()) and fnmatch.fnmatchcase(
            resource, self.resource
        )

    def __str__(self) -> str:
        return f"{self.policy}/{self.sid}: {self.action} on {self.resource}"


@dataclass
class Policy:
    """One function's role: its own grants (inline policies) and its managed policies' grants."""

    own: list[Grant]
    managed: list[Grant]
    denied: list[Grant]

    @classmethod
    def from_role(cls, role: dict[str, Any], resources: LocalResources) -> Policy:
        own: list[Grant] = []
        managed: list[Grant] = []
        denied: list[Grant] = []
        props = resources.resolve(role["Properties"])
        documents = [(p["PolicyName"], p["PolicyDocument"]["Statement"]) for p in props.get("Policies", [])]
        for arn in props.get("ManagedPolicyArns", []):
            name = arn.rsplit("/", 1)[-1]
            if name not in MANAGED:
                raise KeyError(f"managed policy {arn} is not known to the checker")
            documents.append((name, MANAGED[name]))
        for policy_name, statements in documents:
            for number, statement in enumerate(_listed(statements)):
                if "Condition" in statement or "NotAction" in statement or "NotResource" in statement:
                    continue  # not evaluated here: such a statement never counts as a grant
                for action in _listed(statement["Action"]):
                    for resource in _listed(statement["Resource"]):
                        grant = Grant(policy_name, statement.get("Sid", str(number)), action, str(resource))
                        if statement["Effect"] == "Deny":
                            denied.append(grant)
                        else:
                            (managed if policy_name in MANAGED else own).append(grant)
        return cls(own, managed, denied)

    def allows(self, action: str, resource: str) -> bool:
        if any(g.allows(action, resource) for g in self.denied):
            return False
        return any(g.allows(action, resource) for g in self.own + self.managed)

    def refused(self, calls: list[Call]) -> list[str]:
        """Each call (with the need) the role would deny."""
        return [f"{c} -> denied {need}" for c in calls for need in c.needs if not self.allows(*need)]

    def unused(self, calls: list[Call]) -> list[Grant]:
        """The role's own grants that no recorded call needed."""
        needs = {need for c in calls for need in c.needs}
        return [g for g in self.own if not any(g.allows(*need) for need in needs)]


TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
from samtranslator.public.translator import ManagedPolicyLoader

class NoManagedPolicyLookups(ManagedPolicyLoader):
    def __init__(self): pass
    def load(self): return {}

with open(sys.argv[1]) as fh:
    template = yaml_parse(fh.read())
for resource in template["Resources"].values():  # as `sam package` leaves them: code in S3
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://bucket/" + resource["Properties"][key]
print(json.dumps(transform(template, {"AWS::Region": "us-east-1"}, NoManagedPolicyLookups())))
"""


def translated_roles(template: Path, python: Path | str = sys.executable) -> dict[str, dict[str, Any]]:
    """Each function's IAM role (by function logical id) in the template as SAM translates it, translated by
    `python` (an interpreter with aws-sam-translator: the tools venv, whose pins stay out of the app's)."""
    out = subprocess.run(
        [str(python), "-c", TRANSLATE, str(template)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "AWS_DEFAULT_REGION": REGION},
    ).stdout
    resources: dict[str, dict[str, Any]] = json.loads(out)["Resources"]
    roles = {}
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Function":
            role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            roles[logical] = resources[role]
    return roles
