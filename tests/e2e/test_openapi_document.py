"""The one OpenAPI document, as served by the local stack: /docs shows the same document /openapi.json
serves, it is a valid OpenAPI 3.1 document, and a client that knows only its URL and a key can use the API
from it: the server, the security scheme, the request media type and schema, and the declared answers.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from openapi_spec_validator import validate
from playwright.sync_api import Browser, Route
from werkzeug.test import EnvironBuilder

from i2v_local.simulator import Faults, Simulator
from i2v_local.stack import LocalStack, api_event

pytestmark = pytest.mark.e2e


class DocumentClient:
    """A client made from the document alone (and a key): where requests go, how they authenticate, what
    media type and body they send, and what each answer may be, all read from the document."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.doc: dict[str, Any] = httpx.get(url).raise_for_status().json()

    @property
    def base(self) -> str:
        # OpenAPI 3.1: a relative server URL is relative to where the document is served.
        return urljoin(self.url, str(self.doc["servers"][0]["url"])).rstrip("/")

    def credentials(self) -> dict[str, str]:
        headers = {}
        for requirement in self.doc["security"]:
            for name in requirement:
                scheme = self.doc["components"]["securitySchemes"][name]
                assert (scheme["type"], scheme["scheme"]) == ("http", "bearer"), scheme
                headers["Authorization"] = f"Bearer {self.key}"
        return headers

    def schema(self, schema: dict[str, Any]) -> Draft202012Validator:
        # The document's components beside the schema, so its #/components/... references resolve.
        return Draft202012Validator({**schema, "components": self.doc["components"]})

    def parameter(self, method: str, path: str, name: str) -> Draft202012Validator:
        operation = self.doc["paths"][path][method.lower()]
        (declared,) = [p for p in operation.get("parameters", []) if p["name"] == name]
        return self.schema(declared["schema"])

    def body(self, method: str, path: str) -> tuple[str, Draft202012Validator]:
        (media_type, content), *_ = self.doc["paths"][path][method.lower()]["requestBody"]["content"].items()
        return media_type, self.schema(content["schema"])

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Send a request the document allows; fail unless the answer is one it declares."""
        operation = self.doc["paths"][path][method.lower()]
        headers = self.credentials()
        content = None
        if body is not None:
            media_type, schema = self.body(method, path)
            schema.validate(body)
            headers["Content-Type"] = media_type
            content = json.dumps(body)
        response = httpx.request(method, self.base + path, headers=headers, content=content)
        declared = operation["responses"][str(response.status_code)]
        media_type = response.headers["content-type"].split(";")[0]
        self.schema(declared["content"][media_type]["schema"]).validate(response.json())
        return response


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> DocumentClient:
    return DocumentClient(f"{stack.url}/openapi.json", stack.api_key)


@pytest.fixture
def stalled(sims: dict[str, Simulator]) -> None:
    # Accepted jobs stay queued: these tests are about what the API answers, not rendering.
    for simulator in sims.values():
        simulator.faults = Faults(stall=True)


def served_by_api_gateway(stack: LocalStack, method: str, path: str, stage: str = "Prod") -> dict[str, Any]:
    """What the API function answers to an API Gateway event for `method path` under `stage`, its headers
    folded into `headers`."""
    request = EnvironBuilder(method=method, path=path, base_url=f"{stack.url}/").get_request()
    result: dict[str, Any] = stack.invoke("ApiFunction", api_event(request, path, {}, stage=stage))
    multi = result.get("multiValueHeaders") or {}
    result["headers"] = {**(result.get("headers") or {}), **{k: ", ".join(v) for k, v in multi.items()}}
    return result


def test_docs_shows_the_document_openapi_json_serves(stack: LocalStack, client: DocumentClient) -> None:
    page = httpx.get(f"{stack.url}/docs").text
    # Swagger UI's page embeds the spec (`spec: {...},`) and names ?format=json as its URL.
    embedded, _ = json.JSONDecoder().raw_decode(page, page.index("spec: ") + len("spec: "))
    named = httpx.get(f"{stack.url}/docs", params={"format": "json"}).json()
    assert embedded == named == client.doc


def test_the_document_declares_the_bearer_key_for_every_operation(client: DocumentClient) -> None:
    assert client.doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert client.doc["security"] == [{"bearer": []}]
    assert not [op for item in client.doc["paths"].values() for op in item.values() if "security" in op]


def test_the_document_is_valid_openapi_3_1(client: DocumentClient) -> None:
    assert client.doc["openapi"].startswith("3.1")
    validate(client.doc)  # openapi-spec-validator: raises on any violation of the 3.1 schema


def test_a_client_made_from_the_document_lists_videos_and_gets_an_upload_ticket(
    stack: LocalStack, client: DocumentClient
) -> None:
    assert client.base == stack.url
    listed = client.call("GET", "/v1/videos")
    assert listed.status_code == 200
    _, upload = client.body("POST", "/v1/uploads")
    types = upload.schema["components"]["schemas"]["UploadRequest"]["properties"]["content_type"]["enum"]
    ticket = client.call("POST", "/v1/uploads", {"filename": "cat.png", "content_type": types[0]})
    assert ticket.status_code == 201
    assert ticket.json()["url"].startswith("s3://")


def test_the_server_is_where_the_document_is_served_with_or_without_a_stage(stack: LocalStack) -> None:
    # Behind API Gateway the stage is part of the URL; on the local runner (or a custom domain) it is not.
    # One relative server serves both; a server made from the event's stage would break one of them.
    answered = served_by_api_gateway(stack, "GET", "/openapi.json")
    assert answered["statusCode"] == 200
    (server,) = json.loads(answered["body"])["servers"]
    deployed = "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod/openapi.json"
    assert urljoin(deployed, server["url"]) == "https://abc123.execute-api.eu-west-1.amazonaws.com/Prod/"
    assert urljoin(f"{stack.url}/openapi.json", server["url"]) == f"{stack.url}/"


def test_the_document_refuses_an_empty_create_and_a_junk_cursor_as_the_api_does(
    client: DocumentClient, api: httpx.Client, image_url: str, stalled: None
) -> None:
    _, create = client.body("POST", "/v1/videos")
    cursor = client.parameter("GET", "/v1/videos", "cursor")
    assert not create.is_valid({})
    assert not cursor.is_valid("not a cursor!")
    for refused in (
        api.post("/v1/videos", json={}),
        api.get("/v1/videos", params={"cursor": "not a cursor!"}),
    ):
        assert (refused.status_code, refused.headers["content-type"]) == (422, "application/problem+json")
    # What the API does accept, the document accepts too.
    assert create.is_valid({"image_url": image_url})
    for _ in range(2):  # two, so a page of one has a next page
        assert api.post("/v1/videos", json={"image_url": image_url, "duration": 2}).status_code == 202
    next_cursor = api.get("/v1/videos", params={"limit": 1}).json()["next_cursor"]
    assert next_cursor
    assert cursor.is_valid(next_cursor)
    assert api.get("/v1/videos", params={"cursor": next_cursor}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/videos", "GET, POST"),
        ("PUT", "/v1/videos/vid_x", "GET"),
        ("GET", "/v1/uploads", "POST"),
        ("GET", "/v1/callbacks/local/vid_x", "POST"),
    ],
)
def test_an_undeclared_method_on_a_known_path_is_405_naming_the_allowed_ones(
    stack: LocalStack, method: str, path: str, allow: str
) -> None:
    # Over HTTP: template.yaml's ANY event on each path brings the method to the function at all.
    answered = httpx.request(method, f"{stack.url}{path}")
    assert answered.status_code == 405
    assert answered.headers["Allow"] == allow
    assert answered.headers["Content-Type"] == "application/problem+json"
    assert answered.json()["detail"] == f"{path} answers {allow}, not {method}"


def test_every_path_answers_exactly_the_methods_the_document_lists(
    stack: LocalStack, client: DocumentClient
) -> None:
    # The document and the API agree on methods: each other method on a documented path is a 405 whose
    # Allow names the document's methods for it.
    for path, item in client.doc["paths"].items():
        listed = sorted(m.upper() for m in item if m in ("get", "put", "post", "delete", "patch"))
        concrete = path.replace("{task_id}", "vid_x")
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - set(listed):
            answered = httpx.request(method, f"{stack.url}{concrete}")
            assert (answered.status_code, answered.headers.get("Allow")) == (405, ", ".join(listed)), (
                method,
                path,
            )


def test_an_unknown_path_is_still_404(stack: LocalStack) -> None:
    answered = served_by_api_gateway(stack, "DELETE", "/v1/nothing-here")
    assert (answered["statusCode"], answered["headers"]["Content-Type"]) == (404, "application/problem+json")


STAGE = "Prod"


def test_try_it_out_on_docs_behind_a_stage_calls_the_api_under_that_stage(
    stack: LocalStack, browser: Browser
) -> None:
    # API Gateway's stage, played by the browser: /Prod/... reaches the stack without the prefix, and any
    # request that misses the prefix would not reach API Gateway's stage at all.
    forwarded: list[tuple[str, str | None]] = []
    stray: list[str] = []

    def as_api_gateway(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if not path.startswith(f"/{STAGE}/"):
            stray.append(route.request.url)
            route.abort()
            return
        forwarded.append((path, route.request.headers.get("authorization")))
        unstaged = route.request.url.replace(f"/{STAGE}/", "/", 1)
        route.fulfill(response=route.fetch(url=unstaged))

    context = browser.new_context()
    page = context.new_page()
    page.route(f"{stack.url}/**", as_api_gateway)
    page.goto(f"{stack.url}/{STAGE}/docs")
    page.click("button.authorize")
    page.fill(".modal-ux input", stack.api_key)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")
    page.click('.opblock-summary-path[data-path="/v1/providers"]')
    page.click("button.try-out__btn")
    page.click("button.execute")
    status = page.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=15_000)
    assert status.inner_text().strip() == "200"
    assert (f"/{STAGE}/v1/providers", f"Bearer {stack.api_key}") in forwarded
    assert not stray
    context.close()
