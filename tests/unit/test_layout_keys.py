"""Keys and s3:// URLs: a key is acted on as written or refused, never resolved into another object."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from i2v import layout
from i2v.models import RequestProblem

BUCKET = "media"


@given(st.text(min_size=1).filter(lambda k: layout.unsafe_path(k) is None))
def test_every_plain_key_survives_the_round_trip_through_its_s3_url(key: str) -> None:
    url = layout.s3_url(BUCKET, key)
    assert " " not in url
    assert layout.parse_s3_url(url, BUCKET) == key


@pytest.mark.parametrize(
    "url",
    [
        "s3://media/inputs/acme/../beta/secret.png",
        "s3://media/inputs/acme/./x/../../beta/x.png",
        "s3://media/inputs/acme/%2e%2e/beta/secret.png",
        "s3://media/inputs/acme/%2E%2e%2Fbeta/secret.png",
        "s3://media/inputs/acme//x.png",
        "s3://media/inputs/acme\\..\\beta\\x.png",
        "s3://media/inputs/acme/%5C..%5Cbeta/x.png",
        "s3://media/inputs/acme/x.png%ff",
        "s3://media/inputs/acme/x.png?versionId=1",
        "s3://media/inputs/acme/x.png#y",
        "s3://[x/y",
        "s3://other/inputs/acme/x.png",
        "s3://user@media/inputs/acme/x.png",
        "https://media/inputs/acme/x.png",
        "s3://media/",
    ],
)
def test_an_s3_url_that_does_not_plainly_name_a_key_in_our_bucket_is_a_422(url: str) -> None:
    with pytest.raises(RequestProblem) as refused:
        layout.parse_s3_url(url, BUCKET)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("tenant", "key", "owned"),
    [
        ("acme", "inputs/acme/20261125/x.png", True),
        ("acme", "uploads/acme/trips/my photo.png", True),
        ("acme", "inputs/acme/../beta/x.png", False),
        ("acme", "uploads/acme/./x.png", False),
        ("acme", "inputs/acme-x/x.png", False),
        ("acme", "outputs/acme/x.mp4", False),
        ("acme/x", "inputs/acme/x/y.png", False),  # not a tenant name: owns nothing
    ],
)
def test_a_tenant_owns_only_plain_keys_under_its_own_inputs_and_uploads(
    tenant: str, key: str, owned: bool
) -> None:
    assert layout.owned_by(tenant, key) is owned


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("uploads/acme/trips/my lake photo.jpg", layout.Upload("acme", None)),
        ("uploads/acme/été [1]+2.PNG", layout.Upload("acme", None)),
        ("uploads/acme/cat.json", None),
        ("uploads/acme/trips/", None),
        ("uploads/cat.png", None),
        ("outputs/acme/cat.png", None),
    ],
)
def test_what_a_drop_folder_key_is(key: str, expected: layout.Upload | None) -> None:
    assert layout.upload(key) == expected


@pytest.mark.parametrize(
    ("source", "output", "sidecar"),
    [
        ("uploads/acme/a/cat.png", "outputs/acme/a/cat-vid_1.mp4", "uploads/acme/a/cat.json"),
        (
            "uploads/acme/my.lake photo.jpeg",
            "outputs/acme/my.lake photo-vid_1.mp4",
            "uploads/acme/my.lake photo.json",
        ),
        ("uploads/acme/v1.0/été.webp", "outputs/acme/v1.0/été-vid_1.mp4", "uploads/acme/v1.0/été.json"),
    ],
)
def test_an_uploads_video_mirrors_its_key_under_its_task_id_and_its_sidecar_its_key(
    source: str, output: str, sidecar: str
) -> None:
    from i2v.models import Mode, Status, Task, VideoRequest

    task = Task(
        id="vid_1",
        tenant="acme",
        status=Status.ACCEPTED,
        request=VideoRequest(),
        mode=Mode.FIRST_FRAME,
        source="s3",
        source_key=source,
        created_at=0,
        updated_at=0,
        deadline_at=0,
    )
    assert layout.output_key(task) == output
    assert layout.sidecar_key(source) == sidecar


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Café au lait (1).png", "Cafe_au_lait_1_.png"),
        ("cat.png", "cat.png"),
        ("東京.png", ".png"),
        ("  spaced  out .jpg", "spaced_out_.jpg"),
        ("東京", "file"),
    ],
)
def test_an_uploaded_files_key_is_made_safe_from_its_own_name(name: str, safe: str) -> None:
    key = layout.input_key("acme", name)
    assert key.startswith("inputs/acme/")
    assert key.rsplit("/", 1)[1].split("-", 1)[1] == safe
    assert layout.unsafe_path(key) is None
