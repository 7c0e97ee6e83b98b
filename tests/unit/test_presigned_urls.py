"""Presigned URLs: what each one is signed for, checked by recomputing its signature as S3 would.

moto's server accepts a presigned request whatever its signature, key, date or expiry, so the local stack
proves none of this: these tests read the URLs themselves. A URL is checked the way S3 checks one: the
signature is recomputed with botocore's own SigV4 query signer (canonical request, string to sign, signing
key) from the request as it arrives (method, path, the headers named in X-Amz-SignedHeaders, the query
string minus X-Amz-Signature) and compared with the one in the URL. Signing uses a fixed clock and fake
credentials; nothing here touches the network.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from i2v import layout, presign, uploads
from i2v.config import Settings
from i2v.models import Mode, Output, Status, Task, UploadRequest, VideoRequest
from i2v.presign import presign_get, presign_put
from i2v.runtime import Runtime
from i2v.views import view

ACCESS_KEY = "AKIDEXAMPLEFAKE00000"
SECRET_KEY = "fake-secret-for-presign-tests"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET_KEY)
REGION = "us-east-1"
BUCKET = "media"
SIGNED_AT = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
SECONDS = 900
PUT_KEY = "inputs/acme/20250301/0123456789abcdef-Cafe_au_lait_1_.png"
GET_KEY = "outputs/acme/trips/hills at dawn+dusk (1).mp4"  # mirrored keys hold any name S3 can
PNG = {"Content-Type": "image/png"}


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore dates a signature with botocore.auth.get_current_datetime; i2v.presign dates its
    expires_at with datetime.now. Both read SIGNED_AT."""

    def botocore_now(remove_tzinfo: bool = True) -> datetime:
        return SIGNED_AT.replace(tzinfo=None) if remove_tzinfo else SIGNED_AT

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            assert tz is UTC
            return SIGNED_AT

    monkeypatch.setattr(botocore.auth, "get_current_datetime", botocore_now)
    monkeypatch.setattr(presign, "datetime", FrozenDatetime)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Runtime:
    """A Runtime whose S3 client is the one Runtime.s3 makes (its own Config), with fake credentials in
    us-east-1 and no endpoint, profile or config file from the environment (the local stack's included)."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/no-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/no-credentials")
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    monkeypatch.setattr(boto3, "client", session.client)
    return Runtime(settings=Settings(table_name="tasks", bucket_name=BUCKET, presign_seconds=600))


# -- reading and checking a presigned URL, as S3 does --


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def recomputed_signature(url: str, method: str, headers: Mapping[str, str]) -> str:
    """The signature S3 computes for `method url` sent with `headers`, by botocore's own signer."""
    parts = urlsplit(url)
    params = query(url)
    _, _day, region, service, _ = params["X-Amz-Credential"].split("/")
    signed = params["X-Amz-SignedHeaders"].split(";")
    unsigned_query = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Amz-Signature="))
    request = AWSRequest(
        method=method,
        url=urlunsplit(parts._replace(query=unsigned_query)),
        headers={name: value for name, value in headers.items() if name.lower() in signed},
    )
    request.context["timestamp"] = params["X-Amz-Date"]
    signer = S3SigV4QueryAuth(CREDENTIALS, service, region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    return str(signer.signature(string_to_sign, request))


def verifies(url: str, method: str, headers: Mapping[str, str] | None = None) -> bool:
    return hmac.compare_digest(
        recomputed_signature(url, method, headers or {}), query(url)["X-Amz-Signature"]
    )


def with_key(url: str, key: str, bucket: str = BUCKET) -> str:
    """The same signed query string sent for another object."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{bucket}/{key}"))


def with_param(url: str, name: str, value: str) -> str:
    """The URL with one query parameter's value changed, the rest as signed."""
    parts = urlsplit(url)
    pairs = [p if not p.startswith(f"{name}=") else f"{name}={value}" for p in parts.query.split("&")]
    assert pairs != parts.query.split("&"), f"no {name} in {url}"
    return urlunsplit(parts._replace(query="&".join(pairs)))


def object_path(url: str) -> str:
    return unquote(urlsplit(url).path)


# -- the helper's own output --


def test_links_last_the_fifteen_minutes_the_readme_promises() -> None:
    seconds = Settings.model_fields["presign_seconds"].default
    assert seconds == 15 * 60  # README, security model: upload tickets and output links last 15 minutes
    assert seconds <= 3600


def test_a_presigned_put_names_its_bucket_key_lifetime_and_signs_its_content_type(runtime: Runtime) -> None:
    url, _ = presign_put(runtime.s3, BUCKET, PUT_KEY, "image/png", SECONDS)
    parts, params = urlsplit(url), query(url)

    assert parts.scheme == "https"
    assert not parts.netloc.startswith(f"{BUCKET}.")  # path-style, as Runtime.s3 is configured
    assert object_path(url) == f"/{BUCKET}/{PUT_KEY}"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"] == f"{ACCESS_KEY}/20250301/{REGION}/s3/aws4_request"
    assert params["X-Amz-Date"] == "20250301T120000Z"
    assert params["X-Amz-Expires"] == str(SECONDS)
    assert params["X-Amz-SignedHeaders"].split(";") == ["content-type", "host"]
    assert "X-Amz-Security-Token" not in params


def test_a_presigned_get_names_its_bucket_key_and_lifetime(runtime: Runtime) -> None:
    url, _ = presign_get(runtime.s3, BUCKET, GET_KEY, SECONDS)
    parts, params = urlsplit(url), query(url)

    assert parts.scheme == "https"
    assert object_path(url) == f"/{BUCKET}/{GET_KEY}"
    assert params["X-Amz-Credential"] == f"{ACCESS_KEY}/20250301/{REGION}/s3/aws4_request"
    assert params["X-Amz-Date"] == "20250301T120000Z"
    assert params["X-Amz-Expires"] == str(SECONDS)
    assert params["X-Amz-SignedHeaders"] == "host"


@pytest.mark.parametrize("seconds", [60, 300, 900, 3600])
@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_expires_at_is_the_signing_time_plus_the_seconds_asked(
    runtime: Runtime, method: str, seconds: int
) -> None:
    if method == "PUT":
        url, expires_at = presign_put(runtime.s3, BUCKET, PUT_KEY, "image/png", seconds)
    else:
        url, expires_at = presign_get(runtime.s3, BUCKET, GET_KEY, seconds)

    assert query(url)["X-Amz-Expires"] == str(seconds)
    assert datetime.fromisoformat(expires_at) == SIGNED_AT + timedelta(seconds=seconds)
    assert expires_at == (SIGNED_AT + timedelta(seconds=seconds)).isoformat(timespec="seconds")


# -- the signature: valid for exactly what was asked, for nothing else --

Tamper = Callable[[str], tuple[str, str, Mapping[str, str]]]  # signed URL -> (url, method, headers) sent

PUT_MISUSES: dict[str, Tamper] = {
    "another_key": lambda u: (with_key(u, PUT_KEY.replace("Cafe", "Cafe2")), "PUT", PNG),
    "another_tenants_key": lambda u: (with_key(u, PUT_KEY.replace("acme", "beta")), "PUT", PNG),
    "an_output_key": lambda u: (with_key(u, "outputs/acme/x.mp4"), "PUT", PNG),
    "another_bucket": lambda u: (with_key(u, PUT_KEY, bucket="other"), "PUT", PNG),
    "another_content_type": lambda u: (u, "PUT", {"Content-Type": "text/html"}),
    "no_content_type": lambda u: (u, "PUT", {}),
    "a_get": lambda u: (u, "GET", {}),
    "a_longer_expiry": lambda u: (with_param(u, "X-Amz-Expires", "604800"), "PUT", PNG),
    "a_2020_date": lambda u: (with_param(u, "X-Amz-Date", "20200301T120000Z"), "PUT", PNG),
    "a_tampered_signature": lambda u: (with_param(u, "X-Amz-Signature", "0" * 64), "PUT", PNG),
}

GET_MISUSES: dict[str, Tamper] = {
    "another_key": lambda u: (with_key(u, GET_KEY.replace("dawn", "dusk")), "GET", {}),
    "another_tenants_key": lambda u: (with_key(u, GET_KEY.replace("acme", "beta")), "GET", {}),
    "another_bucket": lambda u: (with_key(u, GET_KEY, bucket="other"), "GET", {}),
    "a_put": lambda u: (u, "PUT", {}),
    "a_longer_expiry": lambda u: (with_param(u, "X-Amz-Expires", "604800"), "GET", {}),
    "a_2020_date": lambda u: (with_param(u, "X-Amz-Date", "20200301T120000Z"), "GET", {}),
}


def test_a_presigned_put_is_signed_for_its_one_key_and_content_type(runtime: Runtime) -> None:
    url, _ = presign_put(runtime.s3, BUCKET, PUT_KEY, "image/png", SECONDS)
    assert verifies(url, "PUT", PNG)


@pytest.mark.parametrize("misuse", PUT_MISUSES.values(), ids=PUT_MISUSES.keys())
def test_a_presigned_put_sent_for_anything_else_does_not_verify(runtime: Runtime, misuse: Tamper) -> None:
    url, _ = presign_put(runtime.s3, BUCKET, PUT_KEY, "image/png", SECONDS)
    assert not verifies(*misuse(url))


def test_a_presigned_get_is_signed_for_its_one_key(runtime: Runtime) -> None:
    url, _ = presign_get(runtime.s3, BUCKET, GET_KEY, SECONDS)
    assert verifies(url, "GET")


@pytest.mark.parametrize("misuse", GET_MISUSES.values(), ids=GET_MISUSES.keys())
def test_a_presigned_get_sent_for_anything_else_does_not_verify(runtime: Runtime, misuse: Tamper) -> None:
    url, _ = presign_get(runtime.s3, BUCKET, GET_KEY, SECONDS)
    assert not verifies(*misuse(url))


# -- where the gateway hands them out --


def test_an_upload_ticket_is_a_put_of_its_key_and_content_type_for_the_configured_seconds(
    runtime: Runtime,
) -> None:
    seconds = runtime.settings.presign_seconds
    ticket = uploads.ticket(
        runtime, "acme", UploadRequest(filename="Café au lait (1).png", content_type="image/png")
    )

    key = layout.parse_s3_url(ticket.url, BUCKET)
    assert key.startswith("inputs/acme/")
    assert object_path(ticket.put_url) == f"/{BUCKET}/{key}"
    assert query(ticket.put_url)["X-Amz-Expires"] == str(seconds)
    assert ticket.expires_at == (SIGNED_AT + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    assert verifies(ticket.put_url, "PUT", PNG)
    assert not verifies(ticket.put_url, "PUT", {"Content-Type": "image/jpeg"})


def test_an_output_url_is_a_get_of_the_output_for_the_configured_seconds(runtime: Runtime) -> None:
    seconds = runtime.settings.presign_seconds
    epoch = int(SIGNED_AT.timestamp())
    task = Task(
        id="task1",
        tenant="acme",
        status=Status.SUCCEEDED,
        request=VideoRequest(image_url=f"s3://{BUCKET}/{PUT_KEY}", prompt="the hills at dawn"),
        mode=Mode.FIRST_FRAME,
        output=Output(key=GET_KEY, size=1, sha256="0" * 64, content_type="video/mp4"),
        created_at=epoch,
        updated_at=epoch,
        deadline_at=epoch + 3600,
    )

    shown = view(runtime, task)

    assert shown.output_url is not None
    assert object_path(shown.output_url) == f"/{BUCKET}/{GET_KEY}"
    assert query(shown.output_url)["X-Amz-Expires"] == str(seconds)
    assert shown.expires_at == (SIGNED_AT + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    assert verifies(shown.output_url, "GET")
    assert not verifies(with_key(shown.output_url, "outputs/beta/task1.mp4"), "GET")
