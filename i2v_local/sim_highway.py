"""Simulator for HighwayAPI (JieKou): Novita's wan2.7-i2v API word for word at another host
(https://docs.jiekou.ai/en/docs/models/reference-wan2.7-i2v).
Its docs mention no webhooks, so it sends none.
"""

from __future__ import annotations

from i2v_local.sim_novita import NovitaSimulator


class HighwaySimulator(NovitaSimulator):
    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key, render_scale, workers, name="highway", webhooks=False)


SIMULATOR = HighwaySimulator
