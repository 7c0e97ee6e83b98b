"""The HTTP API: routes, auth and RFC 9457 problem bodies over the use cases.

Powertools validates bodies and parameters from the pydantic models and publishes the same models as the
OpenAPI document, so the docs and the checks cannot disagree. `create_app` makes one resolver per container:
a resolver holds the event it is resolving, so each concurrent invocation needs its own.

The use cases behind create, cancel, uploads and the webhook secret are imported on first use: a container
that only answers status queries (the commonest call) never loads probing, providers or webhook signing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from i2v import jsontext
from i2v.models import (
    MAX_BODY_CHARS,
    FieldError,
    HealthStatus,
    ProviderHealth,
    RequestProblem,
    TaskPage,
    TaskView,
    UploadRequest,
    UploadTicket,
    UsageReport,
    VideoRequest,
)
from i2v.pricing import price_per_second
from i2v.problems import PROBLEM, not_routed, problem, problem_for
from i2v.runtime import Runtime
from i2v.views import task_for_tenant, view

logger = Logger(child=True)


class WebhookSecret(BaseModel):
    secret: str = Field(description="Verify webhook-signature with it (Standard Webhooks, whsec_ form)")


class ProviderInfo(BaseModel):
    name: str
    modes: list[str]
    durations: list[int]
    resolutions: list[str]
    audio: bool = Field(description="Takes driving audio (audio_url)")
    callback: bool = Field(description="Calls the gateway back when a job ends (else the gateway polls it)")
    cancel: bool
    seed: bool = Field(description="Takes a seed")
    min_seed: int = Field(description="The lowest seed it takes")
    negative_prompt: bool = Field(description="Takes a negative_prompt")
    prompt_extend: bool = Field(description="Has the prompt_extend switch (without it, it cannot be off)")
    watermark: bool = Field(description="Has the watermark option")
    alpha: bool = Field(description="Takes images with an alpha channel (transparency)")
    last_frame_with_clip: bool = Field(description="Takes a last_frame_url with a video_url to continue")
    status: HealthStatus = Field(
        description=f"degraded: its last {ProviderHealth.DEGRADED_AFTER} submits or more failed; down: its"
        f" last {ProviderHealth.DOWN_AFTER} or more, the last within {ProviderHealth.WINDOW // 60} minutes,"
        f" or its circuit is open ({ProviderHealth.CIRCUIT_AFTER} faults in a row)"
        " (any tenant's submits; the gateway tries such a host last)"
    )
    price_per_second: float | None = Field(
        description="USD per second for the asked resolution and audio: the operator's price, else the one"
        " the host publishes; null: neither"
    )
    price_for_request: float | None = Field(description="price_per_second x the asked duration")
    max_in_flight: int = Field(description="The most jobs the gateway runs there at once (its setting)")
    effective_max_in_flight: int = Field(
        description="The cap in use now: lower than max_in_flight after the host answered 429, rising back"
    )
    max_submits_per_minute: int
    in_flight: int = Field(description="Jobs there now (any tenant's)")
    waiting: int = Field(description="Tasks waiting for a slot that may go there (any tenant's)")
    p50_seconds: float | None = Field(
        description="Median time from submit to done over its recent jobs (routing: fastest); null: none yet"
    )


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer of the API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="The fields concerned, if any")


DESCRIPTION = """One API over every host of the Wan 2.7 image-to-video model.

