"""The operations API and page of the tracking service: the inbound movement board and the backlog
per hub stage, behind the operations key (``X-Operations-Key``, ``PARCELSTREAM_OPERATIONS_KEY``).

- ``GET /v1/operations/movements``: flights, block trains and sea containers, newest first, paged
  (``limit``, ``offset``), filtered by ``lane`` and ``state`` (``consumers/movements.py``).
- ``GET /v1/operations/backlog``: parcels per hub stage and how long the oldest has waited
  (``consumers/backlog.py``).
- ``GET /operations``: the board as a page that refreshes itself every few seconds; the key is given
  in the URL fragment (``/operations#key=...``: never sent to the server, kept in the tab's session
  storage) or typed into the page.

Grafana reads the same API through the Infinity data source (``deploy/grafana/provisioning``).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Security
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field

from consumers.backlog import read_backlog_async
from consumers.movements import MOVEMENT_STATES, read_movements
from consumers.read_model import Keys
from consumers.settings import ConsumerSettings
from consumers.tracking.operations_page import PAGE, SCRIPT, STYLE
from consumers.tracking.page import SECURITY_HEADERS  # the customer page's: no external resource, no Referer

OperationsKey = Annotated[
    str | None,
    Security(APIKeyHeader(name="X-Operations-Key", auto_error=False, description="PARCELSTREAM_OPERATIONS_KEY")),
]


class Movement(BaseModel):
    movement: str = Field(description="kind:id, e.g. flight:CK261/157-12345675, train:X8001-001, sea:MSCU1234565")
    kind: str = Field(description="flight, train or sea")
    movement_id: str
    carrier: str
    lane: str = Field(description="Origin-destination location codes of departure and arrival ('?' until known)")
    state: str = Field(description="planned (manifested), departed or arrived")
    departed_ms: int | None = None
    arrived_ms: int | None = None
    age_seconds: int = Field(description="Since arrival, else departure, else first record (event time)")
    expected: int = Field(description="Parcels the manifests put on it")
    arrived: int
    in_import_customs: int
    held: int
    cleared: int
    sorted: int
    handed_to_last_mile: int
    delivered: int
    exceptions: int


class MovementBoard(BaseModel):
    movements: list[Movement]
    next_offset: int | None = Field(description="Offset of the next page; null on the last")
    now_ms: int = Field(description="The 'now' of the ages: wall clock or the newest event, the later")


class StageBacklog(BaseModel):
    stage: str
    parcels: int
    oldest_seconds: float
    oldest_entered_ms: int | None = None


class Backlog(BaseModel):
    stages: list[StageBacklog]
    now_ms: int


def install(app: FastAPI, settings: ConsumerSettings) -> None:
    """Add the operations routes to the tracking app."""
    router = APIRouter()
    keys = Keys(settings.redis_prefix)

    def refused(operations_key: str | None) -> JSONResponse | None:
        if not settings.operations_key:
            return JSONResponse({"detail": "operations API disabled: set PARCELSTREAM_OPERATIONS_KEY"}, status_code=503)
        if operations_key is None or not hmac.compare_digest(operations_key.encode(), settings.operations_key.encode()):
            return JSONResponse({"detail": "missing or wrong X-Operations-Key"}, status_code=401)
        return None

    @router.get(
        "/v1/operations/movements",
        response_model=MovementBoard,
        responses={401: {}, 503: {}},
        summary="Inbound movement board: flights, trains, sea containers, newest first (operations API key)",
    )
    async def movements(
        request: Request,
        operations_key: OperationsKey = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
        lane: Annotated[str | None, Query(max_length=40, description="e.g. HGH-LGG")] = None,
        state: Annotated[str | None, Query(pattern="^(" + "|".join(MOVEMENT_STATES) + ")$")] = None,
    ) -> Any:
        if (refusal := refused(operations_key)) is not None:
            return refusal
        page = await read_movements(
            request.app.state.redis, settings.redis_prefix, limit=limit, offset=offset, lane=lane, state=state
        )
        return MovementBoard(movements=page.movements, next_offset=page.next_offset, now_ms=page.now_ms)

    @router.get(
        "/v1/operations/backlog",
        response_model=Backlog,
        responses={401: {}, 503: {}},
        summary="Parcels per hub stage and the oldest one's wait (operations API key)",
    )
    async def backlog(request: Request, operations_key: OperationsKey = None) -> Any:
        if (refusal := refused(operations_key)) is not None:
            return refusal
        found = await read_backlog_async(request.app.state.redis, keys)
        return Backlog(stages=found.as_dict(), now_ms=found.now_ms)

    @router.get("/operations", response_class=HTMLResponse, include_in_schema=False)
    async def operations_page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=SECURITY_HEADERS)

    @router.get("/static/operations.js", include_in_schema=False)
    async def operations_script() -> Response:
        return Response(SCRIPT, media_type="text/javascript", headers=SECURITY_HEADERS)

    @router.get("/static/operations.css", include_in_schema=False)
    async def operations_style() -> Response:
        return Response(STYLE, media_type="text/css", headers=SECURITY_HEADERS)

    app.include_router(router)
