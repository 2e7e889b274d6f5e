"""The ingest gateway's HTTP application (FastAPI): a thin shell around ``ingest`` (parsing and
checks), ``keys`` (authentication), ``rate_limit``, ``idempotency`` and the Publisher.

A request goes: API key (401) → body size (413) → Idempotency-Key claim (replay, 409, 422) →
parse (413 too many records, 422 unreadable) → rate limit (429) → key's carrier and sources (403)
→ record problems (422, dead-lettered) → publish and wait for the broker (503 on failure) → 202.
The broker's blocking wait runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Annotated, Any, Final

import redis.exceptions
from confluent_kafka import KafkaException
from fastapi import FastAPI, Header, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from producers import metrics
from producers.formats import FORMATS, ParsedRecord, ParseIssue
from producers.gateway.idempotency import IdempotencyStore, valid_idempotency_key
from producers.gateway.ingest import (
    Accepted,
    ParsedBatch,
    Problem,
    RequestRejectedError,
    bound_event_times,
    dead_letter_groups,
    forbidden_records,
    out_of_scope,
    parse_format_body,
    parse_scan_batch,
)
from producers.gateway.keys import ApiKey, KeyStore
from producers.gateway.rate_limit import RateLimiter
from producers.gateway.settings import GatewaySettings
from producers.publisher import DeliveryReport, Publisher

STAGE: Final = "gateway"
#: Dead-letter payloads stay under Kafka's default 1 MB message limit.
MAX_DEAD_LETTER_PAYLOAD: Final = 900_000
#: Seconds the wait for the broker allows beyond the delivery timeout, so every record has its report.
DELIVERY_MARGIN_S: Final = 2.0
UNKNOWN_CARRIER: Final = "unknown"

FormatName = StrEnum("FormatName", {name: name for name in FORMATS})  # type: ignore[misc]

DESCRIPTION: Final = """\
HTTP ingest of carriers' scans into parcelstream.

* **Authentication**: `Authorization: Bearer psk_<id>_<secret>`, one API key per carrier, created
  with `parcelstream keys create`. Unknown or revoked keys get 401.
