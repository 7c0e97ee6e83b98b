"""Which providers exist and how each is configured: adding a provider is one line in PROVIDERS.

A provider is routed to only when it has a key: I2V_<NAME>_API_KEY, or its entry in the JSON secret named by
I2V_PROVIDER_KEYS_ARN (deployed). I2V_<NAME>_BASE_URL overrides the host (e.g. DashScope's region).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from i2v.config import Settings
from i2v.providers import aimlapi, dashscope, evolink, novita, oxen
from i2v.providers.base import Provider
from i2v.providers.local import LocalProvider


@dataclass(frozen=True)
class Entry:
    build: Callable[[str, str], Provider]  # (base_url, api_key) -> adapter
    default_base_url: str = ""  # the public host; empty means the base URL must be configured


PROVIDERS: dict[str, Entry] = {
    "local": Entry(lambda url, key: LocalProvider(base_url=url, api_key=key)),
    "oxen": Entry(lambda url, key: oxen.OxenProvider(base_url=url, api_key=key), oxen.DEFAULT_BASE_URL),
    "novita": Entry(
        lambda url, key: novita.NovitaProvider(base_url=url, api_key=key), novita.DEFAULT_BASE_URL
    ),
    "highway": Entry(novita.highway, novita.HIGHWAY_BASE_URL),
    "evolink": Entry(
        lambda url, key: evolink.EvolinkProvider(base_url=url, api_key=key), evolink.DEFAULT_BASE_URL
    ),
    "aimlapi": Entry(
        lambda url, key: aimlapi.AimlapiProvider(base_url=url, api_key=key), aimlapi.DEFAULT_BASE_URL
    ),
    "dashscope": Entry(
        lambda url, key: dashscope.DashscopeProvider(base_url=url, api_key=key), dashscope.DEFAULT_BASE_URL
    ),
}


def configured(settings: Settings) -> dict[str, Provider]:
    """Providers that have a key and a base URL: only those can be routed to."""
    secret_keys = _secret_keys(settings)
    found: dict[str, Provider] = {}
    for name, entry in PROVIDERS.items():
        key = settings.provider_setting(name, "api_key") or secret_keys.get(name, "")
        base_url = settings.provider_setting(name, "base_url") or entry.default_base_url
        if key and base_url:
            found[name] = entry.build(base_url, key)
    return found


def _secret_keys(settings: Settings) -> dict[str, str]:
    """{provider: key} from Secrets Manager, cached by powertools; never logged."""
    if not settings.provider_keys_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    loaded = json.loads(str(parameters.get_secret(settings.provider_keys_arn, max_age=300)))
    return {str(k): str(v) for k, v in loaded.items() if v} if isinstance(loaded, dict) else {}
