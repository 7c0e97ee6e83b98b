"""The `highway` provider: HighwayAPI (JieKou), which documents Novita's wan2.7-i2v schema word for word at
its own host, so it is Novita's adapter declared again. Its docs mention no webhook, so the gateway polls it
rather than send a field it may reject.
"""

from __future__ import annotations

from dataclasses import replace

from i2v.providers import novita
from i2v.providers.base import Declaration

DEFAULT_BASE_URL = "https://api.highwayapi.ai"

PROVIDER = Declaration(
    name="highway",
    adapter=novita.NovitaProvider,
    capabilities=replace(novita.CAPABILITIES, callback=False),
    default_base_url=DEFAULT_BASE_URL,
)
