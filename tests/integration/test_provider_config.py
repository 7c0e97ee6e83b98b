"""Where provider endpoints and keys come from, and that keys never reach the logs."""

from __future__ import annotations

import json

import boto3
import pytest
from pydantic import ValidationError

from i2v.config import Settings
from i2v.lifecycle import Work
from i2v.models import Status
from i2v.providers import registry
from i2v.runtime import Runtime
from i2v.submit import submit
from i2v_local.aws import LocalResources
from i2v_local.sim_local import LocalSimulator
from tests.support import api_call, containers


def test_keys_come_from_the_secrets_manager_json_when_deployed(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["ProviderKeysSecret"], SecretString=json.dumps({"oxen": "oxen-key", "evolink": ""})
    )
    containers.clear()  # new containers read the new environment
    providers = registry.configured(Settings())  # type: ignore[call-arg]
    assert providers["oxen"].base_url == "https://hub.oxen.ai"  # type: ignore[attr-defined]
    assert providers["oxen"].api_key == "oxen-key"  # type: ignore[attr-defined]
    assert "evolink" not in providers  # an empty key is no key
    assert "dashscope" not in providers


def test_a_hosts_webhook_secret_comes_from_its_entry_in_the_keys_secret_or_its_variable(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = {"replicate": {"api_key": "r8-key", "webhook_secret": "whsec_c2VjcmV0"}, "freepik": "fp-key"}
    boto3.client("secretsmanager").put_secret_value(
        SecretId=aws.refs["ProviderKeysSecret"], SecretString=json.dumps(entries)
    )
    monkeypatch.setenv("I2V_FREEPIK_WEBHOOK_SECRET", "fp-secret")
    providers = registry.configured(Settings())  # type: ignore[call-arg]
    replicate, freepik = providers["replicate"], providers["freepik"]
    assert (replicate.api_key, replicate.webhook_secret) == ("r8-key", "whsec_c2VjcmV0")  # type: ignore[attr-defined]
    assert (freepik.api_key, freepik.webhook_secret) == ("fp-key", "fp-secret")  # type: ignore[attr-defined]


def test_base_url_setting_selects_another_host_or_region(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("I2V_DASHSCOPE_API_KEY", "sk-test")
    monkeypatch.setenv("I2V_DASHSCOPE_BASE_URL", "https://dashscope.aliyuncs.com")
    containers.clear()  # new containers read the new environment
    provider = registry.configured(Settings())["dashscope"]  # type: ignore[call-arg]
    assert provider.status("t-1").url == "https://dashscope.aliyuncs.com/api/v1/tasks/t-1"


def dashscope_url(monkeypatch: pytest.MonkeyPatch, settings: str | None, override: str | None = None) -> str:
    """Where a status query of DashScope goes, with I2V_PROVIDER_SETTINGS (and I2V_DASHSCOPE_BASE_URL) so."""
    monkeypatch.setenv("I2V_DASHSCOPE_API_KEY", "sk-test")
    for name, value in (("I2V_PROVIDER_SETTINGS", settings), ("I2V_DASHSCOPE_BASE_URL", override)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return str(registry.configured(Settings())["dashscope"].status("t-1").url)  # type: ignore[call-arg]


BEIJING = "https://dashscope.aliyuncs.com"
SINGAPORE = "https://dashscope-intl.aliyuncs.com"


def test_provider_settings_move_a_provider_to_another_region_without_a_template_edit(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = json.dumps({"dashscope": {"base_url": BEIJING}})
    assert dashscope_url(monkeypatch, settings) == f"{BEIJING}/api/v1/tasks/t-1"


@pytest.mark.parametrize(
    "settings",
    [
        None,
        "",
        "  ",
        "{}",
        '{"dashscope": {}}',
        '{"dashscope": {"base_url": ""}}',
        '{"oxen": {"base_url": "x"}}',
    ],
)
def test_an_empty_or_missing_provider_setting_is_the_providers_default(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch, settings: str | None
) -> None:
    assert dashscope_url(monkeypatch, settings) == f"{SINGAPORE}/api/v1/tasks/t-1"


def test_the_documented_base_url_variable_still_wins_over_provider_settings(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = json.dumps({"dashscope": {"base_url": "https://elsewhere.example"}})
    assert dashscope_url(monkeypatch, settings, override=BEIJING) == f"{BEIJING}/api/v1/tasks/t-1"


@pytest.mark.parametrize("settings", ['{"dashscope": {"baseurl": "x"}}', "not json", '["dashscope"]'])
def test_a_provider_setting_that_cannot_mean_anything_is_an_error_naming_it(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch, settings: str
) -> None:
    monkeypatch.setenv("I2V_PROVIDER_SETTINGS", settings)
    with pytest.raises(ValidationError, match="provider_settings"):
        Settings()  # type: ignore[call-arg]


def test_an_empty_prices_parameter_is_no_prices(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("I2V_PRICES", "")
    assert Settings().prices == {}  # type: ignore[call-arg]


def test_provider_without_a_key_is_not_routed_to(tenant: str, media_server: tuple[object, str]) -> None:
    status, problem = api_call(
        "POST", "/v1/videos", {"image_url": f"{media_server[1]}/sample.png", "provider": "novita"}
    )
    assert status == 422
    assert problem["errors"] == [{"field": "provider", "message": "novita is not configured on this gateway"}]


def test_provider_keys_never_reach_the_logs(
    monkeypatch: pytest.MonkeyPatch,
    tenant: str,
    local_sim: LocalSimulator,
    media_server: tuple[object, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = local_sim.api_key = "sk-never-log-this-0123456789"
    monkeypatch.setenv("I2V_LOCAL_API_KEY", secret)
    containers.clear()  # new containers read the new environment
    local_sim.faults.fail_submits = 99  # warnings with provider errors get logged
    body = {"image_url": f"{media_server[1]}/sample.png"}
    status, task = api_call("POST", "/v1/videos", body)
    assert status == 202
    assert task["status"] == "accepted"  # the provider was down: kept for the sweeper
    local_sim.faults.fail_submits = 0
    rt = Runtime.from_environment()  # a container that reads the new key
    claim = rt.tasks.claim(task["id"], Work.SUBMIT, 60, {Status.ACCEPTED})
    assert claim is not None
    assert claim.task is not None
    submit(rt, claim.task, claim)
    logged = [str(record.__dict__) for record in caplog.records]  # message and every structured field
    assert any("provider refused submit" in line for line in logged)  # something was logged about it...
    assert not [line for line in logged if secret in line]  # ...and the key was not part of it
