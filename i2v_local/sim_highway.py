"""Simulator for HighwayAPI (JieKou): Novita's wan2.7-i2v API word for word at another host
(https://docs.jiekou.ai/en/docs/models/reference-wan2.7-i2v).
Its docs mention no webhooks, so it sends none.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from i2v_local.sim_novita import NovitaSimulator
from i2v_local.simulator import Refusal, Simulator


class HighwaySimulator(NovitaSimulator):
    def __init__(self, api_key: str = "sim-key", render_scale: float = 1.0, workers: int = 1) -> None:
        super().__init__(api_key, render_scale, workers, name="highway", webhooks=False)

    def over_capacity(self, why: Refusal, retry_after: float) -> Response:
        # HighwayAPI's limits and error format are NOT FOUND (its page covers the model only), and Novita's
        # 429 is no fact about this host: not documented: the engine default.
        return Simulator.over_capacity(self, why, retry_after)


SIMULATOR = HighwaySimulator
