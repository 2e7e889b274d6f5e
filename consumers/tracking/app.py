"""The tracking service (FastAPI): customers' parcel look-ups, live updates (SSE) and tracking page,
the operations summary, ``/metrics`` and ``/healthz``; these read the Redis read model only. It also
serves the merchants' subscriptions API (``consumers/notifier/api.py``), which manages the notifier's
subscriptions in the same Redis.

Against enumeration: a look-up needs the parcel's destination postcode or a signed link token. An
unknown parcel, a wrong postcode, a wrong token and no credentials all get the same 404 body after
the same work (the parcel is always read and both checks always computed). Only a malformed
tracking number, which says nothing about any parcel, gets a distinct answer (422).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from consumers import metrics
from consumers.notifier.api import SubscriptionsApi
from consumers.read_model import (
    OPEN_SLA_KINDS,
    TRACKING_NUMBER_RULE,
    InvalidRecordError,
    Keys,
    normalize_tracking_number,
    postcode_hash,
    public_view,
)
from consumers.settings import ConsumerSettings
from consumers.tracking import operations
from consumers.tracking.page_routes import install_page
from consumers.tracking.tokens import verify_token
from schemas.sla import SLA_RULES
from schemas.statuses import STATUSES

STAGE = "tracking"
NOT_FOUND_DETAIL = "parcel not found"
KEEP_ALIVE_SECONDS = 10.0


class Location(BaseModel):
    code: str
    kind: str
    country: str | None = None
    name: str | None = None


class EstimatedDelivery(BaseModel):
    earliest_ms: int = Field(description="UTC epoch milliseconds")
    latest_ms: int = Field(description="UTC epoch milliseconds")
    promised_ms: int | None = Field(None, description="The service level's promise, UTC epoch milliseconds")


class HistoryEntry(BaseModel):
    event_time_ms: int = Field(description="UTC epoch milliseconds")
    utc_offset_minutes: int = Field(description="Local offset of the scan, for display")
    status: str
    sub_status: str
    code: str = Field(description="Normalised scan code (schemas/scan_codes.py)")
    location: Location | None = None
    carrier: str
    reason: str | None = Field(None, description="The carrier's reason for an exception (failed attempt, customs hold)")


class Parcel(BaseModel):
    tracking_number: str
    version: int = Field(description="Grows with every applied scan; a client keeps the highest it has seen")
    status: str = Field(description="One of " + ", ".join(STATUSES))
    sub_status: str
    last_event_time_ms: int
    last_location: Location | None = None
    estimated_delivery: EstimatedDelivery | None = None
    on_time: bool
    delay_reasons: list[str] = Field(
        [], description="SLA rules the parcel has breached, why it runs late: " + ", ".join(SLA_RULES)
    )
    history: list[HistoryEntry] = Field(description="Applied scans in event-time order")


class ErrorBody(BaseModel):
    detail: str


class OperationsSummary(BaseModel):
    parcels_by_status: dict[str, int]
    total_parcels: int
    open_sla: dict[str, int] = Field(description="Parcels per open SLA flag 'rule:kind' (kind at_risk or breach)")
    open_breaches: int = Field(description="Open breaches over all rules (a parcel may breach several)")


PostcodeQuery = Annotated[
    str | None,
    Query(max_length=20, description="The parcel's destination postcode (spaces, dashes and case ignored)"),
]
TokenQuery = Annotated[
    str | None, Query(max_length=100, description="Signed link token (see `parcelstream tracking-link`)")
]
OperationsKey = Annotated[
    str | None,
    Security(APIKeyHeader(name="X-Operations-Key", auto_error=False, description="PARCELSTREAM_OPERATIONS_KEY")),
]
_NOT_FOUND_RESPONSE = {404: {"model": ErrorBody, "description": "Unknown parcel, or missing or wrong credentials"}}
_MALFORMED_RESPONSE = {422: {"model": ErrorBody, "description": f"Malformed tracking number: {TRACKING_NUMBER_RULE}"}}


def _client(request: Request) -> aioredis.Redis:
    return request.app.state.redis


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": NOT_FOUND_DETAIL}, status_code=404)


def _malformed() -> JSONResponse:
    return JSONResponse({"detail": f"malformed tracking number: expected {TRACKING_NUMBER_RULE}"}, status_code=422)


def create_app(settings: ConsumerSettings) -> FastAPI:
    keys = Keys(settings.redis_prefix)
    # Without a configured secret tokens never verify, but the check still costs the same.
    token_secret = settings.tracking_secret or secrets.token_hex(32)
    tokens_enabled = bool(settings.tracking_secret)
    subscriptions_api = SubscriptionsApi(settings.redis_url, settings.redis_prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        metrics.WORKER_UP.labels(STAGE).set(1)
        try:
            yield
        finally:
            metrics.WORKER_UP.labels(STAGE).set(0)
            await app.state.redis.aclose()
            subscriptions_api.close()

    app = FastAPI(
        title="parcelstream tracking",
        version="1.1.0",
        description=(
            "Parcel tracking for customers (postcode or signed link token) and operations (API key), "
            "and merchants' notification subscriptions (merchant API key, `parcelstream merchant-keys create`; "
            "see docs/webhooks.md). Tracking numbers are " + TRACKING_NUMBER_RULE + "."
        ),
        lifespan=lifespan,
    )

    async def authorised_fields(
        request: Request, tracking_number: str, postcode: str | None, token: str | None
    ) -> dict[bytes, bytes] | None:
        fields: dict[bytes, bytes] = await _client(request).hgetall(keys.parcel(tracking_number))
        stored_hash = fields.get(b"postcode_hash", b"").decode() or "0" * 64
        postcode_ok = hmac.compare_digest(postcode_hash(tracking_number, postcode or ""), stored_hash)
        token_ok = verify_token(token_secret, tracking_number, token or "")
        allowed = (postcode is not None and postcode_ok) or (tokens_enabled and token is not None and token_ok)
        return fields if fields and allowed else None

    @app.get(
        "/v1/parcels/{tracking_number}",
        response_model=Parcel,
        responses={**_NOT_FOUND_RESPONSE, **_MALFORMED_RESPONSE},
        summary="A parcel's status, history, last location and estimated delivery",
    )
    async def get_parcel(
        request: Request,
        tracking_number: str,
        postcode: PostcodeQuery = None,
        token: TokenQuery = None,
    ) -> Any:
        try:
            normalized = normalize_tracking_number(tracking_number)
        except InvalidRecordError:
            return _malformed()
        fields = await authorised_fields(request, normalized, postcode, token)
        if fields is None:
            return _not_found()
        return public_view({k.decode(): v for k, v in fields.items()})

    @app.get(
        "/v1/parcels/{tracking_number}/events",
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "`parcel` events carrying a Parcel (JSON)"},
            **_NOT_FOUND_RESPONSE,
            **_MALFORMED_RESPONSE,
        },
        response_class=StreamingResponse,
        summary="Live updates: server-sent events, the current Parcel first, then each change",
    )
    async def parcel_events(
        request: Request,
        tracking_number: str,
        token: TokenQuery = None,
        postcode: PostcodeQuery = None,
    ) -> Response:
        try:
            normalized = normalize_tracking_number(tracking_number)
        except InvalidRecordError:
            return _malformed()
        if await authorised_fields(request, normalized, postcode, token) is None:
            return _not_found()
        return StreamingResponse(
            _event_stream(_client(request), keys, normalized),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/operations/summary",
        response_model=OperationsSummary,
        responses={401: {"model": ErrorBody}, 503: {"model": ErrorBody}},
        summary="Parcels per status and open SLA flags (operations API key)",
    )
    async def operations_summary(request: Request, operations_key: OperationsKey = None) -> Any:
        if not settings.operations_key:
            return JSONResponse({"detail": "operations API disabled: set PARCELSTREAM_OPERATIONS_KEY"}, status_code=503)
        if operations_key is None or not hmac.compare_digest(operations_key.encode(), settings.operations_key.encode()):
            return JSONResponse({"detail": "missing or wrong X-Operations-Key"}, status_code=401)
        flags = [f"{rule}:{kind}" for rule in SLA_RULES for kind in OPEN_SLA_KINDS]
        async with _client(request).pipeline(transaction=False) as pipe:
            for status in STATUSES:
                pipe.zcard(keys.status_index(status))
            for flag in flags:
                pipe.zcard(keys.sla_index(flag))
            counts = await pipe.execute()
        by_status = dict(zip(STATUSES, counts[: len(STATUSES)], strict=True))
        open_sla = dict(zip(flags, counts[len(STATUSES) :], strict=True))
        return OperationsSummary(
            parcels_by_status=by_status,
            total_parcels=sum(by_status.values()),
            open_sla=open_sla,
            open_breaches=sum(n for flag, n in open_sla.items() if flag.endswith(":breach")),
        )

    async def load_view(request: Request, tracking_number: str, postcode: str | None, token: str | None) -> Any:
        fields = await authorised_fields(request, tracking_number, postcode, token)
        return None if fields is None else public_view({k.decode(): v for k, v in fields.items()})

    subscriptions_api.install(app)
    install_page(app, load_view)
    operations.install(app, settings)
    _add_page_and_service_routes(app)

    return app


def _add_page_and_service_routes(app: FastAPI) -> None:
    """The service endpoints (the tracking page's routes: ``page_routes.py``)."""

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/healthz", responses={503: {"model": ErrorBody}}, summary="200 when Redis answers")
    async def healthz(request: Request) -> Any:
        try:
            await _client(request).ping()
        except aioredis.RedisError as error:
            return JSONResponse({"detail": f"Redis does not answer: {error}"}, status_code=503)
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _event_stream(redis_client: aioredis.Redis, keys: Keys, tracking_number: str) -> AsyncIterator[str]:
    pubsub = redis_client.pubsub()
    try:
        # Subscribe before reading the current state, so no change falls in between.
        await pubsub.subscribe(keys.channel(tracking_number))
        fields = await redis_client.hgetall(keys.parcel(tracking_number))
        if fields:
            yield _sse(json.dumps(public_view({k.decode(): v for k, v in fields.items()}), separators=(",", ":")))
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEP_ALIVE_SECONDS)
            if message is None:
                yield ": keep-alive\n\n"
            elif message["type"] == "message":
                yield _sse(message["data"].decode())
    finally:
        await pubsub.aclose()


def _sse(data: str) -> str:
    # The projector publishes compact JSON: one line, as an SSE data field must be.
    return f"event: parcel\ndata: {data}\n\n"
