"""Which providers exist and how each is configured: adding a provider is one line here."""

from __future__ import annotations

from collections.abc import Callable

from i2v.config import Settings
from i2v.providers.base import Provider
from i2v.providers.local import LocalProvider

# name -> factory(base_url, api_key)
FACTORIES: dict[str, Callable[[str, str], Provider]] = {
    "local": lambda base_url, key: LocalProvider(base_url=base_url, api_key=key),
}


def configured(settings: Settings) -> dict[str, Provider]:
    """Providers that have a base URL and a key: only those can be routed to."""
    found: dict[str, Provider] = {}
    for name, factory in FACTORIES.items():
        base_url = settings.provider_setting(name, "base_url")
        key = settings.provider_setting(name, "api_key")
        if base_url and key:
            found[name] = factory(base_url, key)
    return found
