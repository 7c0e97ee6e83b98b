"""Tenants are short slugs, so neither a key prefix nor a record key can be shared between two of them; an
s3:// reference names one of the caller's own objects, however its path is spelt."""

from __future__ import annotations

import boto3
import pytest

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
