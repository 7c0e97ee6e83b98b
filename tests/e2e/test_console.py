"""The console (GET /console) in a real headless browser (Debian's chromium) against the local stack.

The browser talks to the stack over loopback only: the page and the API on the runner, the presigned upload
and the video on moto's S3 (another origin, so the upload needs the bucket's CORS rule from template.yaml).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page

from i2v_local.stack import LocalStack
from tests.support import ROOT

pytestmark = pytest.mark.e2e

SAMPLE = ROOT / "assets" / "sample.png"
KEY_SLOT = "i2v.apiKey"
ENDED = """() => document.querySelector("#create-status.error") !== null
    || ["succeeded", "failed", "cancelled", "timed_out"].includes(
        document.querySelector(".task .status")?.textContent)"""


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage) on the console; fails the test on any page error
    or Content-Security-Policy violation."""
    context = browser.new_context()
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on(
        "console",
        lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    opened.goto(f"{stack.url}/console")
    yield opened
    context.close()
    assert problems == []


def use_key(page: Page, key: str) -> None:
    page.fill("#key", key)
    page.click("#key-form button[type=submit]")


def test_console_page_loads_without_a_key_under_a_strict_policy(stack: LocalStack) -> None:
    resp = httpx.get(f"{stack.url}/console")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.headers["x-content-type-options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in resp.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/=]+'", policy["script-src"])
    assert policy["connect-src"] == f"'self' {os.environ['AWS_ENDPOINT_URL']}"
    assert policy["media-src"] == os.environ["AWS_ENDPOINT_URL"]
    assert "unsafe" not in resp.headers["content-security-policy"]
    assert not re.search(r"\son[a-z]+\s*=", resp.text), "no inline event handlers"
    assert "innerHTML" not in resp.text


def test_task_created_from_the_page_finishes_and_its_video_plays(
    page: Page, stack: LocalStack, api: httpx.Client
) -> None:
    sent: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda req: sent.append((req.url, req.headers)))
    use_key(page, stack.api_key)
    prompt = "a <b>cat</b> turns its head"  # user text: must show as text, never as markup
    page.set_input_files("#image", str(SAMPLE))
    page.fill("#prompt", prompt)
    page.fill("#duration", "2")
    page.select_option("#resolution", "720p")
    page.click("#submit")

    # Until the task ends, or the page reports that creating it failed.
    page.wait_for_function(ENDED, timeout=45_000)
    assert page.locator("#create-status.error").count() == 0, page.text_content("#create-status")
    card = page.locator(".task").first
    assert card.locator(".status").text_content() == "succeeded", card.locator(".error-text").text_content()
    task_id = card.locator(".id").text_content()
    assert card.locator(".prompt").text_content() == prompt
    assert card.locator(".prompt b").count() == 0
    assert card.locator("progress").evaluate("p => p.value") == 100
    assert card.locator(".provider").text_content() == "provider: local"
    assert (card.locator(".cost").text_content() or "").startswith("cost: ")

    # The video (H.264 from the local renderer) decodes and plays: frames are decoded, and time moves.
    video = card.locator("video")
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "v => v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.3"
        " && v.getVideoPlaybackQuality().totalVideoFrames > 0",
        arg=video.element_handle(),
        timeout=15_000,
    )
    if shot := os.environ.get("I2V_CONSOLE_SCREENSHOT"):
        page.screenshot(path=shot, full_page=True)

    # The page made a real task of ours, from the uploaded image.
    view = api.get(f"/v1/videos/{task_id}").json()
    assert (view["status"], view["request"]["prompt"]) == ("succeeded", prompt)
    assert view["request"]["image_url"].startswith(f"s3://{stack.bucket}/inputs/")
    # The key went only to the API, only in the Authorization header.
    assert sent
    for url, headers in sent:
        assert stack.api_key not in url
        if "authorization" in headers:
            assert url.startswith(f"{stack.url}/")
            assert headers["authorization"] == f"Bearer {stack.api_key}"


def test_wrong_key_is_refused_with_a_clear_message(page: Page) -> None:
    use_key(page, "i2v_not_a_key")
    status = page.locator("#key-status")
    status.filter(has_text="refused").wait_for(timeout=10_000)
    assert "Invalid API key" in (status.text_content() or "")
    assert page.locator(".task").count() == 0
    assert page.evaluate(f"sessionStorage.getItem('{KEY_SLOT}')") is None


def test_key_is_kept_in_session_storage_only(page: Page, stack: LocalStack) -> None:
    use_key(page, stack.api_key)
    page.locator("#key-status").filter(has_text="Key in use").wait_for(timeout=10_000)
    assert page.evaluate(f"sessionStorage.getItem('{KEY_SLOT}')") == stack.api_key
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert stack.api_key not in page.url
    assert page.input_value("#key") == ""


def test_storage_answers_the_upload_preflight_for_the_console_origin_only(
    stack: LocalStack, api: httpx.Client
) -> None:
    ticket = api.post("/v1/uploads", json={"filename": "cat.png", "content_type": "image/png"}).json()

    def preflight(origin: str) -> httpx.Response:
        asked = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type"}
        return httpx.options(ticket["put_url"], headers={"Origin": origin, **asked})

    allowed = preflight(stack.url)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == stack.url
    assert allowed.headers["access-control-allow-methods"] == "PUT"
    assert "access-control-allow-origin" not in preflight("http://evil.example").headers