Every error is an RFC 9457 problem (`application/problem+json`). A method a path does not list answers
405 with an `Allow` header naming the ones it does."""
# Cursors are base64url (i2v.store; empty: the first page): anything else is refused as the document says.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
DATE: dict[str, Any] = {"format": "date"}  # i2v.usage refuses anything else (published, not checked here)

PROBLEMS = {
    401: "Missing or invalid API key",
    402: "Over your budget: the detail says what this request may cost and what remains",
    404: "No such task of yours",
    409: "The task has finished, or its video is being stored",
    413: "Request body too large",
    415: "The body is not application/json",
    422: "Request validation failed: `errors` names each field and its limit",
    503: "An input in the gateway's own storage could not be read in time: send the request again",
}


def answers(ok: int, description: str, *problems: int) -> dict[int, OpenAPIResponse]:
    """A route's declared answers: `ok` with the route's return model, and problem bodies."""
    declared: dict[int, OpenAPIResponse] = {ok: {"description": description}}
    for status in (401, 422, *problems):
        declared[status] = {"description": PROBLEMS[status], "content": {PROBLEM: {"model": Problem}}}
    return declared


def accepted(model: BaseModel, status: int = 200) -> Response[Any]:
    # The model itself, not its JSON: powertools validates it against the route's response type.
    return Response(status_code=status, content_type="application/json", body=model)


def json_body(text: str) -> Any:
    """A request body's JSON; a 422 naming `body` for every way it can fail to parse (i2v.jsontext)."""
    try:
        return jsontext.loads(text)
    except jsontext.NotJson as exc:
        raise RequestProblem.invalid("body", f"is not valid JSON: {exc}") from None


