"""Tenants are short slugs, so neither a key prefix nor a record key can be shared between two of them; an
s3:// reference names one of the caller's own objects, however its path is spelt."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from i2v.budgets import period_of
from i2v.records import Records
from i2v.runtime import Runtime
from i2v_cli import main
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.support import api_call

BAD_TENANTS = ["acme#x", "a/b", "Acme", "a", "-acme", "acme_x", "", "a" * 40, "acme x", "été"]


@pytest.mark.parametrize("name", BAD_TENANTS)
def test_a_key_for_a_tenant_that_is_not_a_short_slug_is_refused_and_nothing_is_stored(
    rt: Runtime, aws: LocalResources, name: str
) -> None:
    with pytest.raises(ValueError, match="is not a valid name: 2-39 characters of a-z, 0-9 and '-'"):
        rt.records.put_api_key("refused-key", name)
    assert rt.records.tenant_for_key("refused-key") is None
    assert not rt.records.tenant_exists(name)


def test_a_key_makes_its_tenant_known(rt: Runtime, aws: LocalResources) -> None:
    assert not rt.records.tenant_exists("acme-2")
    rt.records.put_api_key("k1", "acme-2")
    rt.records.put_api_key("k2", "acme-2")  # a second key for the same tenant
    assert rt.records.tenant_exists("acme-2")
    assert rt.records.tenant_for_key("k1") == rt.records.tenant_for_key("k2") == "acme-2"


@pytest.mark.parametrize("name", ["acme#x", "a/b"])
def test_cli_keys_create_refuses_a_bad_tenant_name(
    rt: Runtime, aws: LocalResources, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", name]) == 2  # a usage error: nothing was created
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"i2v: tenant {name!r} is not a valid name: 2-39 characters of a-z, 0-9 and '-'")
    assert not rt.records.tenant_exists(name)


def test_cli_keys_create_prints_a_key_for_a_good_tenant_name(
    rt: Runtime, aws: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "acme"]) == 0
    key = capsys.readouterr().out.strip()
    assert rt.records.tenant_for_key(key) == "acme"
    assert rt.records.tenant_exists("acme")


# Not an amount of USD: negative (a minus sign, even on 0), not a number, not finite (1e309 is inf), or
# more than any month's spend (and than DynamoDB can store: 131 digits).
BAD_BUDGETS = ["-5", "-0", "nan", "inf", "1e309", "abc", "2e9", "1" + "0" * 130]


def everything_in(rt: Runtime) -> list[dict[str, Any]]:
    """The whole table in key order: what a refused command must leave as it found it."""
    items: list[dict[str, Any]] = rt.records.table.resource.scan(ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: str(item["pk"]))


def one_line_refusal(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("amount", BAD_BUDGETS)
def test_keys_create_with_a_budget_that_is_not_an_amount_writes_nothing_and_exits_2(
    rt: Runtime, aws: LocalResources, amount: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = everything_in(rt)
    assert main(["keys", "create", "acme", "--budget", amount]) == 2
    err = one_line_refusal(capsys)
    assert err.startswith(f"i2v: --budget {amount[:40]!r} is not a budget: a budget is USD a month, a number")
    assert everything_in(rt) == before  # no key, no tenant, no budget
    assert not rt.records.tenant_exists("acme")


def test_keys_create_with_a_bad_tenant_and_a_bad_budget_writes_nothing_and_exits_2(
    rt: Runtime, aws: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    before = everything_in(rt)
    assert main(["keys", "create", "t", "--budget", "-5"]) == 2
    assert "i2v: tenant 't' is not a valid name" in one_line_refusal(capsys)
    assert everything_in(rt) == before


@pytest.fixture
def acme_at_3_usd(rt: Runtime) -> str:
    """Tenant `acme` with a key and a $3.00 budget, $0.50 of this month's held by a task in flight."""
    rt.records.put_api_key("acme-key", "acme")
    rt.records.set_budget("acme", 3.0)
    month = {"pk": f"BUDGET#acme#{period_of(rt.records.now())}", "limit": Decimal("3.0")}
    rt.records.table.resource.put_item(Item={**month, "remaining": Decimal("2.5")})
    return "acme"