* **Authorisation**: every record must carry the key's carrier code, one of its allowed sources and
  one of its allowed scan codes (403, naming the record and the field). Shipment facts
  (`ORDER_CREATED`, a scan's `shipment`: merchant, destination) need a key created with
  `--codes ORDER_CREATED,...`; keys created without `--codes` (and keys from before scopes) may
  send every other code. Formats without a carrier code of ours (FSU, XFSU, ONE Record, EMSEVT,
  EPCIS, carrier CSV) are attributed to the key's carrier.
* **All or nothing**: if any record is invalid the whole batch is rejected with 422, listing every
  problem with its record and field path (`records[3].event_time`); nothing of it is published
  (the invalid records go to the dead-letter topic for operations). Fix and resend the batch.
* **Event times**: a record dated later than now + `PARCELSTREAM_MAX_FUTURE` (1 day) or earlier
  than now - `PARCELSTREAM_MAX_AGE` (365 days) is invalid (422, reason `event_time_out_of_range`).
* **Limits**: body size (`PARCELSTREAM_GATEWAY_MAX_BODY_BYTES`) and records per request
  (`PARCELSTREAM_GATEWAY_MAX_RECORDS`) → 413; records per second per carrier, a token bucket in
  Redis shared by every gateway process (`PARCELSTREAM_GATEWAY_RATE_LIMIT`, `..._BURST`) → 429
  with `Retry-After`.
* **Delivery**: 202 is sent only once the broker acknowledged every record. If it does not within
  `PARCELSTREAM_GATEWAY_DELIVERY_TIMEOUT` seconds: 503 with `Retry-After`; retry the batch (some
  records may then arrive twice; the pipeline ignores a repeated event id).
* **Idempotency**: send an `Idempotency-Key` header; a retry with the same key and body within 24 h
  gets the first successful response again (header `Idempotent-Replayed: true`) and publishes
  nothing; a retry while the first is still being processed gets 409.
"""


class ProblemBody(BaseModel):
    reference: str
    field: str
    message: str
    reason_code: str
    index: int | None = None


class ErrorBody(BaseModel):
    error: str
    message: str
    problems: list[ProblemBody] = []


class AcceptedBody(BaseModel):
    accepted: int
    scans: int
    manifests: int
    event_ids: list[str]
    manifest_ids: list[str]


def _error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return response


RETRY_AFTER: Final = {"Retry-After": "Seconds to wait before retrying."}
INGEST_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {
        "model": AcceptedBody,
        "description": "Every record was acknowledged by the broker.",
        "headers": {
            "Idempotent-Replayed": {"description": "true on a replayed response", "schema": {"type": "string"}}
        },
    },
    400: _error("A malformed header (Idempotency-Key)."),
    401: _error("Missing, unknown or revoked API key.", {"WWW-Authenticate": "Bearer"}),
    403: _error("A record of another carrier, or of a source, code or shipment facts the key does not allow."),
    409: _error("A request with the same Idempotency-Key is still being processed."),
    413: _error("The body or the number of records is over the limit."),
    422: _error("Invalid records (each problem with record and field), or an unreadable body."),
    429: _error("The carrier's rate limit is exhausted.", RETRY_AFTER),
    503: _error("The broker (or Redis) did not answer in time; nothing was confirmed. Retry later.", RETRY_AFTER),
}
BATCH_BODY: Final = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["records"],
                "additionalProperties": False,
                "properties": {
                    "records": {
                        "type": "array",
                        "description": "Scans and manifests in parcelstream's native layout (docs/formats.md).",
                        "items": {"type": "object"},
                    }
                },
            },
            "example": {
                "records": [
                    {
                        "event_id": "CK-0001",
                        "tracking_number": "LP00123456789CN",
                        "source": "flight",
                        "code": "LINEHAUL_DEPARTED",
                        "raw_code": "DEP",
                        "carrier": "CK",
                        "event_time": "2026-11-20T08:15:00+08:00",
                        "location": {"code": "HGH", "kind": "airport", "country": "CN"},
                    }
                ]
            },
        }
    },
}
FORMAT_BODY: Final = {
    "required": True,
    "description": "The document exactly as the carrier's system writes it (see docs/formats.md).",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}


bearer = HTTPBearer(auto_error=False, scheme_name="carrierApiKey", description="psk_<id>_<secret>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Your id of this batch (1-255 visible ASCII characters); retries reuse it.",
    ),
]


class _Gateway:
    """Per-application state, created when the server starts (in its event loop)."""

    def __init__(self, settings: GatewaySettings, publisher: Publisher | None) -> None:
        self.settings = settings
        self.publisher = publisher or Publisher(
            settings.bootstrap_servers,
            settings.topics,
            stage=STAGE,
            **{"message.timeout.ms": int(settings.gateway_delivery_timeout * 1000)},
        )
        self.redis: Redis = Redis.from_url(settings.redis_url, decode_responses=True)
        prefix = settings.redis_prefix
        self.keys = KeyStore(self.redis, prefix)
        self.rate_limiter = RateLimiter(self.redis, prefix, settings.gateway_rate_limit, settings.gateway_burst)
        claim_ttl_s = int(settings.gateway_delivery_timeout + DELIVERY_MARGIN_S) + 60
        self.idempotency = IdempotencyStore(self.redis, prefix, settings.gateway_idempotency_ttl, claim_ttl_s)
        self.retry_after_s = str(max(1, math.ceil(settings.gateway_delivery_timeout)))

    @property
    def delivery_wait_s(self) -> float:
        return self.settings.gateway_delivery_timeout + DELIVERY_MARGIN_S


def _json(status_code: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers=headers)


def _rejection(error: RequestRejectedError) -> JSONResponse:
    return _json(error.status_code, error.body(), error.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes by Content-Length or as it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestRejectedError(413, "body_too_large", f"the body of {declared} bytes is over {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejectedError(413, "body_too_large", f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _publish(publisher: Publisher, records: list[ParsedRecord], wait_s: float) -> DeliveryReport:
    """Publish the records as one batch and wait for the broker (blocking: run in a thread)."""
    batch = publisher.batch()
    try:
        for record in records:
            if record.kind == "scan":
                batch.publish_scan(record.value, record.reference)
            else:
                batch.publish_manifest(record.value, record.reference)
    except KafkaException:
        pass  # the client refused the record: it is a failure in the batch's report (→ 503)
    return batch.wait(wait_s)


def _dead_letter(
    publisher: Publisher, issues: list[ParseIssue], source: str, wait_s: float
) -> tuple[DeliveryReport, list[str]]:
    """One dead letter per invalid record (blocking: run in a thread); returns the reason codes sent."""
    batch = publisher.batch()
    reason_codes = []
    for group in dead_letter_groups(issues):
        first = group[0]
        reason = "; ".join(f"{issue.reference} {issue.field}: {issue.message}" for issue in group)
        payload = first.raw
        if len(payload) > MAX_DEAD_LETTER_PAYLOAD:
            reason += f" (payload cut to the first {MAX_DEAD_LETTER_PAYLOAD} of {len(payload)} bytes)"
            payload = payload[:MAX_DEAD_LETTER_PAYLOAD]
        batch.publish_dead_letter(
            reason_code=first.reason_code,
            reason=reason,
            payload=payload,
            source_reference=f"{source} {first.reference}",
        )
        reason_codes.append(first.reason_code)
    return batch.wait(wait_s), reason_codes


def _count_published(records: list[ParsedRecord], carrier: str) -> None:
    now = time.time()
    for record in records:
        if record.kind == "scan":
            metrics.SCANS_PUBLISHED.labels(record.value["source"], record.value["code"]).inc()
            metrics.CARRIER_LAST_SCAN.labels(carrier, record.value["source"]).set(now)
        else:
            metrics.MANIFESTS_PUBLISHED.labels(record.value["unit_type"]).inc()


def _count_failures(report: DeliveryReport) -> None:
    for failure in report.failures:
        timed_out = "timed out" in failure.error.lower() or "not acknowledged" in failure.error
        metrics.PUBLISH_FAILURES.labels("message_timeout" if timed_out else "broker_error").inc()


Parse = Callable[[bytes, ApiKey], ParsedBatch]


class _Ingest:
    """One ingest request, from the API key to the response."""

    def __init__(self, gateway: _Gateway, request: Request, endpoint: str) -> None:
        self.gateway = gateway
        self.request = request
        self.endpoint = endpoint
        self.carrier = UNKNOWN_CARRIER
        self.accepted_body: dict[str, Any] = {}

    async def run(
        self, credentials: HTTPAuthorizationCredentials | None, idempotency_key: str | None, parse: Parse
    ) -> Response:
        try:
            response = await self._run(credentials, idempotency_key, parse)
        except RequestRejectedError as error:
            response = _rejection(error)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            response = _json(
                503,
                {"error": "redis_unavailable", "message": "the gateway's Redis does not answer", "problems": []},
                {"Retry-After": self.gateway.retry_after_s},
            )
        metrics.INGEST_REQUESTS.labels(self.carrier, self.endpoint, str(response.status_code)).inc()
        return response

    async def _run(
        self, credentials: HTTPAuthorizationCredentials | None, idempotency_key: str | None, parse: Parse
    ) -> Response:
        gateway = self.gateway
        key = await gateway.keys.authenticate(credentials.credentials) if credentials is not None else None
        if key is None:
            raise RequestRejectedError(
                401, "unauthorized", "missing, unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        self.carrier = key.carrier
        if idempotency_key is not None and not valid_idempotency_key(idempotency_key):
            raise RequestRejectedError(
                400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters"
            )
        body = await _read_body(self.request, gateway.settings.gateway_max_body_bytes)
        if idempotency_key is None:
            return await self._ingest(key, body, parse)
        body_sha256 = hashlib.sha256(body).hexdigest()
        claim = await gateway.idempotency.begin(key.carrier, idempotency_key, body_sha256)
        if claim.outcome == "replay":
            return _json(claim.status_code, claim.body, {"Idempotent-Replayed": "true"})
        if claim.outcome == "in_flight":
            raise RequestRejectedError(
                409, "idempotency_key_in_use", "a request with this Idempotency-Key is still being processed"
            )
        if claim.outcome == "mismatch":
            raise RequestRejectedError(
                422, "idempotency_key_reused", "this Idempotency-Key was used with another body; use a new key"
            )
        stored = False
        try:
            response = await self._ingest(key, body, parse)
            if 200 <= response.status_code < 300:
                await gateway.idempotency.complete(
                    key.carrier, idempotency_key, body_sha256, response.status_code, self.accepted_body
                )
                stored = True
            return response
        finally:
            if not stored:
                # Shielded: a client that hangs up must not leave the key claimed until the TTL.
                await asyncio.shield(gateway.idempotency.release(key.carrier, idempotency_key))

    async def _ingest(self, key: ApiKey, body: bytes, parse: Parse) -> Response:
        gateway = self.gateway
        batch = parse(body, key)
        decision = await gateway.rate_limiter.take(key.carrier, batch.size)
        if not decision.allowed:
            raise RequestRejectedError(
                429,
                "rate_limited",
                f"carrier {key.carrier} is over its rate limit of {gateway.settings.gateway_rate_limit:g} records/s",
                headers={"Retry-After": str(decision.retry_after_s)},
            )
        native = self.endpoint == "/v1/scans"
        forbidden = forbidden_records(batch.claims, key, field_prefix=native)
        forbidden += out_of_scope(batch.records, key, field_prefix=native)
        if forbidden:
            names = ", ".join(dict.fromkeys(problem.reference for problem in forbidden))
            raise RequestRejectedError(403, "forbidden_records", f"this API key may not publish {names}", forbidden)
        bound_event_times(batch, gateway.settings)
        if batch.problems:
            await self._dead_letter(batch.issues)
            raise RequestRejectedError(
                422,
                "invalid_records",
                f"{len(batch.problems)} problem(s) in the batch; nothing of it was published",
                batch.problems,
            )
        report = await run_in_threadpool(_publish, gateway.publisher, batch.records, gateway.delivery_wait_s)
        if report.failures:
            _count_failures(report)
            first = report.failures[0]
            raise RequestRejectedError(
                503,
                "broker_unavailable",
                f"the broker did not acknowledge {len(report.failures)} of {len(batch.records)} records "
                f"({first.error}); retry the batch",
                headers={"Retry-After": gateway.retry_after_s},
            )
        _count_published(batch.records, key.carrier)
        self.accepted_body = dataclasses.asdict(Accepted.of(batch.records))
        return _json(202, self.accepted_body)

    async def _dead_letter(self, issues: list[ParseIssue]) -> None:
        if not issues:
            return
        source = f"{self.endpoint} {self.carrier}"
        report, reason_codes = await run_in_threadpool(
            _dead_letter, self.gateway.publisher, issues, source, self.gateway.delivery_wait_s
        )
        # Only acknowledged dead letters count; the 422 goes to the carrier either way (it keeps the data).
        _count_failures(report)
        failed = {failure.reference for failure in report.failures}
        for group, reason_code in zip(dead_letter_groups(issues), reason_codes, strict=True):
            if f"{source} {group[0].reference}" not in failed:
                metrics.DEAD_LETTERS.labels(STAGE, reason_code).inc()


def create_app(settings: GatewaySettings, *, publisher: Publisher | None = None) -> FastAPI:
    """The gateway application; ``publisher`` defaults to one for ``settings`` (stage ``gateway``)."""
    state: dict[str, _Gateway] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        gateway = _Gateway(settings, publisher)
        state["gateway"] = gateway
        metrics.WORKER_UP.labels(STAGE).set(1)
        try:
            yield
        finally:
            metrics.WORKER_UP.labels(STAGE).set(0)
            await gateway.redis.aclose()
            await run_in_threadpool(gateway.publisher.flush, gateway.delivery_wait_s)
            state.clear()  # let the producer go with the app

    app = FastAPI(
        title="parcelstream ingest gateway",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses={},
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            Problem("(request)", ".".join(str(part) for part in item["loc"]), item["msg"]).as_json()
            for item in error.errors()
        ]
        return _json(422, {"error": "invalid_request", "message": "the request is not valid", "problems": problems})

    @app.post(
        "/v1/scans",
        status_code=202,
        summary="Publish a batch of scans and manifests (native JSON records)",
        responses=INGEST_RESPONSES,
        openapi_extra={"requestBody": BATCH_BODY},
        response_model=AcceptedBody,
    )
    async def post_scans(
        request: Request, credentials: Credentials, idempotency_key: IdempotencyKey = None
    ) -> Response:
        max_records = settings.gateway_max_records
        return await _Ingest(state["gateway"], request, "/v1/scans").run(
            credentials, idempotency_key, lambda body, _key: parse_scan_batch(body, max_records)
        )

    @app.post(
        "/v1/formats/{format}",
        status_code=202,
        summary="Publish a carrier's document in one of the supported formats",
        responses=INGEST_RESPONSES,
        openapi_extra={"requestBody": FORMAT_BODY},
        response_model=AcceptedBody,
    )
    async def post_format(
        request: Request,
        credentials: Credentials,
        format_name: Annotated[FormatName, Path(alias="format", description="The document's format.")],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        name = str(format_name.value)
        max_records = settings.gateway_max_records
        return await _Ingest(state["gateway"], request, f"/v1/formats/{name}").run(
            credentials, idempotency_key, lambda body, key: parse_format_body(name, body, key.carrier, max_records)
        )

    @app.get(
        "/healthz",
        summary="Liveness and Redis reachability",
        responses={503: {"description": "Redis does not answer."}},
    )
    async def healthz() -> JSONResponse:
        try:
            await state["gateway"].redis.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return _json(503, {"status": "redis unavailable"})
        return _json(200, {"status": "ok"})

    return app