class KeyedJsonRequests(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, for an API whose callers have keys and whose bodies are JSON and small.

    The key is checked first: a request without a valid one is a 401 before its content type, size or body
    is looked at. (The routes outside the OpenAPI document, the document itself, /docs and /console, need no
    key, nor does a 404 or 405; every route in the document declares the bearer scheme.) Then any content
    type but JSON is refused before its parser runs (powertools' multipart parser raises a bare ValueError
    for a missing boundary), and so is a body longer than any valid request can be.
    """

    def __init__(self, authenticate: Callable[[], str]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.authenticate = authenticate

    def handler(self, app: Any, next_middleware: Any) -> Response[Any]:
        route = app.context["_route"]
        # A request no route takes comes through a route powertools makes for it (our 404/405, which say
        # only what the published document says): it needs no key either.
        ours = any(route is r for r in (*app._static_routes, *app._dynamic_routes))
        if ours and route.include_in_schema:
            app.append_context(tenant=self.authenticate())
        response: Response[Any] = super().handler(app, next_middleware)
        return response

    def _get_body(self, app: Any) -> Any:
        content_type = app.current_event.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in ("", "application/json"):
            raise RequestUnsupportedContentType(
                "Unsupported content type",
                errors=[{"type": "unsupported_content_type", "loc": ("body",), "msg": content_type}],
            )
        try:
            text = app.current_event.decoded_body or ""
        except ValueError:  # binascii.Error, UnicodeDecodeError: a base64 body that is not base64 of UTF-8
            raise RequestProblem.invalid("body", "is not base64-encoded UTF-8 text") from None
        if len(text) > MAX_BODY_CHARS:
            raise RequestProblem(
                413,
                "Request body too large",
                [FieldError(field="body", message=f"at most {MAX_BODY_CHARS} characters")],
            )
        return json_body(text) if text else None


def unsupported_media_type(exc: RequestUnsupportedContentType) -> Response[Any]:
    return problem(415, "Unsupported media type", "send the body as application/json")


def validation_problem(exc: RequestValidationError) -> Response[Any]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "header", "path")]
        message = str(err.get("msg", err.get("type", "invalid")))
        errors.append(FieldError(field=".".join(loc) or "body", message=message))
    # RequestProblem writes the detail from the errors, as for every other 422.
    return problem_for(RequestProblem(422, "Request validation failed", errors))


def describe(app: APIGatewayRestResolver) -> None:
    """The document's description: what /openapi.json and the spec /docs embeds are both made from.

    Called by those two routes, not at import: powertools' OpenAPI classes cost about 45 ms of a cold start
    (measured: `make bench`, P1), and the calls a container mostly answers never need them.
    """
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    app.configure_openapi(
        title="i2v-gateway",
        version="1",
        description=DESCRIPTION,
        # Relative to where the document is served (OpenAPI 3.1): behind API Gateway that URL carries the
        # stage (/Prod/openapi.json, so requests go to /Prod/v1/...), locally or on a custom domain it may
        # not. A server made from the event's stage (powertools' /docs default) is wrong wherever the stage
        # is not in the URL.
        servers=[Server(url=".", description="This API, where this document is served")],
        security_schemes={
            "bearer": HTTPBearer(bearerFormat="i2v API key", description="A key from `i2v keys create`")
        },
        security=[{"bearer": []}],
    )


def swagger_page(spec: str) -> str:
    """Swagger UI over `spec`, its script and style inlined from the bundle powertools ships (no CDN), as
    powertools' own enable_swagger serves it. That method is not used because it imports the document's
    classes when it is called, which is at import."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    bundle = Path(swagger_ui.__path__[0])
    script = (bundle / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    style = (bundle / "swagger-ui.min.css").read_text(encoding="utf-8")
    # `</` escaped: the spec is embedded in a <script>, which a `</script>` in a description would close.
    return generate_swagger_html(spec.replace("</", "<\\/"), script, style, "", None)


def create_app(rt: Runtime) -> APIGatewayRestResolver:
    """The API's resolver, its routes working on `rt`."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.exception_handler(RequestValidationError)(validation_problem)
    app.exception_handler(RequestUnsupportedContentType)(unsupported_media_type)
    app.exception_handler(RequestProblem)(problem_for)

    app.not_found(lambda _: not_routed(app))

    def authenticate() -> str:
        """The tenant of the bearer key; keys are stored only as hashes."""
        headers = app.current_event.headers
        scheme, _, key = (headers.get("Authorization") or headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise RequestProblem(401, "Missing API key", detail="send Authorization: Bearer <api key>")
        found = rt.records.tenant_for_key(key.strip())
        if found is None:
            raise RequestProblem(
                401,
                "Invalid API key",
                detail="no active key matches the one sent; `i2v keys create` makes one"
                " (locally, `make local` prints a working key)",
            )
        return found

    def tenant() -> str:
        """The caller's tenant, found by `authenticate` before the request was validated."""
        found: str = app.context["tenant"]
        return found

    # Powertools builds each route's middleware stack from this attribute, request validation first.
    app._request_validation_middleware = KeyedJsonRequests(authenticate)

    @app.post(
        "/v1/videos", summary="Animate an image", responses=answers(202, "Task accepted", 402, 413, 415, 503)
    )
    def create_video(
        request: VideoRequest,
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
    ) -> Response[TaskView]:
        from i2v.create import create

        task, created = create(rt, tenant(), request, idempotency_key=idempotency_key)
        logger.info(
            "task created" if created else "idempotent replay", task_id=task.id, status=task.status.value
        )
        return accepted(view(rt, task, with_queue=True), 202)

    @app.get(
        "/v1/videos/<task_id>",
        summary="A task, with a fresh output URL once succeeded",
        responses=answers(200, "The task", 404),
    )
    def get_video(task_id: str) -> Response[TaskView]:
        return accepted(view(rt, task_for_tenant(rt, tenant(), task_id), with_webhook=True, with_queue=True))

    @app.get("/v1/videos", summary="Your tasks, newest first", responses=answers(200, "A page of tasks"))
    def list_videos(
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[
            str | None,
            Query(
                max_length=2000,
                pattern=CURSOR_PATTERN,
                description="The next_cursor of the previous page, as given (opaque)",
            ),
        ] = None,
    ) -> Response[TaskPage]:
        tasks, next_cursor = rt.tasks.list_for_tenant(tenant(), limit, cursor)
        return accepted(TaskPage(items=[view(rt, t) for t in tasks], next_cursor=next_cursor))

    @app.post(
        "/v1/videos/<task_id>/cancel",
        summary="Cancel a task that has not finished",
        responses=answers(200, "The cancelled task", 404, 409),
    )
    def cancel_video(task_id: str) -> Response[TaskView]:
        from i2v.cancel import cancel

        return accepted(view(rt, cancel(rt, tenant(), task_id)))

    @app.post(
        "/v1/uploads",
        summary="A presigned PUT for a local file, and the URL to use it by",
        responses=answers(201, "Upload ticket", 413, 415),
    )
    def create_upload(upload: UploadRequest) -> Response[UploadTicket]:
        from i2v.uploads import ticket

        return accepted(ticket(rt, tenant(), upload), 201)

    @app.get(
        "/v1/webhooks/secret",
        summary="Your secret for verifying webhook signatures",
        responses=answers(200, "Your webhook secret"),
    )
    def webhook_secret() -> Response[WebhookSecret]:
        from i2v.delivery import tenant_secret

        secret = tenant_secret(rt.settings.secret("webhook_secret"), tenant())
        return accepted(WebhookSecret(secret=secret))

    @app.get(
        "/v1/providers",
        summary="Configured providers, what each can do, and how each is doing",
        responses=answers(200, "The providers"),
    )
    def list_providers(
        resolution: Annotated[Literal["720p", "1080p"], Query(description="For the prices")] = "1080p",
        duration: Annotated[int, Query(ge=2, le=15, description="Seconds, for price_for_request")] = 5,
        audio: Annotated[bool, Query(description="With driving audio, for the prices")] = False,
    ) -> list[ProviderInfo]:
        from i2v import capacity

        health = rt.records.provider_health(rt.providers)
        waiting = capacity.waiting_by_provider(rt)
        limits = {n: capacity.limits(rt, n) for n in rt.providers}
        price = {n: price_per_second(rt.settings, n, resolution, audio) for n in rt.providers}
        total = {n: None if p is None else round(p * duration, 6) for n, p in price.items()}
        return [
            ProviderInfo(
                name=name,
                modes=sorted(m.value for m in p.capabilities.modes),
                durations=sorted(p.capabilities.durations),
                resolutions=sorted(p.capabilities.resolutions),
                audio=p.capabilities.audio,
                callback=p.capabilities.callback,
                cancel=p.capabilities.cancel,
                seed=p.capabilities.seed,
                min_seed=p.capabilities.min_seed,
                negative_prompt=p.capabilities.negative_prompt,
                prompt_extend=p.capabilities.prompt_extend,
                watermark=p.capabilities.watermark,
                alpha=p.capabilities.alpha,
                last_frame_with_clip=p.capabilities.last_frame_with_clip,
                status=health[name].status(rt.now()),
                price_per_second=price[name],
                price_for_request=total[name],
                max_in_flight=limits[name].max_in_flight,
                effective_max_in_flight=capacity.effective_cap(rt, name, health[name]),
                max_submits_per_minute=limits[name].max_submits_per_minute,
                in_flight=health[name].in_flight,
                waiting=waiting.get(name, 0),
                p50_seconds=capacity.p50(health[name]),
            )
            for name, p in rt.providers.items()
        ]

    @app.get(
        "/v1/usage",
        summary="Your usage: tasks, seconds delivered, provider cost and your charge, per group",
        responses=answers(200, "Usage over the days asked (the last 30 by default)"),
    )
    def get_usage(
        start: Annotated[
            str | None,
            Query(alias="from", description="YYYY-MM-DD, UTC", json_schema_extra=DATE),
        ] = None,
        end: Annotated[
            str | None,
            Query(alias="to", description="YYYY-MM-DD, included", json_schema_extra=DATE),
        ] = None,
        group_by: Annotated[Literal["provider", "day", "status"], Query()] = "provider",
    ) -> Response[UsageReport]:
        from i2v.usage import report

        return accepted(report(rt, tenant(), start, end, group_by))

    def document() -> str:
        describe(app)  # a dataclass of settings: cheap to set again
        return app.get_openapi_json_schema()

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Response[Any]:
        return Response(status_code=200, content_type="application/json", body=document())

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response[Any]:
        if app.current_event.get_query_string_value("format") == "json":
            return openapi()
        return Response(status_code=200, content_type="text/html", body=swagger_page(document()))

    @app.get("/console", include_in_schema=False)
    def console() -> Response[Any]:
        # A static page; its data calls carry the key. Imported here: API containers rarely serve it.
        from i2v.console import page

        return page(rt)

    return app