@pytest.mark.parametrize("amount", BAD_BUDGETS)
def test_keys_budget_that_is_not_an_amount_writes_nothing_and_exits_2(
    rt: Runtime, aws: LocalResources, acme_at_3_usd: str, amount: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = everything_in(rt)
    assert main(["keys", "budget", acme_at_3_usd, amount]) == 2
    err = one_line_refusal(capsys)
    assert err.startswith(f"i2v: {amount[:40]!r} is not a budget: a budget is USD a month, a number")
    assert everything_in(rt) == before  # the budget and what remains of this month's are as they were
    assert rt.records.budget(acme_at_3_usd) == 3.0


def test_keys_budget_sets_an_amount_0_or_none(
    rt: Runtime, aws: LocalResources, acme_at_3_usd: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for amount, said, budget in (
        ("5", "$5.00 a month", 5.0),
        ("0", "$0.00 a month", 0.0),
        ("none", "no budget", None),
    ):
        assert main(["keys", "budget", acme_at_3_usd, amount]) == 0
        assert capsys.readouterr().out == f"acme: {said}\n"
        assert rt.records.budget(acme_at_3_usd) == budget


def test_keys_create_with_a_budget_stores_the_key_the_tenant_and_the_budget(
    rt: Runtime, aws: LocalResources, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "acme", "--budget", "12.50"]) == 0
    key = capsys.readouterr().out.strip()
    assert rt.records.tenant_for_key(key) == "acme"
    assert rt.records.budget("acme") == 12.5


def test_keys_create_whose_budget_cannot_be_stored_leaves_no_key_and_no_tenant(
    rt: Runtime, aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget is written first: a key is never left usable by a tenant without the budget asked for.
    def refused(self: Records, tenant: str, usd: float | None) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"}}, "UpdateItem")

    monkeypatch.setattr(Records, "set_budget", refused)
    before = everything_in(rt)
    with contextlib.suppress(ClientError):
        main(["keys", "create", "acme", "--budget", "5"])
    assert everything_in(rt) == before


def test_idempotency_keys_of_two_tenants_never_collide(
    rt: Runtime, tenant: str, local_sim: LocalSimulator, aws: LocalResources
) -> None:
    # IDEM#<tenant>#<key>: tenant `acme` with key `x#k1` once shared a record with tenant `acme#x` and key
    # `k1`. A tenant has no `#` now, so the record key's first `#` after the tenant ends the tenant's name.
    local_sim.faults.stall = True
    with pytest.raises(ValueError, match="is not a valid name"):
        rt.records.put_api_key("acme-hash-x-key", "acme#x")
    rt.records.put_api_key("acme-key", "acme")
    rt.records.put_api_key("acme-x-key", "acme-x")
    s3, bucket = boto3.client("s3"), aws.refs["Bucket"]
    image = s3.get_object(Bucket=bucket, Key="inputs/demo/sample.png")["Body"].read()
    created = {}
    for name, idem in (("acme", "x#k1"), ("acme-x", "k1"), ("acme-x", "x#k1"), ("acme", "k1")):
        s3.put_object(Bucket=bucket, Key=f"inputs/{name}/sample.png", Body=image)
        body = {"image_url": f"s3://{bucket}/inputs/{name}/sample.png", "duration": 2}
        headers = {"Idempotency-Key": idem}
        status, task = api_call("POST", "/v1/videos", body, key=f"{name}-key", headers=headers)
        assert status == 202, task
        created[(name, idem)] = task["id"]
    assert len(set(created.values())) == 4  # four tenant/key pairs, four tasks
    status, again = api_call(
        "POST",
        "/v1/videos",
        {"image_url": f"s3://{bucket}/inputs/acme/sample.png", "duration": 2},
        key="acme-key",
        headers={"Idempotency-Key": "x#k1"},
    )
    assert (status, again["id"]) == (202, created[("acme", "x#k1")])  # and each replays its own


B = "i2v-local-media-123456789012"  # the local bucket's name, as in the sample events


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{B}/inputs/demo/../beta/secret.png",
        f"s3://{B}/inputs/demo/./x/../../beta/secret.png",
        f"s3://{B}/inputs/demo/%2e%2e/beta/secret.png",
        f"s3://{B}/inputs/demo/%2E%2E/beta/secret.png",
        f"s3://{B}/inputs/demo/..%2fbeta/secret.png",
        f"s3://{B}/inputs/demo/%2e%2e%2fbeta%2fsecret.png",
        f"s3://{B}/inputs/demo//sample.png",
        f"s3://{B}//inputs/demo/sample.png",
        f"s3://{B}/inputs/demo/..\\beta\\secret.png",
        f"s3://{B}/inputs/demo/%5c..%5cbeta%5csecret.png",
        f"s3://{B}/inputs/demo/sample.png%ff",
        f"s3://{B}/inputs/demo/sample.png?x=1",
        f"s3://{B}/inputs/demo/sample.png#frag",
        "s3://[x/y",
    ],
)
@pytest.mark.parametrize("field", ["image_url", "last_frame_url"])
def test_an_s3_reference_that_is_not_plainly_one_of_the_tenants_own_keys_is_a_422_naming_the_field(
    rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator, url: str, field: str
) -> None:
    local_sim.faults.stall = True
    assert aws.refs["Bucket"] == B
    rt.records.put_api_key("beta-key", "beta")
    s3 = boto3.client("s3")
    image = s3.get_object(Bucket=B, Key="inputs/demo/sample.png")["Body"].read()
    s3.put_object(Bucket=B, Key="inputs/beta/secret.png", Body=image)
    body = {"image_url": url} if field == "image_url" else {"image_url": f"s3://{B}/inputs/demo/sample.png"}
    body[field] = url
    status, problem = api_call("POST", "/v1/videos", body)
    assert status == 422, problem
    assert [e["field"] for e in problem["errors"]] == [field]


def test_an_s3_reference_to_a_key_with_spaces_and_accents_is_read_percent_decoded(
    rt: Runtime, tenant: str, aws: LocalResources, local_sim: LocalSimulator
) -> None:
    local_sim.faults.stall = True
    s3 = boto3.client("s3")
    image = s3.get_object(Bucket=B, Key="inputs/demo/sample.png")["Body"].read()
    s3.put_object(Bucket=B, Key="inputs/demo/my été [1]+2.png", Body=image)
    url = f"s3://{B}/inputs/demo/my%20%C3%A9t%C3%A9%20%5B1%5D%2B2.png"
    status, task = api_call("POST", "/v1/videos", {"image_url": url, "duration": 2})
    assert status == 202, task
    assert task["request"]["image_url"] == url
