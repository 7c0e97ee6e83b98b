"""Property: whatever a client sends to the API, the answer is never a 5xx (bad input is a 4xx problem).

Junk bodies are refused by validation; bodies built from real media, real provider names and plausible
options get past it to probing, routing and the submit, and must hold there too.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2v.runtime import Runtime
from i2v_local.aws import LocalResources
from i2v_local.sim_aimlapi import AimlapiSimulator
from i2v_local.sim_evolink import EvolinkSimulator
from i2v_local.sim_local import LocalSimulator
from tests.support import SAMPLE_KEY, api_call, containers

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


@pytest.fixture
def three_providers(tenant: str, local_sim: LocalSimulator) -> Iterator[None]:
    """aimlapi (first frame, 5/10/15 s), evolink (seeds from 1, no watermark) and local (anything), in that
    order, none rendering: routing has refusals to make and every host's submit is reached."""
    with AimlapiSimulator() as aimlapi, EvolinkSimulator() as evolink, pytest.MonkeyPatch.context() as env:
        for name, sim in (("aimlapi", aimlapi), ("evolink", evolink)):
            env.setenv(f"I2V_{name.upper()}_BASE_URL", sim.base_url)
            env.setenv(f"I2V_{name.upper()}_API_KEY", sim.api_key)
            sim.faults.stall = True
        env.setenv("I2V_DEFAULT_PROVIDERS", "aimlapi,evolink,local")
        # Room for every create at each (jobs never end here): each host's submit, not the queue, is reached.
        roomy = {
            name: {"max_in_flight": 1000, "max_submits_per_minute": 10_000} for name in ("aimlapi", "evolink")
        }
        env.setenv("I2V_PROVIDER_SETTINGS", json.dumps(roomy))
        local_sim.faults.stall = True
        containers.clear()  # new containers read this configuration
        yield
        containers.clear()


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` seven times in eight: a body has many fields, and most of them must be right to get far."""
    return st.sampled_from(range(8)).flatmap(lambda n: bad if n == 0 else good)


def create_bodies(media: str, bucket: str) -> st.SearchStrategy[dict[str, Any]]:
    """Request bodies that pass validation more often than not, with media that probe, or fail to."""
    image = mostly(
        st.sampled_from(
            [
                f"{media}/sample.png",
                f"{media}/last.png",
                f"{media}/alpha.png",
                f"s3://{bucket}/inputs/demo/sample.png",
            ]
        ),
        st.sampled_from(
            [
                f"{media}/tiny.png",  # smaller than the model's 240 px
                f"{media}/voice.wav",  # not an image
                f"{media}/missing.png",  # 404
                "http://127.0.0.1:9/closed.png",  # nothing listens
                f"s3://{bucket}/inputs/other/sample.png",  # another tenant's upload
                f"s3://{bucket}/inputs/demo/missing.png",
            ]
        ),
    )
    clip = mostly(st.just(f"{media}/clip.mp4"), st.sampled_from([f"{media}/long.mp4", f"{media}/sample.png"]))
    audio = mostly(
        st.just(f"{media}/voice.wav"), st.sampled_from([f"{media}/clip.mp4", f"{media}/missing.wav"])
    )
    from_image = st.fixed_dictionaries(
        {"image_url": image}, optional={"last_frame_url": image, "audio_url": audio}
    )
    from_clip = st.fixed_dictionaries({"video_url": clip}, optional={"last_frame_url": image})
    clashing = st.fixed_dictionaries({"image_url": image, "video_url": clip}) | st.fixed_dictionaries(
        {"video_url": clip, "audio_url": audio}
    )
    # Unknown, not configured, configured with limits, configured and capable of most requests.
    names = st.sampled_from(["sora", "oxen", "aimlapi", "evolink", "dashscope", "local"])
    options = st.fixed_dictionaries(
        {"provider": st.none() | names | st.lists(names, min_size=1, max_size=3)},
        optional={
            "prompt": st.text(max_size=30),
            "negative_prompt": st.text(max_size=20),
            "mode": mostly(
                st.none(), st.sampled_from(["first_frame", "first_last_frame", "video_continuation"])
            ),
            "resolution": mostly(st.sampled_from(["720p", "1080p", "720P"]), st.just("480p")),
            "duration": mostly(st.integers(2, 15) | st.sampled_from([5, 10, 15]), st.sampled_from([1, 16])),
            "seed": mostly(
                st.integers(0, 2_147_483_647) | st.sampled_from([0, 1]), st.sampled_from([-1, 2**31])
            ),
            "watermark": st.booleans(),
            "prompt_extend": st.booleans(),
            "webhook_url": mostly(
                st.sampled_from(["http://127.0.0.1:9/hook", "https://localhost:9/hook"]),
                st.just("ftp://x/hook"),
            ),
            # An empty key is left to test_an_empty_metadata_key_is_a_422_not_a_500.
            "metadata": st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3),
        },
    )
    return st.builds(lambda m, o: {**m, **o}, mostly(from_image | from_image | from_clip, clashing), options)


def outcome(status: int, answer: dict[str, Any]) -> str:
    """Where the request ended: accepted, or which step refused it."""
    if status == 202:
        return f"202 {answer['status']}"
    if answer.get("title") == "Media outside the model's limits" or any(
        "cannot be used" in e["message"] for e in answer.get("errors", [])
    ):
        return f"{status} probe"
    if answer.get("title") == "No provider can serve this request" or any(
        e["field"] == "provider" for e in answer.get("errors", [])
    ):
        return f"{status} routing"
    return f"{status} validation"


def test_create_bodies_that_reach_probing_routing_and_submit_get_a_202_or_a_4xx_never_a_500(
    aws: LocalResources, media_server: tuple[Path, str], three_providers: None
) -> None:
    seen: Counter[str] = Counter()
    rt = Runtime.from_environment()

    @settings(max_examples=150, deadline=None)
    @given(body=create_bodies(media_server[1], aws.refs["Bucket"]))
    def any_body(body: dict[str, Any]) -> None:
        status, answer = api_call("POST", "/v1/videos", body)
        assert status < 500, (body, answer)
        assert status in (202, 422), (body, answer)
        if status == 202:
            # Accepted: every slot of the providers it may use was taken (nothing here finishes a job): it
            # says where it stands in the queue, or a slot came free and it holds it, its send queued.
            assert answer["status"] in ("submitted", "failed", "accepted"), answer
            if answer["status"] == "accepted" and answer["queue"] is None:
                assert rt.tasks.require(answer["id"]).slot is not None, answer
            asked = body.get("provider")
            if answer["provider"] and asked:
                assert answer["provider"] in ([asked] if isinstance(asked, str) else asked)
        else:
            assert answer["status"] == status, answer
            assert answer["title"], answer
        seen[outcome(status, answer)] += 1

    any_body()
    # The bodies exercise what lies past validation, not only validation.
    total = sum(seen.values())
    assert seen["202 submitted"] >= total // 6, seen
    assert seen["422 probe"] >= total // 20, seen
    assert seen["422 routing"] >= total // 20, seen


def test_an_empty_metadata_key_is_a_422_not_a_500(
    tenant: str, local_sim: LocalSimulator, sample_url: str
) -> None:
    local_sim.faults.stall = True
    status, answer = api_call("POST", "/v1/videos", {"image_url": sample_url, "metadata": {"": "x"}})
    assert status == 422
    assert answer["errors"][0]["field"] == "metadata"


# -- bodies the parser cannot read, and keys checked before any body is ------------------------------

HUGE_INT = "1" + "0" * 5000  # past Python's 4,300-digit limit for int(str): json.loads raises ValueError
UNREADABLE_BODIES = {
    "an integer of 5,000 digits": (f'{{"seed": {HUGE_INT}}}', False),
    "nesting past the recursion limit": ("[" * 100_000 + "]" * 100_000, False),
    "base64 that is not UTF-8": ("//79", True),  # b"\xff\xfe\xfd"
    "base64 that is not base64": ("%%%", True),
    "not JSON at all": ("seed=1", False),
}
# JSON that decodes, to values no field takes: a 422 naming the field (checked before its key is, below).
ODD_VALUES = {
    "a float too large for a double": ('{"duration": 1e999999}', False),
    "a lone surrogate escape": ('{"prompt": "\\ud800", "image_url": "http://127.0.0.1:9/a.png"}', False),
}


@pytest.mark.parametrize("name", UNREADABLE_BODIES)
@pytest.mark.parametrize("path", ["/v1/videos", "/v1/uploads"])
def test_a_body_that_cannot_be_decoded_or_converted_is_a_422_naming_body(
    name: str, path: str, tenant: str
) -> None:
    text, base64_encoded = UNREADABLE_BODIES[name]
    status, answer = api_call("POST", path, raw_body=text, base64_encoded=base64_encoded)
    assert status == 422, answer
    assert answer["errors"][0]["field"] == "body", answer


@pytest.mark.parametrize("name", ODD_VALUES)
def test_json_with_values_no_field_takes_is_a_422_naming_the_field(name: str, tenant: str) -> None:
    text, _ = ODD_VALUES[name]
    status, answer = api_call("POST", "/v1/videos", raw_body=text)
    assert status == 422, answer
    assert answer["errors"][0]["field"] in ("duration", "prompt"), answer


@pytest.mark.parametrize("name", [*UNREADABLE_BODIES, *ODD_VALUES])
@pytest.mark.parametrize("key", [None, "not-a-key-of-anyone"])
def test_a_request_without_a_valid_key_is_a_401_before_its_body_is_read(
    name: str, key: str | None, tenant: str
) -> None:
    text, base64_encoded = {**UNREADABLE_BODIES, **ODD_VALUES}[name]
    status, answer = api_call("POST", "/v1/videos", raw_body=text, key=key, base64_encoded=base64_encoded)
    assert status == 401, answer
    # Nor its content type or size: a client without a key learns nothing about the request's shape.
    big = json.dumps({"prompt": "x" * 2_000_000})
    status, answer = api_call(
        "POST", "/v1/uploads", raw_body=big, key=key, headers={"Content-Type": "text/xml"}
    )
    assert status == 401, answer


KEYS = st.sampled_from([None, "not-a-key-of-anyone", SAMPLE_KEY])
JSONISH = st.one_of(
    st.text(max_size=60),
    st.from_regex(
        r"\{\"(seed|duration|prompt|metadata)\": ?-?[0-9eE.+\-\[\]{}\"\\u]{0,40}\}", fullmatch=True
    ),
    st.builds(lambda n: f'{{"seed": {"9" * n}}}', st.integers(4000, 6000)),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(500, 50_000)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/videos", "/v1/uploads"]),
    body=JSONISH | st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    base64_encoded=st.booleans(),
    key=KEYS,
)
def test_any_body_with_or_without_a_key_gets_a_4xx_or_2xx_never_a_500(
    path: str, body: str, base64_encoded: bool, key: str | None, tenant: str, local_sim: LocalSimulator
) -> None:
    local_sim.faults.stall = True
    status, answer = api_call("POST", path, raw_body=body, key=key, base64_encoded=base64_encoded)
    assert status < 500, (body, answer)
    if key != SAMPLE_KEY:
        assert status == 401, (body, answer)
    else:
        assert status != 401, (body, answer)


DATES = st.one_of(
    st.dates().map(str),
    st.from_regex(r"[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}", fullmatch=True),
    st.sampled_from(["0001-01-01", "0001-01-29", "9999-12-31", "20261201", "2026-W01-1", "2026-12-01T00:00"]),
    st.text(max_size=12),
)
NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["1e309", "nan", "-0", "9" * 5000]),
    st.text(max_size=8),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/v1/usage", "/v1/providers", "/v1/videos"]),
    query=st.fixed_dictionaries(
        {},
        optional={
            "from": DATES,
            "to": DATES,
            "group_by": st.sampled_from(["day", "status", "x"]),
            "limit": NUMBERS,
            "duration": NUMBERS,
            "resolution": st.sampled_from(["720p", "4k"]),
            "audio": st.sampled_from(["true", "2"]),
        },
    ),
    key=KEYS,
)
def test_any_query_with_or_without_a_key_gets_a_4xx_or_2xx_never_a_500(
    path: str, query: dict[str, str], key: str | None, tenant: str
) -> None:
    status, answer = api_call("GET", path, query=query or None, key=key)
    assert status < 500, (path, query, answer)
    assert status == 401 if key != SAMPLE_KEY else status != 401, (path, query, answer)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"to": "0001-01-01"}, "to"),
        ({"to": "0001-01-29"}, "to"),
        ({"from": "0001-01-01", "to": "2026-01-02"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"from": "20261201"}, "from"),
        ({"from": "2026-W01-1"}, "from"),
        ({"to": "2026-12-01T00:00"}, "to"),
        ({"from": "2026-02-30"}, "from"),
    ],
)
def test_a_usage_date_out_of_range_or_not_written_yyyy_mm_dd_is_a_422_naming_it(
    query: dict[str, str], field: str, tenant: str
) -> None:
    status, answer = api_call("GET", "/v1/usage", query=query)
    assert status == 422, answer
    assert answer["errors"][0]["field"] == field, answer
    assert "YYYY-MM-DD" in answer["errors"][0]["message"] or "between" in answer["errors"][0]["message"]
