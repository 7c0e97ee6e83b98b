"""Local AWS: moto's server on loopback, with the resources of template.yaml created in it.

The table, bucket, queues, bus, secret and parameter are made from the template's own definitions, and
each function's environment is the template's, resolved against them, so local cannot drift from deployed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import yaml

STACK = "i2v-local"
ACCOUNT = "123456789012"
REGION = "us-east-1"
TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...) as their long forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as fh:
        loaded: dict[str, Any] = yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return loaded


@dataclass
class LocalResources:
    """What was created, by logical id: `refs` are !Ref values, `attrs` are !GetAtt values."""

    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        """A template value with its intrinsic functions applied; None where it is `AWS::NoValue` (the
        property is then absent, as CloudFormation leaves it)."""
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return _NO_VALUE if arg == "AWS::NoValue" else self._ref(arg)
            if key == "Fn::GetAtt":
                return self.attrs[(arg[0], arg[1])]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self._resolve(if_true if self.condition(name) else if_false)
        # A NoValue member of a mapping or a list is left out of it.
        if isinstance(value, dict):
            return {k: v for k, v in ((k, self._resolve(v)) for k, v in value.items()) if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self._resolve(v) for v in value) if v is not _NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        """Whether a condition of the template's Conditions holds with the parameters at their defaults."""
        return self._holds(self.template.get("Conditions", {})[name])

    def _holds(self, expression: Any) -> bool:
        ((key, arg),) = expression.items()
        if key == "Fn::Equals":
            # CloudFormation compares the values as strings: a Number parameter's "0" equals a literal 0.
            left, right = (_as_text(self.resolve(v)) for v in arg)
            return left == right
        if key == "Fn::Not":
            return not self._holds(arg[0])
        if key == "Fn::And":
            return all(self._holds(v) for v in arg)
        if key == "Fn::Or":
            return any(self._holds(v) for v in arg)
        if key in ("Condition", "Fn::Condition"):  # the long form, and what the loader makes of `!Condition`
            return self.condition(arg)
        raise ValueError(f"not a condition function: {key}")

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": STACK,
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.refs:
            return self.refs[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            return str(parameter.get("Default", ""))
        raise KeyError(f"template reference {name} is not created locally")

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in extra:
                return str(self.resolve(extra[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attr = name.split(".", 1)
                return self.attrs[(logical, attr)]
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def of_type(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical, resource in self.template["Resources"].items():
            if resource["Type"] == kind:
                yield logical, resource.get("Properties", {})

    def function_environment(self, public_base_url: str) -> dict[str, str]:
        """The functions' environment as the template sets it, plus what only the local stack knows."""
        env = self.template["Globals"]["Function"]["Environment"]["Variables"]
        # An empty variable is one the template declares only for `sam local invoke` to fill, or a parameter
        # left at an empty default: here neither may blank the local stack's own environment (AWS_ENDPOINT_URL
        # above all), whichever way it came to be empty.
        resolved = {k: text for k, v in env.items() if (text := str(self.resolve(v))) != ""}
        # The operator's choices that a local run (or a test) may set in its own environment instead.
        resolved.update({k: os.environ[k] for k in OPERATOR_CHOICES if k in os.environ})
        resolved.update(
            I2V_PUBLIC_BASE_URL=public_base_url,
            I2V_ALLOW_PRIVATE_URLS="true",  # simulators and moto live on loopback
            I2V_DEFAULT_PROVIDERS=os.environ.get("I2V_DEFAULT_PROVIDERS", "local"),
            POWERTOOLS_TRACE_DISABLED="true",
            POWERTOOLS_METRICS_DISABLED="true",  # EMF lines on stdout are for CloudWatch, not a terminal
            I2V_DELIVERY_BACKOFF_SECONDS="1",  # webhook retries in seconds, not minutes
            POWERTOOLS_METRICS_NAMESPACE="I2vGatewayLocal",
        )
        return resolved


_NO_VALUE = object()  # what `Ref: AWS::NoValue` resolves to until `resolve` leaves it out


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


OPERATOR_CHOICES = ("I2V_PRICES", "I2V_ROUTING", "I2V_ALLOW_UNPRICED_UNDER_BUDGET")


def provision(
    endpoint: str, public_base_url: str = "", template: dict[str, Any] | None = None
) -> LocalResources:
    """Create every stateful resource of the template in the AWS at `endpoint` (moto)."""
    res = LocalResources(template or load_template())
    kwargs: dict[str, Any] = {"endpoint_url": endpoint, "region_name": REGION}
    # Typed as Any: these calls take CloudFormation-shaped data, which the stubs' TypedDicts cannot describe.
    sqs: Any = boto3.client("sqs", **kwargs)
    # Dead-letter queues first: the others name them in their redrive policy.
    queues = sorted(res.of_type("AWS::SQS::Queue"), key=lambda item: "RedrivePolicy" in item[1])
    for logical, props in queues:
        attributes: dict[str, str] = {
            k: str(res.resolve(props[k]))
            for k in ("VisibilityTimeout", "MessageRetentionPeriod")
            if k in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(res.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=f"{STACK}-{logical}", Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        res.refs[logical] = url
        res.attrs[(logical, "Arn")] = arn
        res.attrs[(logical, "QueueName")] = f"{STACK}-{logical}"

    dynamodb = boto3.client("dynamodb", **kwargs)
    for logical, props in res.of_type("AWS::DynamoDB::Table"):
        name = f"{STACK}-{logical}"
        dynamodb.create_table(
            TableName=name,
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
            BillingMode=props["BillingMode"],
            # CloudFormation says SSEEnabled where the API says Enabled.
            SSESpecification={"Enabled": bool(props.get("SSESpecification", {}).get("SSEEnabled"))},
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        res.refs[logical] = name

    s3: Any = boto3.client("s3", **kwargs)
    for logical, props in res.of_type("AWS::S3::Bucket"):
        name = res.resolve(props["BucketName"])
        s3.create_bucket(Bucket=name)
        res.refs[logical] = name
        if "BucketEncryption" in props:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        cors_rules = res.resolve(props.get("CorsConfiguration", {})).get("CorsRules", [])
        if cors_rules:
            s3.put_bucket_cors(
                Bucket=name,
                CORSConfiguration={"CORSRules": [_local_cors_rule(r, public_base_url) for r in cors_rules]},
            )
        notifications = res.resolve(props.get("NotificationConfiguration", {}))
        queue_configs = [
            {
                "QueueArn": q["Queue"],
                "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
            }
            for q in notifications.get("QueueConfigurations", [])
        ]
        if queue_configs:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": queue_configs}
            )

    events = boto3.client("events", **kwargs)
    for logical, props in res.of_type("AWS::Events::EventBus"):
        name = res.resolve(props["Name"])
        events.create_event_bus(Name=name)
        res.refs[logical] = name

    secretsmanager = boto3.client("secretsmanager", **kwargs)
    for logical, props in res.of_type("AWS::SecretsManager::Secret"):
        value = props.get("SecretString") or secrets.token_urlsafe(36)  # as GenerateSecretString would
        created = secretsmanager.create_secret(Name=f"{STACK}-{logical}", SecretString=value)
        res.refs[logical] = created["ARN"]

    ssm = boto3.client("ssm", **kwargs)
    for logical, props in res.of_type("AWS::SSM::Parameter"):
        name = res.resolve(props["Name"])
        ssm.put_parameter(
            Name=name, Type="String", Value=public_base_url or "http://127.0.0.1:3000", Overwrite=True
        )
        res.refs[logical] = name
    return res


def _local_cors_rule(rule: dict[str, Any], public_base_url: str) -> dict[str, Any]:
    """A template CORS rule in the API's shape (CloudFormation's MaxAge is MaxAgeSeconds). Its origins name
    the deployed API's; here the API is the local runner, so the runner's origin takes their place (by
    either loopback name a browser may be pointed at)."""
    names = {"Id": "ID", "AllowedMethods": "AllowedMethods", "AllowedHeaders": "AllowedHeaders",
             "ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}  # fmt: skip
    converted = {names[k]: v for k, v in rule.items() if k in names}
    base = urlsplit(public_base_url or "http://127.0.0.1:3000")
    hosts = {base.hostname, "localhost"} if base.hostname == "127.0.0.1" else {base.hostname}
    port = f":{base.port}" if base.port else ""
    converted["AllowedOrigins"] = sorted(f"{base.scheme}://{host}{port}" for host in hosts)
    return converted


_serialized = threading.Event()
_ITEM_CALLS = ("get_item", "query", "put_item", "update_item", "delete_item", "transact_write_items")


def serialize_item_writes() -> None:
    """Make moto's DynamoDB as atomic per item as DynamoDB.

    moto's server answers on threads and checks a ConditionExpression, then applies the write, with no lock
    between the two: two writers racing on one item can both pass the check (measured on moto 5.2.5: four
    threads racing a conditional SET on one item had two winners in 12 rounds of 1000). DynamoDB serialises
    the writes to an item, and the gateway's leases and conditional moves rely on that, so the local stack
    runs moto's item reads and writes one at a time (moto runs in this process).
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item

    if _serialized.is_set():
        return
    _serialized.set()
    lock = threading.RLock()

    def serialized(call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return call(self, *args, **kwargs)

        return run

    setattr(  # noqa: B010 - a method replaced on moto's class, as below
        DynamoDBBackend, "transact_write_items", _rolling_back_items(DynamoDBBackend.transact_write_items)
    )
    for name in _ITEM_CALLS:
        setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name)))
    # The answer to an UpdateItem (ReturnValues) is the item turned to JSON after the call returns, outside
    # that lock: a write to the same item meanwhile broke it ("dictionary changed size during iteration",
    # a 500 that botocore retries, applying the update twice; seen twice in P8 at 2,000 images).
    Item.to_json = serialized(Item.to_json)  # type: ignore[method-assign]


def _rolling_back_items(whole_tables: Callable[..., Any]) -> Callable[..., Any]:
    """TransactWriteItems that keeps a copy of each item it writes, not of each table it names.

    moto keeps a deep copy of every table a transaction names, to put back if one write is refused: with a
    few thousand tasks in the table each transaction took ~140 ms (measured on moto 5.2.6), and a capacity
    burst makes three a task. This applies the writes one by one through moto's own item calls (each checks
    its condition, as moto's transaction does), and if any is refused puts back the items as they were and
    answers the cancellation reasons, one per write, as DynamoDB does. What this does not cover (more than
    one write to an item, ConditionCheck) goes to moto's own. It runs under the item lock, like every write.
    """
    import copy

    from moto.dynamodb.exceptions import ConditionalCheckFailed, TransactionCanceledException

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
        writes = []
        for entry in transact_items:
            ((kind, op),) = entry.items() if len(entry) == 1 else (("", {}),)
            table = self.tables.get(op.get("TableName"))
            if kind not in ("Put", "Update", "Delete") or table is None:
                whole_tables(self, transact_items)
                return
            named = op["Item"] if kind == "Put" else op["Key"]
            key = {k: named[k] for k in (table.hash_key_attr, table.range_key_attr) if k and k in named}
            writes.append((kind, op, key))
        keys = [json.dumps([op["TableName"], key], sort_keys=True) for _, op, key in writes]
        if len(transact_items) > 100 or len(set(keys)) < len(keys):
            whole_tables(self, transact_items)
            return
        before = [
            (op["TableName"], key, copy.deepcopy(self.get_item(op["TableName"], key)))
            for _, op, key in writes
        ]
        reasons: list[tuple[str | None, str | None, None]] = []
        for kind, op, key in writes:
            conditions = {
                "condition_expression": op.get("ConditionExpression"),
                "expression_attribute_names": op.get("ExpressionAttributeNames"),
                "expression_attribute_values": op.get("ExpressionAttributeValues"),
            }
            try:
                if kind == "Put":
                    self.put_item(op["TableName"], op["Item"], **conditions)
                elif kind == "Update":
                    self.update_item(
                        op["TableName"], key, update_expression=op["UpdateExpression"], **conditions
                    )
                else:
                    self.delete_item(op["TableName"], key, **conditions)
                reasons.append((None, None, None))
            except ConditionalCheckFailed as exc:
                reasons.append(("ConditionalCheckFailed", str(exc.message), None))
            except Exception as exc:
                reasons.append((type(exc).__name__, str(exc), None))
        if any(code is not None for code, _, _ in reasons):
            for name, key, item in reversed(before):
                if item is None:
                    self.delete_item(name, key)
                else:
                    self.put_item(name, item.to_json()["Attributes"])
            raise TransactionCanceledException(reasons)
        return None

    return functools.wraps(whole_tables)(transact)


@contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """moto's threaded server on loopback (a free port by default); yields its endpoint URL.

    moto keeps its state per process, not per server: call `reset` before reusing one.
    """
    import logging

    from moto.moto_server import werkzeug_app
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per AWS call drowns everything else
    serialize_item_writes()
    # moto's server answers every CORS preflight for any origin (flask-cors on each service) unless told not
    # to; S3 answers from the bucket's CORS rules alone. Off, a browser upload works locally only if the
    # template's rule allows it. moto reads the flag when a service's app is first built, after this.
    werkzeug_app.DISABLE_GLOBAL_CORS = True  # type: ignore[attr-defined]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def point_boto3_at(endpoint: str) -> None:
    """Every boto3 client in this process (handlers included) talks to the local endpoint."""
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )


def reset(endpoint: str) -> None:
    """Forget every resource in the moto server at `endpoint` (moto's own reset API)."""
    import httpx

    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
