"""The tracking service (FastAPI): customers' parcel look-ups, live updates (SSE) and tracking page,
the operations summary, ``/metrics`` and ``/healthz``; these read the Redis read model only (and a
parcel's entry on the movement board, ``consumers/movements.py``, to name its flight). It also
serves the merchants' subscriptions API (``consumers/notifier/api.py``), which manages the notifier's
subscriptions in the same Redis.

Against enumeration: a look-up needs the parcel's destination postcode or a signed link token
(``access.py``: only the postcode hash is read before deciding; failed look-ups are limited per
tracking number and per client, then only the signed link works). An unknown parcel, a wrong
postcode, a wrong token and no credentials all get the same 404 body after the same work. Only a
malformed tracking number, which says nothing about any parcel, gets a distinct answer (422).
Live updates share one Redis pub/sub connection per process, with caps (``live.py``). ``/metrics``
is served on the operations port (``parcelstream tracking --metrics-port``), never here.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from consumers import metrics
from consumers.movements import Keys as MovementKeys
from consumers.movements import customer_movement
from consumers.notifier.api import SubscriptionsApi
from consumers.read_model import (
    OPEN_SLA_KINDS,
    TRACKING_NUMBER_RULE,
    InvalidRecordError,
    Keys,
    normalize_tracking_number,
    public_view,
)
from consumers.settings import ConsumerSettings
from consumers.tracking import operations
from consumers.tracking.access import AccessControl, AccessPolicy, Outcome, client_address
from consumers.tracking.live import LiveHub, Reservation, StreamRefusedError
from consumers.tracking.page_routes import install_page
from schemas.sla import SLA_RULES
from schemas.statuses import STATUSES

log = logging.getLogger(__name__)
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


class EstimateWindow(BaseModel):
    earliest_ms: int = Field(description="UTC epoch milliseconds")
    latest_ms: int = Field(description="UTC epoch milliseconds")


class EstimateMove(BaseModel):
    """The latest move of the estimated window by more than the projector's threshold
    (PARCELSTREAM_ESTIMATE_MOVE_THRESHOLD_HOURS), and the scan that moved it."""

    at_ms: int = Field(description="Event time of the scan that moved the window, UTC epoch milliseconds")
    utc_offset_minutes: int = Field(description="Local offset of that scan, for display")
    from_: EstimateWindow = Field(alias="from", description="The window before")
    to: EstimateWindow = Field(description="The window after")
    direction: Literal["later", "earlier"] = Field(description="Where the window's midpoint went")
    status: str
    sub_status: str = Field(description="The step that moved it")
    code: str | None = Field(None, description="Normalised scan code of that step")
    location: Location | None = None


class HistoryEntry(BaseModel):
    event_time_ms: int = Field(description="UTC epoch milliseconds")
    utc_offset_minutes: int = Field(description="Local offset of the scan, for display")
    status: str
    sub_status: str
    code: str = Field(description="Normalised scan code (schemas/scan_codes.py)")
    location: Location | None = None
    carrier: str
    reason: str | None = Field(None, description="The carrier's reason for an exception (failed attempt, customs hold)")


class ParcelMovement(BaseModel):
    """The linehaul movement the parcel travels on, as the movement board knows it from manifests and
    unit scans (absent until its bag is manifested into a unit on a known flight, train or container)."""

    kind: Literal["flight", "train", "sea"]
    reference: str = Field(description="Flight number, block train id or sea container number")


class Parcel(BaseModel):
    tracking_number: str
    version: int = Field(description="Grows with every applied scan; a client keeps the highest it has seen")
    status: str = Field(description="One of " + ", ".join(STATUSES))
    sub_status: str
    last_event_time_ms: int
    last_location: Location | None = None
    estimated_delivery: EstimatedDelivery | None = None
    estimate_moved: EstimateMove | None = Field(None, description="When and why the estimated window last moved")
    on_time: bool
    delay_reasons: list[str] = Field(
        [], description="SLA rules the parcel has breached, why it runs late: " + ", ".join(SLA_RULES)
    )
    history: list[HistoryEntry] = Field(description="Applied scans in event-time order")
    movement: ParcelMovement | None = Field(
        None, description="The flight, block train or sea container of the linehaul (not in live-stream events)"
    )


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
_NOT_FOUND_RESPONSE = {
    404: {"model": ErrorBody, "description": "Unknown parcel, or missing or wrong credentials"},
    429: {"model": ErrorBody, "description": "Too many failed look-ups: only the signed link works for a while"},
}
_MALFORMED_RESPONSE = {422: {"model": ErrorBody, "description": f"Malformed tracking number: {TRACKING_NUMBER_RULE}"}}


def _client(request: Request) -> aioredis.Redis:
    return request.app.state.redis


def _not_found() -> JSONResponse:
    return JSONResponse({"detail": NOT_FOUND_DETAIL}, status_code=404)


def _locked(window_s: int) -> JSONResponse:
    detail = "too many failed look-ups for this parcel or from this client: use the link in your notification"
    return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(window_s)})


def _malformed() -> JSONResponse:
    return JSONResponse({"detail": f"malformed tracking number: expected {TRACKING_NUMBER_RULE}"}, status_code=422)


def create_app(settings: ConsumerSettings) -> FastAPI:
    keys = Keys(settings.redis_prefix)
    access = AccessControl(keys, AccessPolicy.of(settings))
    subscriptions_api = SubscriptionsApi(settings.redis_url, settings.redis_prefix)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        app.state.live = LiveHub(
            app.state.redis, settings.tracking_max_streams, settings.tracking_max_streams_per_client
        )
        metrics.WORKER_UP.labels(STAGE).set(1)
        try:
            yield
        finally:
            metrics.WORKER_UP.labels(STAGE).set(0)
            await app.state.live.close()
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

    async def authorise(
        request: Request, tracking_number: str, postcode: str | None, token: str | None
    ) -> JSONResponse | None:
        """None when the look-up may go on, else the answer (404, or 429 after too many failures)."""
        client = client_address(request.client.host if request.client else None)
        outcome = await access.decide(_client(request), tracking_number, client, postcode, token)
        metrics.TRACKING_LOOKUPS.labels(outcome.value).inc()
        if outcome is Outcome.LOCKED:
            return _locked(settings.tracking_failed_lookup_window)
        return None if outcome is Outcome.ALLOWED else _not_found()

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
        refused = await authorise(request, normalized, postcode, token)
        if refused is not None:
            return refused
        view = await _read_view(request, keys, normalized)
        return _not_found() if view is None else view  # None: deleted between the decision and the read

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
        refused = await authorise(request, normalized, postcode, token)
        return refused if refused is not None else _open_stream(request, keys, normalized)

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
        # The page says "not found" for a refused look-up, locked or not: the signed link still works.
        if await authorise(request, tracking_number, postcode, token) is not None:
            return None
        return await _read_view(request, keys, tracking_number)

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
            # The error names Redis' address: logged for operations, never shown to the public.
            log.warning("tracking: /healthz: Redis does not answer (%s)", type(error).__name__)
            return JSONResponse({"detail": "Redis does not answer"}, status_code=503)
        return {"status": "ok"}


async def _read_view(request: Request, keys: Keys, tracking_number: str) -> dict[str, Any] | None:
    """The parcel's public view, read once the look-up is authorised (None: it is gone), with its
    movement from the movement board (``movements.py``) in the same round trip."""
    async with _client(request).pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.parcel(tracking_number))
        pipe.hget(MovementKeys(keys.prefix).board(tracking_number), "mv")
        fields, movement = await pipe.execute()
    if not fields:
        return None
    return {**public_view({k.decode(): v for k, v in fields.items()}), "movement": customer_movement(movement)}


def _open_stream(request: Request, keys: Keys, tracking_number: str) -> Response:
    """The live-update stream, or 503 / 429 when the process's or the client's cap is reached."""
    live: LiveHub = request.app.state.live
    client = client_address(request.client.host if request.client else None)
    try:
        reservation = live.reserve(client)
    except StreamRefusedError as error:
        return JSONResponse({"detail": error.reason}, status_code=error.status_code, headers={"Retry-After": "30"})
    stream = _event_stream(_client(request), live, reservation, keys, tracking_number)
    weakref.finalize(stream, reservation.release)  # a stream never started has no finally to run
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(
    redis_client: aioredis.Redis, live: LiveHub, reservation: Reservation, keys: Keys, tracking_number: str
) -> AsyncIterator[str]:
    try:
        # Subscribed (and confirmed) before reading the current state, so no change falls in between.
        async with live.follow(keys.channel(tracking_number)) as queue:
            fields = await redis_client.hgetall(keys.parcel(tracking_number))
            if fields:
                yield _sse(json.dumps(public_view({k.decode(): v for k, v in fields.items()}), separators=(",", ":")))
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                else:
                    yield _sse(data.decode())
    finally:
        reservation.release()


def _sse(data: str) -> str:
    # The projector publishes compact JSON: one line, as an SSE data field must be.
    return f"event: parcel\ndata: {data}\n\n"
