"""Which providers exist and how each is configured.

Every module of this package that declares `PROVIDER` (an `i2v.providers.base.Declaration`) is a provider,
named as its module is: adding a host is adding its module, nothing here. A provider is routed to only when
it has a key: I2V_<NAME>_API_KEY, or its entry in the JSON secret named by I2V_PROVIDER_KEYS_ARN (deployed).
A host that signs its callbacks with a secret of the account's gets it the same two ways:
I2V_<NAME>_WEBHOOK_SECRET, or `webhook_secret` in its entry of that secret.
Its base URL is I2V_<NAME>_BASE_URL, else its `base_url` in I2V_PROVIDER_SETTINGS (the template's
ProviderSettings), else the host its module declares; an empty value is no value.
"""

from __future__ import annotations

import importlib
import json
import pkgutil

from aws_lambda_powertools import Logger

from i2v import providers
from i2v.config import ProviderOptions, Settings
from i2v.providers.base import Declaration, Provider

logger = Logger(child=True)


def declared() -> dict[str, Declaration]:
    """Every provider module's declaration, by name (the module's own: `sim_<name>` is its simulator)."""
    found: dict[str, Declaration] = {}
    for module in pkgutil.iter_modules(providers.__path__):
        declaration = getattr(
            importlib.import_module(f"{providers.__name__}.{module.name}"), "PROVIDER", None
        )
        if declaration is None:
            continue  # the shared modules: base, client, this one
        if not isinstance(declaration, Declaration) or declaration.name != module.name:
            raise TypeError(
                f"i2v.providers.{module.name}.PROVIDER must be a Declaration named {module.name!r}"
            )
        found[module.name] = declaration
    return found


PROVIDERS = declared()


def configured(settings: Settings) -> dict[str, Provider]:
    """Providers that have a key and a base URL: only those can be routed to."""
    secret_keys = _secret_keys(settings)
    unknown = sorted(set(settings.provider_settings) - set(PROVIDERS))
    if unknown:
        logger.warning(
            "I2V_PROVIDER_SETTINGS names providers this gateway does not have", extra={"names": unknown}
        )
    found: dict[str, Provider] = {}
    for name, declaration in PROVIDERS.items():
        stored = secret_keys.get(name, {})
        key = settings.provider_setting(name, "api_key") or stored.get("api_key", "")
        webhook_secret = settings.provider_setting(name, "webhook_secret") or stored.get("webhook_secret", "")
        base_url = (
            settings.provider_setting(name, "base_url")
            or settings.provider_settings.get(name, ProviderOptions()).base_url
            or declaration.default_base_url
        )
        if key and base_url:
            found[name] = declaration.build(base_url, key, webhook_secret)
    return found


def _secret_keys(settings: Settings) -> dict[str, dict[str, str]]:
    """{provider: {"api_key", "webhook_secret"}} from Secrets Manager, cached by powertools; never logged.
    The secret's JSON gives each provider its key as a string, or an object with `api_key` and, for a host
    that signs its callbacks with a secret of the account's, `webhook_secret`."""
    if not settings.provider_keys_arn:
        return {}
    from aws_lambda_powertools.utilities import parameters

    loaded = json.loads(str(parameters.get_secret(settings.provider_keys_arn, max_age=300)))
    if not isinstance(loaded, dict):
        return {}
    found: dict[str, dict[str, str]] = {}
    for name, value in loaded.items():
        entry = value if isinstance(value, dict) else {"api_key": value}
        found[str(name)] = {k: str(v) for k, v in entry.items() if k in ("api_key", "webhook_secret") and v}
    return found
