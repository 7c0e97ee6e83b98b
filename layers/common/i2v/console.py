"""GET /console: one static page (console.html beside this module) over the public API.

The page holds no secrets and needs no auth to load; everything it shows it fetches with the key the user
pastes (kept in the tab's sessionStorage). This module serves it under a Content-Security-Policy that runs
only the page's own inline script and style (by hash, so an edit to the page cannot go stale against it)
and lets it reach nothing but this API and the bucket's presigned URLs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from i2v.runtime import Runtime


@cache
def _page() -> tuple[str, str, str]:
    """The page, and the CSP sources of its one <script> and one <style>."""
    html = files("i2v").joinpath("console.html").read_text(encoding="utf-8")
    return html, _hash_of_only(html, "script"), _hash_of_only(html, "style")


def _hash_of_only(html: str, tag: str) -> str:
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    if len(blocks) != 1:
        raise ValueError(f"console.html must hold exactly one <{tag}> block, found {len(blocks)}")
    digest = hashlib.sha256(blocks[0].encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def storage_origin(rt: Runtime) -> str:
    """Where the presigned upload and video URLs point (S3, or the local endpoint): presigning is local
    computation, so this asks the same client the API presigns with, without calling anything."""
    url = rt.s3.generate_presigned_url(
        "get_object", Params={"Bucket": rt.settings.bucket_name, "Key": "console"}, ExpiresIn=60
    )
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(rt: Runtime) -> str:
    _, script, style = _page()
    storage = storage_origin(rt)
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script}",
            f"style-src {style}",
            f"connect-src 'self' {storage}",  # the API, and the presigned PUT
            f"media-src {storage}",  # <video src=presigned GET>
            "base-uri 'none'",
            "form-action 'none'",  # a form never submits (a key must not end up in a URL)
            "frame-ancestors 'none'",
        )
    )


def page(rt: Runtime) -> Response[Any]:
    html, _, _ = _page()
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            "Content-Security-Policy": content_security_policy(rt),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
