"""Property: whatever a client sends to the API, the answer is never a 5xx (bad input is a 4xx problem)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v_local.sim_local import LocalSimulator
from tests.support import api_call

FIELDS = [
    "prompt",
    "negative_prompt",
    "image_url",
    "last_frame_url",
    "video_url",
    "audio_url",
    "mode",
    "resolution",
    "duration",
    "prompt_extend",
    "watermark",
    "seed",
    "provider",
    "webhook_url",
    "metadata",
    "unknown_field",
]
# URLs that pass the pattern but lead nowhere reachable here (a closed loopback port), plus junk.
URLS = st.sampled_from(
    ["http://127.0.0.1:9/a.png", "https://127.0.0.1:9/b.mp4", "s3://nope/x", "ftp://x/y", ""]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    URLS,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_create_body_gets_a_4xx_or_202_never_a_500(
    body: dict[str, Any], tenant: str, local_sim: LocalSimulator
) -> None:
    local_sim.faults.stall = True
    status, answer = api_call("POST", "/v1/videos", raw_body=json.dumps(body))
    assert status < 500, (body, answer)
    if status >= 400:
        assert answer["status"] == status
        assert answer["title"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/videos/{x}", "/v1/videos/{x}/cancel", "/v1/videos"]),
    x=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s),
    query=st.dictionaries(st.sampled_from(["limit", "cursor", "x"]), st.text(max_size=30), max_size=2),
)
def test_any_path_or_query_gets_a_4xx_or_2xx_never_a_500(
    path: str, x: str, query: dict[str, str], tenant: str
) -> None:
    method = "POST" if path.endswith("cancel") else "GET"
    status, answer = api_call(method, path.format(x=x), query=query or None)
    assert status < 500, (path, x, query, answer)
